"""Tests of CovidActiveLearningLib/backend_process.py: a real ``covidal serve`` started, polled and stopped as the
widget does it, and the installation plan (run for real up to the point where pip would need the network)."""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import sys
import time
import venv
from pathlib import Path

import pytest

from CovidActiveLearningLib.backend_client import CovidalClient
from CovidActiveLearningLib.backend_process import (
    TORCH_REQUIREMENT,
    BackendEnvironment,
    BackendPoll,
    BackendSource,
    BackendSupervisor,
    InstallPlan,
    InstallRun,
    LocalBackend,
    checkout_source,
    child_environment,
    find_base_python,
    loopback_port,
    port_is_free,
)
from CovidActiveLearningLib.errors import UserFacingError

TEST_ENV = BackendEnvironment(Path(sys.prefix))  # the test interpreter's environment has the backend installed
START_TIMEOUT_S = 180.0  # the child imports torch and FastAPI before it answers; the machine may be busy


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def local_backend(tmp_path: Path, port: int) -> LocalBackend:
    return LocalBackend(
        Path(sys.executable),
        tmp_path / "projects",
        tmp_path / "logs" / "serve.log",
        port=port,
        environment={**os.environ, "OMP_NUM_THREADS": "1"},
    )


def wait_until_ready(backend: LocalBackend) -> float:
    """Poll as the widget's timer does; returns the seconds it took."""
    started = time.monotonic()
    while not backend.poll_ready():
        assert time.monotonic() - started < START_TIMEOUT_S, backend.log_tail()
        time.sleep(0.25)
    return time.monotonic() - started


def test_local_backend_starts_without_waiting_answers_and_stops(tmp_path):
    backend = local_backend(tmp_path, free_port())
    started = time.monotonic()
    backend.start()
    assert time.monotonic() - started < 2.0  # start does not wait for the server (it needs seconds to import torch)
    try:
        assert backend.is_running()
        assert backend.command[1:4] == ["-m", "covidal.cli.main", "serve"]
        wait_until_ready(backend)
        assert CovidalClient(backend.url).health()["status"] == "ok"
        assert CovidalClient(backend.url).list_projects() == []
        assert (tmp_path / "projects").is_dir()
        assert "Uvicorn running" in backend.log_tail() or "startup complete" in backend.log_tail()
        with pytest.raises(UserFacingError, match="already running"):
            backend.start()
    finally:
        backend.stop()
    assert not backend.is_running()
    assert backend.process.returncode is not None
    assert port_is_free(backend.port)


def test_a_taken_port_is_refused_before_anything_starts(tmp_path):
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        backend = local_backend(tmp_path, other.getsockname()[1])
        with pytest.raises(UserFacingError, match=f"Port {backend.port} of 127.0.0.1 is already in use"):
            backend.start()
    assert backend.process is None


def test_a_port_taken_while_starting_ends_in_the_logs_words(tmp_path):
    """Another program binds the port after the check, while the child imports torch: the child exits and
    ``poll_ready`` says so with the end of its log."""
    backend = local_backend(tmp_path, free_port())
    backend.start()
    try:
        with socket.socket() as other:
            other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            other.bind(("127.0.0.1", backend.port))
            other.listen()
            deadline = time.monotonic() + START_TIMEOUT_S
            with pytest.raises(UserFacingError, match="stopped") as stopped:
                while not backend.poll_ready():  # the listener never answers: unreachable until the child exits
                    assert time.monotonic() < deadline, backend.log_tail()
                    time.sleep(0.25)
        assert "address already in use" in str(stopped.value).lower()
        assert str(backend.log_path) in str(stopped.value)
        assert not backend.is_running()
    finally:
        backend.stop()


def test_a_backend_that_cannot_start_reports_its_error(tmp_path):
    backend = LocalBackend(
        Path(sys.executable), tmp_path / "projects", tmp_path / "serve.log", port=free_port(), device="tpu"
    )
    backend.start()
    try:
        with pytest.raises(UserFacingError, match=r"stopped \(exit status 2\)") as stopped:
            deadline = time.monotonic() + START_TIMEOUT_S
            while not backend.poll_ready():
                assert time.monotonic() < deadline, backend.log_tail()
                time.sleep(0.25)
        assert "error: argument --device: invalid choice: 'tpu'" in str(stopped.value)
    finally:
        backend.stop()


def test_request_stop_returns_at_once_and_the_timer_finishes_it(tmp_path):
    backend = local_backend(tmp_path, free_port())
    backend.start()
    try:
        wait_until_ready(backend)
        asked = time.monotonic()
        backend.request_stop(grace_seconds=30)
        assert time.monotonic() - asked < 1.0
        while backend.is_running():
            assert time.monotonic() - asked < 30, backend.log_tail()
            time.sleep(0.1)
        # uvicorn shuts down gracefully on SIGTERM, then re-raises the signal (exit status -15, not -9: not killed)
        assert backend.process.returncode in (0, -15)
        assert "Finished server process" in backend.log_tail()
    finally:
        backend.stop()


