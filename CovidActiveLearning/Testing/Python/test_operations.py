"""Tests of CovidActiveLearningLib/operations.py: the same operation run in place and in the background."""

from __future__ import annotations

import threading

import pytest

from CovidActiveLearningLib.backend_client import BackendUnreachable, ClientError
from CovidActiveLearningLib.errors import UserFacingError
from CovidActiveLearningLib.operations import BackgroundOperation, Remote, remote, run_now


def add(a, b):
    return a + b


def fail(error):
    raise error


def two_requests(log: list):
    """Adds twice; records on which thread each part of its own code ran."""
    log.append(("start", threading.get_ident()))
    first = yield remote(add, 1, 2)
    log.append(("between", threading.get_ident()))
    second = yield remote(add, first, 10)
    return second


def catches_conflicts():
    try:
        yield Remote(fail, (ClientError(409, "already answered"),), raw=True)
    except ClientError as error:
        return f"caught {error.status}"
    return "not reached"


@pytest.mark.parametrize(
    "error, message",
    [
        (BackendUnreachable("connection refused"), "The backend does not answer (connection refused)"),
        (ClientError(422, "point outside the region"), "The backend refused: point outside the region"),
    ],
)
def test_backend_errors_become_sentences(error, message):
    def operation():
        yield remote(fail, error)

    with pytest.raises(UserFacingError, match=message.replace("(", r"\(").replace(")", r"\)")):
        run_now(operation())


def test_raw_requests_hand_the_error_to_the_operation():
    assert run_now(catches_conflicts()) == "caught 409"
    assert BackgroundOperation(catches_conflicts()).wait(5) == "caught 409"


def test_run_now_passes_each_result_back():
    log = []
    assert run_now(two_requests(log)) == 13
    assert [name for name, _ in log] == ["start", "between"]


def test_background_runs_requests_off_the_polling_thread_and_own_code_on_it():
    here = threading.get_ident()
    request_threads = []

    def recorded_add(a, b):
        request_threads.append(threading.get_ident())
        return a + b

    def operation(log):
        log.append(threading.get_ident())
        first = yield remote(recorded_add, 1, 2)
        log.append(threading.get_ident())
        return (yield remote(recorded_add, first, 10))

    log = []
    assert BackgroundOperation(operation(log)).wait(5) == 13
    assert log == [here, here]
    assert len(request_threads) == 2 and here not in request_threads


def test_poll_returns_at_once_while_a_request_is_still_running():
    release = threading.Event()

    def operation():
        yield remote(release.wait, 10)
        return "done"

    running = BackgroundOperation(operation())
    assert running.poll() is False
    with pytest.raises(RuntimeError, match="still running"):
        running.result()
    release.set()
    assert running.wait(5) == "done"


def test_an_error_of_the_operation_is_raised_by_result():
    def operation():
        yield remote(add, 1, 2)
        raise UserFacingError("Select a CT volume first.")

    with pytest.raises(UserFacingError, match="Select a CT volume"):
        BackgroundOperation(operation()).wait(5)
    with pytest.raises(UserFacingError, match="refused"):
        BackgroundOperation(x for x in [remote(fail, ClientError(404, "no such project"))]).wait(5)
