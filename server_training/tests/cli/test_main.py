"""The ``covidal`` entry point: version, help of every command, and one-line errors."""

from __future__ import annotations

import pytest

import covidal
import covidal.cli.slices.evaluate

COMMANDS = (
    "train",
    "evaluate",
    "predict",
    "simulate",
    "compare",
    "demo",
    "bench-losses",
    "bench-cv",
    "bench-scoring",
    "make-cases-3d",
    "corrupt-labels",
    "train-3d",
    "pseudo-label",
    "noisy-teacher",
    "evaluate-3d",
    "compare-3d",
    "bench-reweight",
    "serve",
    "bench-service",
    "bench-cycle",
    "bench-lungs",
)


def test_version(cli):
    result = cli("--version")
    assert result.code == 0
    assert result.out.strip() == f"covidal {covidal.__version__}"


@pytest.mark.parametrize("command", [(), *((c,) for c in COMMANDS)], ids=["covidal", *COMMANDS])
def test_help_of_every_command_exits_0(cli, command):
    result = cli(*command, "--help")
    assert result.code == 0
    assert result.out.startswith(f"usage: {' '.join(('covidal', *command))}")
    assert result.err == ""


def test_top_level_help_lists_every_command(cli):
    out = cli("--help").out
    assert all(command in out for command in COMMANDS)


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        ((), ["required", "--help"]),
        (("fly",), ["invalid choice", "fly"]),
        (("train", "--loss", "point"), ["required", "--images"]),
        (("evaluate", "--model", "m", "--images", "i", "--masks", "k", "--json", "j", "--colour", "red"), ["--colour"]),
        (("train", "--images", "i", "--out", "o", "--loss", "nonsense"), ["--loss", "nonsense"]),
        (("train", "--images", "i", "--out", "o", "--loss", "point", "--size", "50"), ["--size", "multiple of 32"]),
        (("train", "--images", "i", "--out", "o", "--loss", "point", "--lr", "nan"), ["--lr", "finite"]),
        (
            ("train", "--images", "i", "--out", "o", "--loss", "point", "--batch-size", "two"),
            ["--batch-size", "number"],
        ),
        (("predict", "--model", "m", "--input", "i", "--out", "o", "--device", "tpu"), ["--device", "tpu"]),
        (
            ("predict", "--model", "m", "--input", "i", "--out", "o", "--window-width", "0"),
            ["--window-width", "positive"],
        ),
    ],
)
def test_bad_command_lines_are_one_line_errors(cli, argv, words):
    cli(*argv).assert_user_error(*words)


def test_unexpected_failure_is_one_line_with_status_1(cli, monkeypatch):
    def broken(args):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(covidal.cli.slices.evaluate, "run", broken)
    monkeypatch.delenv("COVIDAL_DEBUG", raising=False)
    result = cli("evaluate", "--model", "m", "--images", "i", "--masks", "k", "--json", "j")
    assert result.code == 1
    assert result.err.count("\n") == 1 and "Traceback" not in result.err
    assert result.err.startswith("covidal: unexpected error: ZeroDivisionError") and "COVIDAL_DEBUG=1" in result.err


def test_covidal_debug_shows_the_original_exception(cli, monkeypatch):
    def broken(args):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(covidal.cli.slices.evaluate, "run", broken)
    monkeypatch.setenv("COVIDAL_DEBUG", "1")
    with pytest.raises(ZeroDivisionError):
        cli("evaluate", "--model", "m", "--images", "i", "--masks", "k", "--json", "j")


def test_interrupt_exits_130(cli, monkeypatch):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(covidal.cli.slices.evaluate, "run", interrupted)
    result = cli("evaluate", "--model", "m", "--images", "i", "--masks", "k", "--json", "j")
    assert (result.code, result.err) == (130, "covidal: interrupted\n")