def test_request_stop_kills_a_server_that_ignores_sigterm(tmp_path):
    stubborn = tmp_path / "stubborn.py"
    stubborn.write_text(
        "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nprint('up', flush=True)\ntime.sleep(600)\n"
    )
    backend = local_backend(tmp_path, free_port())
    # A server that ignores SIGTERM, in its own process group as start() makes it.
    backend.process = subprocess.Popen([sys.executable, str(stubborn)], stdout=subprocess.PIPE, start_new_session=True)
    try:
        assert backend.process.stdout.readline() == b"up\n"
        backend.request_stop(grace_seconds=1.0)
        assert backend.is_running()  # within the grace: still there
        time.sleep(1.5)
        assert not backend.is_running()  # past the grace: this poll killed it
        assert backend.process.returncode == -9
    finally:
        backend.process.kill()
        backend.process.wait()
        backend.process.stdout.close()


def test_a_collected_backend_stops_its_server(tmp_path):
    backend = local_backend(tmp_path, free_port())
    backend.start()
    process = backend.process
    del backend
    assert process.poll() is not None


def test_starting_needs_the_interpreter(tmp_path):
    backend = LocalBackend(tmp_path / "missing" / "bin" / "python", port=free_port())
    with pytest.raises(UserFacingError, match="install the backend first"):
        backend.start()


def test_a_project_folder_that_cannot_be_made_is_a_clear_error(tmp_path):
    (tmp_path / "a-file").write_text("")
    backend = LocalBackend(
        Path(sys.executable), tmp_path / "a-file" / "projects", tmp_path / "serve.log", port=free_port()
    )
    with pytest.raises(UserFacingError, match="The local backend cannot start: Not a directory"):
        backend.start()
    assert backend.process is None


@pytest.mark.parametrize(
    "url, port", [("http://127.0.0.1:8765", 8765), ("http://localhost:9001/", 9001), (" http://127.0.0.1 ", 8765)]
)
def test_loopback_port(url, port):
    assert loopback_port(url) == port


@pytest.mark.parametrize(
    "url", ["https://127.0.0.1:8765", "http://10.0.0.5:8765", "127.0.0.1:8765", "http://127.0.0.1:99999", ""]
)
def test_a_remote_or_malformed_url_is_not_local(url):
    with pytest.raises(UserFacingError, match="on this computer"):
        loopback_port(url)


def test_python_variables_of_slicer_do_not_reach_the_backend():
    environment = child_environment({"PATH": "/bin", "PYTHONHOME": "/slicer", "PYTHONPATH": "/slicer/lib"})
    assert environment == {"PATH": "/bin", "PYTHONUNBUFFERED": "1"}


def test_is_installed_on_the_test_environment_and_an_empty_folder(tmp_path):
    assert TEST_ENV.python.samefile(sys.executable)
    assert TEST_ENV.is_installed()
    assert not BackendEnvironment(tmp_path).exists()
    assert not BackendEnvironment(tmp_path).is_installed()


def test_is_installed_is_quick_because_it_imports_nothing():
    started = time.monotonic()
    TEST_ENV.is_installed()
    assert time.monotonic() - started < 3.0  # importing torch alone takes several seconds


def test_a_bare_environment_is_not_installed(tmp_path):
    venv.create(tmp_path / "venv", with_pip=False)
    bare = BackendEnvironment(tmp_path / "venv")
    assert bare.exists()
    assert not bare.is_installed()


def test_the_checkout_is_a_source():
    source = checkout_source()
    assert source is not None
    assert (source.path / "covidal" / "client.py").is_file()
    assert source.constraints == source.path / "constraints.txt"


def test_a_wheel_is_a_source_and_other_paths_are_not(tmp_path):
    wheel = tmp_path / "covidal-0.1.0-py3-none-any.whl"
    wheel.write_bytes(b"PK")
    assert BackendSource.from_path(wheel).constraints is None
    for wrong in (tmp_path, tmp_path / "numpy-2.0-py3-none-any.whl", tmp_path / "missing"):
        with pytest.raises(UserFacingError, match="is not the backend"):
            BackendSource.from_path(wrong)


