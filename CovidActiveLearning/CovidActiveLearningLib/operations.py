"""Operations that mix backend requests with scene changes, run without blocking Slicer's interface.

An operation is a generator: it ``yield``s each backend request as a :class:`Remote` and gets
its result back (or its exception raised at the ``yield``); the code between the yields changes
the scene. Slow local work that touches no MRML node (hashing a CT, writing its upload file) is
yielded the same way (:func:`in_worker`), so it too runs off the GUI thread. Two drivers run the same operation:

- :func:`run_now` runs every request in place (scripts, tests);
- :class:`BackgroundOperation` runs each request in a worker thread and the scene code on the
  thread that calls :meth:`BackgroundOperation.poll` (the GUI's timer), because MRML and VTK are
  not thread-safe while a request of up to ``timeout`` seconds must not freeze the GUI.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from CovidActiveLearningLib.backend_client import BackendUnreachable, ClientError
from CovidActiveLearningLib.errors import UserFacingError

T = TypeVar("T")


@dataclass(frozen=True)
class Remote:
    """One backend request (or, with :func:`in_worker`, a local computation), ``function(*args, **kwargs)``; it
    touches no MRML node.

    With ``raw`` its :class:`ClientError`/:class:`BackendUnreachable` reach the operation as they
    are (to decide per status); otherwise they become a :class:`UserFacingError` sentence.
    """

    function: Callable[..., Any]
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    raw: bool = False

    def __call__(self) -> Any:
        try:
            return self.function(*self.args, **self.kwargs)
        except BackendUnreachable as error:
            if self.raw:
                raise
            raise UserFacingError(f"The backend does not answer ({error}). Start it, or check its address.") from None
        except ClientError as error:
            if self.raw:
                raise
            raise UserFacingError(f"The backend refused: {error.detail}") from None


def remote(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Remote:
    """A :class:`Remote` whose backend errors become sentences for the clinician."""
    return Remote(function, args, kwargs)


def in_worker(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Remote:
    """A local computation that touches no MRML node, run where requests run (its errors reach the operation
    as they are)."""
    return Remote(function, args, kwargs, raw=True)


Operation = Generator[Remote, Any, T]


def run_now(operation: Operation[T]) -> T:
    """Run ``operation`` to its end on this thread; returns its value or raises its error."""
    outcome: tuple[Any, BaseException | None] = (None, None)
    while True:
        try:
            request = operation.send(outcome[0]) if outcome[1] is None else operation.throw(outcome[1])
        except StopIteration as stop:
            return stop.value
        outcome = _attempt(request)


class BackgroundOperation(Generic[T]):
    """Drives ``operation`` from a GUI timer: requests in a worker thread, scene code in :meth:`poll`.

    Args:
        operation: started at once: its code up to the first request runs in the constructor.
    """

    def __init__(self, operation: Operation[T]) -> None:
        self._operation = operation
        self._thread: threading.Thread | None = None
        self._outcome: tuple[Any, BaseException | None] = (None, None)
        self._finished = False
        self._value: Any = None
        self._error: BaseException | None = None
        self._advance()

    def poll(self) -> bool:
        """Resume the operation if its request has come back; True once it has ended."""
        if not self._finished and self._thread is not None and not self._thread.is_alive():
            self._thread = None
            self._advance()
        return self._finished

    def result(self) -> T:
        """The operation's value, or its error raised.

        Raises:
            RuntimeError: it has not ended yet (call :meth:`poll` until it returns True).
        """
        if not self._finished:
            raise RuntimeError("the operation is still running")
        if self._error is not None:
            raise self._error
        return self._value

    def wait(self, timeout: float | None = None) -> T:
        """Poll until the operation ends (scripts and tests; a GUI polls from its timer instead)."""
        while not self.poll():
            self._thread.join(timeout)
        return self.result()

    def _advance(self) -> None:
        value, error = self._outcome
        try:
            request = self._operation.send(value) if error is None else self._operation.throw(error)
        except StopIteration as stop:
            self._finished, self._value = True, stop.value
            return
        except Exception as failure:  # noqa: BLE001 - kept for result(), which raises it on the GUI thread
            self._finished, self._error = True, failure
            return
        self._thread = threading.Thread(target=self._run, args=(request,), daemon=True)
        self._thread.start()

    def _run(self, request: Remote) -> None:
        self._outcome = _attempt(request)


def _attempt(request: Remote) -> tuple[Any, BaseException | None]:
    try:
        return request(), None
    except Exception as error:  # noqa: BLE001 - handed back to the operation at its yield
        return None, error
