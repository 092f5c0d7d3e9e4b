"""``covidal serve``: the command line, the loopback/token rule, and a real server process."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from job_testing import answer_slices, finished, tiny_project, wait_for_job
from process_testing import serve
from service_testing import free_port, raw_request

from covidal.cli.main import build_parser
from covidal.cli.serve import is_loopback, settings_from_args
from covidal.client import BackendUnreachable, CovidalClient
from covidal.service.settings import DEFAULT_CACHE_BYTES


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("localhost", True),
        ("::1", True),
        ("0.0.0.0", False),
        ("192.168.1.10", False),
        ("::", False),
        ("example.org", False),
    ],
)
def test_loopback_addresses(host, expected):
    assert is_loopback(host) is expected


def test_non_loopback_bind_without_token_is_refused(cli, tmp_path):
    cli("serve", "--project-dir", tmp_path / "p", "--host", "0.0.0.0").assert_user_error(
        "--host 0.0.0.0", "--token-file"
    )
    assert not (tmp_path / "p").exists()


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (("--token-file", "missing.txt"), ["--token-file", "cannot be read"]),
        (("--port", "70000"), ["--port", "65535"]),
        (("--max-upload-mb", "0"), ["--max-upload-mb"]),
        (("--lease-seconds", "-1"), ["--lease-seconds"]),
        (("--device", "tpu"), ["--device"]),
        (("--cache-mb", "-1"), ["--cache-mb", "negative"]),
    ],
)
def test_bad_options_are_one_line_errors(cli, tmp_path, argv, words):
    cli("serve", "--project-dir", tmp_path / "p", *argv).assert_user_error(*words)


@pytest.mark.parametrize(
    ("argv", "cache_bytes"), [((), DEFAULT_CACHE_BYTES), (("--cache-mb", "0"), 0), (("--cache-mb", "512"), 512 * 2**20)]
)
def test_cache_size_option(tmp_path, argv, cache_bytes):
    args = build_parser().parse_args(["serve", "--project-dir", str(tmp_path / "p"), *argv])
    assert settings_from_args(args).cache_bytes == cache_bytes


def test_empty_token_file_is_refused(cli, tmp_path):
    (tmp_path / "token").write_text("  \n")
    cli("serve", "--project-dir", tmp_path / "p", "--token-file", tmp_path / "token").assert_user_error("one token")


def test_served_process_requires_its_token(tmp_path):
    (tmp_path / "token").write_text("abc123\n")
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "covidal.cli.main",
        "serve",
        "--project-dir",
        str(tmp_path / "p"),
        "--port",
        str(port),
        "--token-file",
        str(tmp_path / "token"),
    ]
    root = Path(__file__).resolve().parents[2]
    process = subprocess.Popen(
        command, cwd=root, env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        client = CovidalClient(f"http://127.0.0.1:{port}", token="abc123", timeout=5)
        deadline = time.monotonic() + 60
        while True:
            try:
                assert client.health()["status"] == "ok"
                break
            except BackendUnreachable:
                assert process.poll() is None and time.monotonic() < deadline, process.stdout.read().decode()
                time.sleep(0.2)
        assert raw_request(client.base_url, "GET", "/projects")[0] == 401
        assert client.list_projects() == []
        assert (tmp_path / "p" / "store.sqlite3").is_file()
    finally:
        process.terminate()
        process.wait(20)


@pytest.mark.parametrize(("mode", "warned"), [(0o644, True), (0o640, True), (0o600, False), (0o400, False)])
def test_a_token_file_others_can_read_is_warned_about(tmp_path, capsys, mode, warned):
    token = tmp_path / "token"
    token.write_text("abc123\n")
    token.chmod(mode)
    args = build_parser().parse_args(["serve", "--project-dir", str(tmp_path / "p"), "--token-file", str(token)])
    assert settings_from_args(args).token == "abc123"
    err = capsys.readouterr().err
    if warned:
        assert "warning" in err and str(token) in err and "chmod 600" in err and err.count("\n") == 1, err
    else:
        assert err == ""


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
def test_everything_the_service_writes_is_its_owners_alone(tmp_path):
    """Folders 0700 and files 0600 (store, volumes, job logs, checkpoints, models), whatever the caller's umask."""
    project_dir = tmp_path / "project"
    previous = os.umask(0o022)
    try:
        process, client = serve(project_dir)
    finally:
        os.umask(previous)
    try:
        project, _ = tiny_project(client, tmp_path / "ct.nrrd")
        answer_slices(client, project["id"], {0, 1})
        job = client.start_training(project["id"], steps=2)
        assert wait_for_job(client, project["id"], job["id"], finished)["status"] == "done"
    finally:
        process.terminate()
        process.wait(30)
    written = [project_dir, *project_dir.rglob("*")]
    assert any(path.suffix == ".pt" for path in written) and any(path.name == "log.txt" for path in written)
    loose = {
        str(path.relative_to(tmp_path)): oct(path.stat().st_mode & 0o777)
        for path in written
        if path.stat().st_mode & 0o777 != (0o700 if path.is_dir() else 0o600)
    }
    assert not loose, loose