def test_install_plan_for_a_new_environment(tmp_path):
    environment = BackendEnvironment(tmp_path / "backend-venv")
    source = checkout_source()
    plan = environment.install_plan(source, sys.executable)
    python, constraints = str(environment.python), str(source.constraints)
    assert plan.commands == (
        (sys.executable, "-m", "venv", str(environment.folder)),
        (python, "-m", "pip", "install", "--disable-pip-version-check", TORCH_REQUIREMENT, "-c", constraints),
        (python, "-m", "pip", "install", "--disable-pip-version-check", str(source.path), "-c", constraints),
        (python, "-c", "import covidal.cli.main, torch, monai, fastapi, uvicorn; print('backend installed')"),
    )
    assert [shlex.split(line) for line in plan.text().splitlines()] == [list(command) for command in plan.commands]


def test_install_plan_reuses_an_existing_environment_and_installs_a_wheel(tmp_path):
    wheel = tmp_path / "covidal-0.1.0-py3-none-any.whl"
    wheel.write_bytes(b"PK")
    plan = TEST_ENV.install_plan(BackendSource.from_path(wheel))
    assert [command[:4] for command in plan.commands[:2]] == [(str(TEST_ENV.python), "-m", "pip", "install")] * 2
    assert plan.commands[0][-1] == TORCH_REQUIREMENT and plan.commands[1][-1] == str(wheel)


def test_install_plan_needs_a_recent_python_to_create_the_environment(tmp_path):
    with pytest.raises(UserFacingError, match="Python 3.11 or newer"):
        BackendEnvironment(tmp_path / "venv").install_plan(checkout_source(), tmp_path / "no-python")
    with pytest.raises(UserFacingError, match="none was found"):
        BackendEnvironment(tmp_path / "venv").install_plan(checkout_source(), None)


def test_find_base_python():
    assert find_base_python([Path("/nonexistent/python3"), sys.executable]) == Path(sys.executable)
    assert find_base_python([Path("/nonexistent/python3")]) is None
    found = find_base_python()
    assert found is None or found.exists()


def test_the_plans_first_command_creates_the_environment(tmp_path):
    """The venv step for real (offline); the pip steps need the network and are not run here."""
    environment = BackendEnvironment(tmp_path / "backend-venv")
    create = environment.install_plan(checkout_source(), sys.executable).commands[0]
    run = InstallRun(InstallPlan((create,)), tmp_path / "install.log")
    deadline = time.monotonic() + 120
    while run.poll() is None:
        assert time.monotonic() < deadline, run.log_tail()
        time.sleep(0.1)
    assert run.returncode == 0, run.log_tail()
    assert environment.exists() and not environment.is_installed()


def test_install_run_runs_the_commands_in_order_and_stops_at_the_first_failure(tmp_path):
    marker = tmp_path / "third-ran"
    plan = InstallPlan(
        (
            (sys.executable, "-c", "print('first')"),
            (sys.executable, "-c", "import sys; print('second fails'); sys.exit(3)"),
            (sys.executable, "-c", f"open({str(marker)!r}, 'w')"),
        )
    )
    run = InstallRun(plan, tmp_path / "install.log")
    assert run.step == (1, 3)
    deadline = time.monotonic() + 60
    while run.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert run.returncode == 3
    assert run.failed_command == plan.commands[1]
    assert run.step == (2, 3)
    assert not marker.exists()
    log = run.log_tail()
    assert log.index("first") < log.index("second fails")
    assert f"$ {shlex.join(plan.commands[0])}" in log


def test_install_run_can_be_cancelled(tmp_path):
    plan = InstallPlan(((sys.executable, "-c", "import time; time.sleep(600)"),))
    run = InstallRun(plan, tmp_path / "install.log")
    started = time.monotonic()
    run.cancel()
    assert time.monotonic() - started < 5
    assert run.poll() == run.returncode and run.returncode < 0


def supervisor(tmp_path: Path, environment: BackendEnvironment = TEST_ENV) -> BackendSupervisor:
    return BackendSupervisor(
        environment,
        {**os.environ, "OMP_NUM_THREADS": "1"},
        tmp_path / "install.log",
        tmp_path / "projects",
        tmp_path / "serve.log",
    )


def poll_until(backends: BackendSupervisor, done, timeout: float = START_TIMEOUT_S) -> list[BackendPoll]:
    """Poll as the widget's timer does until ``done(poll)``; returns every poll."""
    polls, deadline = [], time.monotonic() + timeout
    while not polls or not done(polls[-1]):
        assert time.monotonic() < deadline, polls[-1:]
        time.sleep(0.2)
        polls.append(backends.poll())
    return polls


def test_supervisor_starts_reports_ready_once_then_stops(tmp_path):
    backends = supervisor(tmp_path)
    url = f"http://localhost:{free_port()}"
    try:
        assert backends.start(url).startswith("Starting the local backend at http://127.0.0.1:")
        polls = poll_until(backends, lambda poll: poll.ready_url)
        assert polls[-1].ready_url == backends.backend.url and polls[-1].status.startswith("The local backend runs")
        assert all(poll.error is None and poll.ready_url is None for poll in polls[:-1])
        assert CovidalClient(polls[-1].ready_url).health()["status"] == "ok"
        after = backends.poll()
        assert after.ready_url is None and after.status is None and "Uvicorn running" in after.log
        with pytest.raises(UserFacingError, match="already running"):
            backends.start(url)
        assert backends.request_stop() == "Stopping the local backend..."
        polls = poll_until(backends, lambda poll: poll.status, timeout=30)
        assert polls[-1] == BackendPoll("The local backend has stopped.", polls[-1].log)
        assert not backends.is_running() and backends.poll() == BackendPoll()
    finally:
        backends.stop()


def test_supervisor_stopped_while_starting_is_no_failure(tmp_path):
    backends = supervisor(tmp_path)
    backends.start(f"http://127.0.0.1:{free_port()}")
    backends.request_stop()
    polls = poll_until(backends, lambda poll: poll.status, timeout=30)
    assert polls[-1].status == "The local backend has stopped." and polls[-1].error is None


def test_supervisor_reports_a_backend_that_cannot_start(tmp_path):
    backends = supervisor(tmp_path)
    backends.start(f"http://127.0.0.1:{free_port()}")
    with socket.socket() as other:  # another program takes the port while the server imports torch
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        other.bind(("127.0.0.1", backends.backend.port))
        other.listen()
        polls = poll_until(backends, lambda poll: poll.error)
    assert polls[-1].status == "The local backend did not start."
    assert "address already in use" in str(polls[-1].error).lower()
    assert backends.backend is None and backends.poll() == BackendPoll()


def test_supervisor_refuses_what_it_cannot_start(tmp_path):
    with pytest.raises(UserFacingError, match="not installed in"):
        supervisor(tmp_path, BackendEnvironment(tmp_path / "empty")).start("http://127.0.0.1:8765")
    with pytest.raises(UserFacingError, match="on this computer"):
        supervisor(tmp_path).start("http://10.1.2.3:8765")
    assert supervisor(tmp_path).poll() == BackendPoll()


def test_supervisor_installs_a_confirmed_plan_and_reports_each_step(tmp_path):
    backends = supervisor(tmp_path)
    plan = InstallPlan(
        ((sys.executable, "-c", "import time; time.sleep(0.5); print('one')"), (sys.executable, "-c", "print('two')"))
    )
    assert backends.start_install(plan) == "Installing the backend: step 1 of 2..."
    with pytest.raises(UserFacingError, match="Wait until the backend is installed"):
        backends.start("http://127.0.0.1:8765")
    with pytest.raises(UserFacingError, match="being installed already"):
        backends.plan_install(checkout_source())
    polls = poll_until(backends, lambda poll: poll.status and "installed" in poll.status, timeout=60)
    assert polls[-1].status == "The backend is installed: click 'Start local backend'."
    assert "one" in polls[-1].log and "two" in polls[-1].log
    assert {poll.status for poll in polls[:-1]} <= {
        "Installing the backend: step 1 of 2...",
        "Installing the backend: step 2 of 2...",
    }
    assert backends.installation is None and backends.poll() == BackendPoll()


def test_supervisor_reports_a_failed_installation_with_its_log(tmp_path):
    backends = supervisor(tmp_path)
    backends.start_install(
        InstallPlan(
            ((sys.executable, "-c", "print('fine')"), (sys.executable, "-c", "import sys; sys.exit('no network')"))
        )
    )
    polls = poll_until(backends, lambda poll: poll.error, timeout=60)
    assert polls[-1].status == "Installing the backend failed."
    message = str(polls[-1].error)
    assert message.startswith("Installing the backend failed at step 2 of 2 (exit status 1).")
    assert message.endswith("no network")


def test_supervisor_plans_with_the_python_it_finds_or_is_given(tmp_path):
    fresh = supervisor(tmp_path, BackendEnvironment(tmp_path / "venv"))
    plan = fresh.plan_install(checkout_source(), choose_python=lambda: Path(sys.executable))
    assert plan.commands[0][1:] == ("-m", "venv", str(tmp_path / "venv"))
    assert Path(plan.commands[0][0]).exists()  # found on the PATH, or the one chosen
    asked = []
    fresh_without_path = BackendSupervisor(BackendEnvironment(tmp_path / "venv"), {"PATH": str(tmp_path)})
    plan = fresh_without_path.plan_install(checkout_source(), lambda: asked.append(True) or Path(sys.executable))
    assert asked == [True] and plan.commands[0][0] == sys.executable
    assert supervisor(tmp_path).plan_install(checkout_source()).commands[0][0] == str(TEST_ENV.python)
