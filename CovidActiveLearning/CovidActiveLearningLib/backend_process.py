"""The training backend (``covidal serve``) on this computer: its own Python environment, its installation, its process.

Torch must never load inside Slicer's process, and the backend's requirements (torch, MONAI, FastAPI) do not
belong in Slicer's Python, so the backend lives in a separate virtual environment (default
``~/.covidal/backend-venv``) and runs as a child process of Slicer on 127.0.0.1. Nothing here waits for the
backend: :class:`LocalBackend` and :class:`InstallRun` start child processes and return at once, and the widget
polls them from a timer. Nothing is installed unless the clinician confirmed the :class:`InstallPlan` shown.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shlex
import shutil
import signal
import socket
import subprocess
import time
import urllib.parse
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from CovidActiveLearningLib.backend_client import BackendUnreachable, ClientError, CovidalClient
from CovidActiveLearningLib.errors import UserFacingError

COVIDAL_HOME = Path.home() / ".covidal"
DEFAULT_VENV = COVIDAL_HOME / "backend-venv"
DEFAULT_PROJECT_DIR = COVIDAL_HOME / "projects"
DEFAULT_LOG = COVIDAL_HOME / "backend.log"
DEFAULT_INSTALL_LOG = COVIDAL_HOME / "install.log"
LOOPBACK = "127.0.0.1"
LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1"})
DEFAULT_PORT = 8765  # covidal serve's default
MIN_PYTHON = (3, 11)
TORCH_REQUIREMENT = "torch==2.13.0"  # the version the backend is tested with (server_training/constraints.txt)
# Checked without importing them: importing torch takes seconds, and the check runs when the clinician clicks.
REQUIRED_MODULES = ("covidal.cli.main", "torch", "monai", "fastapi", "uvicorn")
PROBE_TIMEOUT_S = 2.0
STOP_GRACE_S = 20.0  # the server stops a running training job first
CANCEL_GRACE_S = 3.0  # pip stops at once
LOG_TAIL_BYTES = 64 * 1024
# Slicer's launcher points these at Slicer's own Python; another interpreter must not inherit them.
_PYTHON_VARIABLES = (
    "PYTHONHOME",
    "PYTHONPATH",
    "PYTHONSTARTUP",
    "PYTHONEXECUTABLE",
    "VIRTUAL_ENV",
    "__PYVENV_LAUNCHER__",
)
_WINDOWS = os.name == "nt"


def child_environment(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for the backend's interpreter: ``base`` (default: this process's environment) without
    Python variables, with unbuffered output so the log shows progress as it happens.

    Inside Slicer pass ``slicer.util.startupEnvironment()``: the environment before Slicer's launcher added its
    library paths.
    """
    environment = {
        key: value for key, value in (os.environ if base is None else base).items() if key not in _PYTHON_VARIABLES
    }
    environment["PYTHONUNBUFFERED"] = "1"
    return environment


def loopback_port(url: str) -> int:
    """The TCP port of a backend URL on this computer (``http://127.0.0.1:8765``, ``http://localhost:9000``).

    Raises:
        UserFacingError: the URL is not an http URL of 127.0.0.1 / localhost.
    """
    parts = urllib.parse.urlsplit(url.strip())
    try:
        port = parts.port or (DEFAULT_PORT if parts.scheme == "http" else None)
    except ValueError:
        port = None
    if parts.scheme != "http" or parts.hostname not in LOOPBACK_NAMES or port is None:
        raise UserFacingError(
            f"A local backend needs a URL on this computer, such as http://{LOOPBACK}:{DEFAULT_PORT} "
            f"(the backend URL is '{url}')."
        )
    return port


def port_is_free(port: int, host: str = LOOPBACK) -> bool:
    """Whether nothing listens on ``host:port`` right now (connections of a stopped server waiting out TIME_WAIT
    do not count: the server binds with SO_REUSEADDR, as this probe does on POSIX)."""
    with socket.socket() as probe:
        if not _WINDOWS:  # on Windows the option would allow binding over a live listener
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def python_version(python: Path | str, environment: Mapping[str, str] | None = None) -> tuple[int, int] | None:
    """``(major, minor)`` of the interpreter ``python``, or None when it does not run."""
    try:
        result = subprocess.run(
            [str(python), "-c", "import sys; print(*sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
            env=child_environment(environment),
            stdin=subprocess.DEVNULL,
        )
        if result.returncode != 0:
            return None
        major, minor = result.stdout.split()
        return int(major), int(minor)
    except (OSError, subprocess.SubprocessError, ValueError):
        return None


def find_base_python(
    candidates: Sequence[Path | str] | None = None, environment: Mapping[str, str] | None = None
) -> Path | None:
    """The first interpreter of Python 3.11 or newer among ``candidates``, to create the backend's environment from.

    The default candidates are ``python3.13``, ``python3.12``, ``python3.11``, ``python3`` and ``python`` on the
    ``PATH`` of ``environment``. Slicer's own interpreter is not among them: a virtual environment made from it
    depends on Slicer's launcher; pass it explicitly to use it anyway.
    """
    if candidates is None:
        search_path = (os.environ if environment is None else environment).get("PATH", os.defpath)
        names = ("python3.13", "python3.12", "python3.11", "python3", "python")
        candidates = [found for found in (shutil.which(name, path=search_path) for name in names) if found]
    for candidate in candidates:
        version = python_version(candidate, environment)
        if version is not None and version >= MIN_PYTHON:
            return Path(candidate)
    return None


@dataclass(frozen=True)
class BackendSource:
    """What pip installs as the backend: the repository's ``server_training`` folder or a ``covidal-*.whl`` file."""

    path: Path

    @classmethod
    def from_path(cls, path: Path | str) -> BackendSource:
        """Check that ``path`` is a backend pip can install.

        Raises:
            UserFacingError: neither a folder with ``pyproject.toml`` and ``covidal/`` nor a ``covidal`` wheel.
        """
        path = Path(path).expanduser().resolve()
        is_checkout = (path / "pyproject.toml").is_file() and (path / "covidal").is_dir()
        is_wheel = path.is_file() and path.suffix == ".whl" and path.name.startswith("covidal-")
        if not (is_checkout or is_wheel):
            raise UserFacingError(
                f"{path} is not the backend: choose the repository's server_training folder or a covidal-*.whl file."
            )
        return cls(path)

    @property
    def constraints(self) -> Path | None:
        """The pinned versions the backend was tested with (a source folder only)."""
        constraints = self.path / "constraints.txt"
        return constraints if constraints.is_file() else None


def checkout_source() -> BackendSource | None:
    """``server_training`` of the repository this module runs from (a scripted install from the source tree);
    None in a built extension, which does not carry the backend."""
    folder = Path(__file__).resolve().parents[2] / "server_training"
    try:
        return BackendSource.from_path(folder)
    except UserFacingError:
        return None


@dataclass(frozen=True)
class InstallPlan:
    """The exact commands that install the backend, to show the clinician before anything runs."""

    commands: tuple[tuple[str, ...], ...]

    def text(self) -> str:
        """One shell-quoted line per command."""
        return "\n".join(shlex.join(command) for command in self.commands)


@dataclass(frozen=True)
class BackendEnvironment:
    """The virtual environment the backend runs in (``folder``), separate from Slicer's Python."""

    folder: Path = DEFAULT_VENV

    @property
    def python(self) -> Path:
        return self.folder / ("Scripts/python.exe" if _WINDOWS else "bin/python")

    def exists(self) -> bool:
        """Whether the environment's interpreter is there (the backend may still be missing from it)."""
        return self.python.is_file()

    def is_installed(self, environment: Mapping[str, str] | None = None) -> bool:
        """Whether the environment's interpreter finds the backend and its requirements (a quick child process
        that imports none of them)."""
        if not self.exists():
            return False
        check = (
            "import importlib.util, sys; "
            f"sys.exit(0 if all(importlib.util.find_spec(m) for m in {REQUIRED_MODULES!r}) else 1)"
        )
        try:
            return (
                subprocess.run(
                    [str(self.python), "-c", check],
                    capture_output=True,
                    timeout=60,
                    check=False,
                    env=child_environment(environment),
                    stdin=subprocess.DEVNULL,
                ).returncode
                == 0
            )
        except (OSError, subprocess.SubprocessError):
            return False

    def install_plan(self, source: BackendSource, base_python: Path | str | None = None) -> InstallPlan:
        """Create the environment from ``base_python`` (unless it exists), install the pinned torch, then the
        backend from ``source``, and finally import it once to prove it works.

        Raises:
            UserFacingError: the environment must be created and ``base_python`` is missing or older than 3.11.
        """
        python = str(self.python)
        pip = (python, "-m", "pip", "install", "--disable-pip-version-check")
        pins = ("-c", str(source.constraints)) if source.constraints else ()
        create: tuple[tuple[str, ...], ...] = ()
        if not self.exists():
            version = python_version(base_python) if base_python else None
            if version is None or version < MIN_PYTHON:
                raise UserFacingError(
                    "The backend needs Python 3.11 or newer to create its environment; "
                    f"{base_python or 'none was found'} is not. Install one, or choose it."
                )
            create = ((str(base_python), "-m", "venv", str(self.folder)),)
        verify = (python, "-c", "import covidal.cli.main, torch, monai, fastapi, uvicorn; print('backend installed')")
        return InstallPlan(create + ((*pip, TORCH_REQUIREMENT, *pins), (*pip, str(source.path), *pins), verify))


class InstallRun:
    """An :class:`InstallPlan` running in the background, one command after another, all output in one log.

    Poll it like a ``subprocess.Popen``: :meth:`poll` returns None while it runs, then the exit status (0 when
    every command succeeded, else the failing command's status; later commands do not run).
    """

    def __init__(self, plan: InstallPlan, log_path: Path, environment: Mapping[str, str] | None = None) -> None:
        self.plan = plan
        self.log_path = Path(log_path)
        self.returncode: int | None = None
        self.failed_command: tuple[str, ...] | None = None
        self._environment = child_environment(environment)
        self._index = 0
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_path.write_bytes(b"")
        self._process = self._start(0)

    @property
    def step(self) -> tuple[int, int]:
        """``(number of the running command, number of commands)``, 1-based."""
        return self._index + 1, len(self.plan.commands)

    def poll(self) -> int | None:
        """Start the next command when the current one has succeeded; the exit status once all are done."""
        if self.returncode is not None:
            return self.returncode
        status = self._process.poll()
        if status is None:
            return None
        if status != 0:
            self.failed_command = self.plan.commands[self._index]
            self.returncode = status
        elif self._index + 1 == len(self.plan.commands):
            self.returncode = 0
        else:
            self._index += 1
            self._process = self._start(self._index)
        return self.returncode

    def cancel(self) -> None:
        """Stop the running command; later ones do not run (``returncode`` becomes the signal's negative)."""
        if self.returncode is None:
            _stop_process_group(self._process, CANCEL_GRACE_S)
            self.failed_command = self.plan.commands[self._index]
            self.returncode = self._process.returncode

    def log_tail(self, lines: int = 40) -> str:
        return _tail(self.log_path, lines)

    def _start(self, index: int) -> subprocess.Popen:
        command = self.plan.commands[index]
        with open(self.log_path, "ab") as log:
            log.write(f"$ {shlex.join(command)}\n".encode())
            log.flush()
            return subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self._environment,
                **_new_process_group(),
            )


@dataclass(eq=False)  # identity: one entry per object in the set of running backends
class LocalBackend:
    """``covidal serve`` as a child process on 127.0.0.1, run by the backend environment's ``python``.

    ``start`` returns at once; the widget then calls :meth:`poll_ready` from a timer until the server answers.
    The server stops when :meth:`stop` is called, when this object is garbage collected, and when the Python
    interpreter exits (Slicer quitting), whichever comes first.
    """

    python: Path
    project_dir: Path = DEFAULT_PROJECT_DIR
    log_path: Path = DEFAULT_LOG
    port: int = DEFAULT_PORT
    device: str = "cpu"
    environment: Mapping[str, str] | None = None
    process: subprocess.Popen | None = field(default=None, init=False, repr=False)
    _kill_after: float | None = field(default=None, init=False, repr=False)

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def command(self) -> list[str]:
        return [
            str(self.python),
            "-m",
            "covidal.cli.main",
            "serve",
            "--project-dir",
            str(self.project_dir),
            "--host",
            LOOPBACK,
            "--port",
            str(self.port),
            "--device",
            self.device,
        ]

    def start(self) -> None:
        """Launch the server (its output goes to ``log_path``, replacing the previous run's log).

        Raises:
            UserFacingError: it is already running, the interpreter is missing, the port is taken, or the project
                folder or the log cannot be created.
        """
        if self.is_running():
            raise UserFacingError(f"The local backend is already running at {self.url}.")
        if not Path(self.python).is_file():
            raise UserFacingError(f"The backend's Python {self.python} does not exist: install the backend first.")
        if not port_is_free(self.port):
            raise UserFacingError(
                f"Port {self.port} of {LOOPBACK} is already in use: a backend may be running "
                "there already (try Connect), or put another port in the backend URL."
            )
        try:
            Path(self.project_dir).mkdir(parents=True, exist_ok=True)
            Path(self.log_path).parent.mkdir(parents=True, exist_ok=True)
            with open(self.log_path, "wb") as log:  # the child keeps its own handle on the file
                self.process = subprocess.Popen(
                    self.command,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env=child_environment(self.environment),
                    **_new_process_group(),
                )
        except OSError as error:
            raise UserFacingError(
                f"The local backend cannot start: {error.strerror or error} ({error.filename or self.python})."
            ) from None
        self._kill_after = None
        _RUNNING.add(self)

    def is_running(self) -> bool:
        """Whether the server process is alive; it also finishes a :meth:`request_stop` whose grace has passed."""
        if self.process is None or self.process.poll() is not None:
            return False
        if self._kill_after is not None and time.monotonic() > self._kill_after:
            _kill_process_group(self.process)
            self.process.wait()
            return False
        return True

    def poll_ready(self, client: CovidalClient | None = None) -> bool:
        """One quick health check: True once the server answers, False while it is still starting.

        Args:
            client: the client to ask (default: one for :attr:`url` that waits at most a few seconds).

        Raises:
            UserFacingError: the server was not started, or it exited (the message ends with its log's tail).
        """
        if self.process is None:
            raise UserFacingError("The local backend has not been started.")
        if not self.is_running():
            raise UserFacingError(
                f"The local backend stopped (exit status {self.process.returncode}). "
                f"The end of its log {self.log_path}:\n{self.log_tail(15)}"
            )
        try:
            (client or CovidalClient(self.url, timeout=PROBE_TIMEOUT_S)).health()
        except BackendUnreachable:
            return False
        except ClientError as error:
            raise UserFacingError(
                f"Something else answers at {self.url} ({error}); stop it or use another port."
            ) from None
        return True

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines of the server's log ('' before the first start)."""
        return _tail(Path(self.log_path), lines)

    def request_stop(self, grace_seconds: float = STOP_GRACE_S) -> None:
        """Ask the server to stop (SIGTERM) and return at once; :meth:`is_running` kills it once
        ``grace_seconds`` have passed."""
        if self.is_running():
            self.process.terminate()
            self._kill_after = time.monotonic() + grace_seconds
        _RUNNING.discard(self)

    def stop(self, timeout: float = STOP_GRACE_S) -> None:
        """Stop the server and wait for it: SIGTERM, then after ``timeout`` seconds SIGKILL to its process group
        (a training job it runs included)."""
        if self.process is not None:
            _stop_process_group(self.process, timeout)
        _RUNNING.discard(self)

    def __del__(self) -> None:
        # During interpreter shutdown anything may already be gone.
        with contextlib.suppress(Exception):
            self.stop(timeout=5)


@dataclass(frozen=True)
class BackendPoll:
    """What one :meth:`BackendSupervisor.poll` saw, for the widget to show."""

    status: str | None = None  # a new line for the status label (None: keep the current one)
    log: str | None = None  # the tail of the running installation's or server's log (None: nothing runs)
    ready_url: str | None = None  # the started server answers now (reported once): connect to it
    error: UserFacingError | None = None  # the server or the installation failed


class BackendSupervisor:
    """The module's Backend section without Qt: installs the backend (a plan the clinician confirmed), starts,
    watches and stops the local server. Every method returns at once; the widget calls :meth:`poll` from a timer.

    Args:
        environment: where the backend is installed (default ``~/.covidal/backend-venv``).
        startup_environment: the environment variables for its processes (inside Slicer:
            ``slicer.util.startupEnvironment()``; default this process's).
    """

    def __init__(
        self,
        environment: BackendEnvironment | None = None,
        startup_environment: Mapping[str, str] | None = None,
        install_log: Path = DEFAULT_INSTALL_LOG,
        project_dir: Path = DEFAULT_PROJECT_DIR,
        server_log: Path = DEFAULT_LOG,
    ) -> None:
        self.environment = environment or BackendEnvironment()
        self.startup_environment = startup_environment
        self.install_log = install_log
        self.project_dir = project_dir
        self.server_log = server_log
        self.backend: LocalBackend | None = None
        self.installation: InstallRun | None = None
        self._awaiting_backend = False

    def is_installed(self) -> bool:
        return self.environment.is_installed(self.startup_environment)

    def is_running(self) -> bool:
        return self.backend is not None and self.backend.is_running()

    def plan_install(
        self, source: BackendSource, choose_python: Callable[[], Path | None] = lambda: None
    ) -> InstallPlan:
        """The plan to show before installing; ``choose_python`` is asked when no Python 3.11+ is on the PATH.

        Raises:
            UserFacingError: an installation is running, or no Python 3.11+ to create the environment.
        """
        if self.installation is not None:
            raise UserFacingError("The backend is being installed already; its log shows its progress.")
        base_python = None
        if not self.environment.exists():
            base_python = find_base_python(environment=self.startup_environment) or choose_python()
        return self.environment.install_plan(source, base_python)

    def start_install(self, plan: InstallPlan) -> str:
        """Run a plan the clinician confirmed; returns the status line."""
        self.installation = InstallRun(plan, self.install_log, self.startup_environment)
        return f"Installing the backend: step 1 of {len(plan.commands)}..."

    def start(self, url: str, device: str = "cpu") -> str:
        """Start the server on the port of ``url`` (a URL of this computer); returns the status line.

        Raises:
            UserFacingError: an installation is running, the backend is not installed, the URL is not local,
                the server runs already or the port is taken.
        """
        if self.installation is not None:
            raise UserFacingError("Wait until the backend is installed.")
        if not self.is_installed():
            raise UserFacingError(
                f"The backend is not installed in {self.environment.folder}: click 'Install backend...' first."
            )
        if self.is_running():
            raise UserFacingError(f"The local backend is already running at {self.backend.url}.")
        self.backend = LocalBackend(
            self.environment.python,
            self.project_dir,
            self.server_log,
            loopback_port(url),
            device,
            self.startup_environment,
        )
        self.backend.start()
        self._awaiting_backend = True
        return f"Starting the local backend at {self.backend.url}..."

    def request_stop(self) -> str:
        """Ask the server to stop, without waiting; returns the status line."""
        if self.backend is not None:
            self.backend.request_stop()
        self._awaiting_backend = False  # a stop before it was ready is no failure
        return "Stopping the local backend..."

    def stop(self) -> None:
        """Stop the server and any installation, waiting for them (Slicer is quitting)."""
        if self.installation is not None:
            self.installation.cancel()
        if self.backend is not None:
            self.backend.stop()

    def poll(self) -> BackendPoll:
        """Advance and report: the installation's steps, the server becoming ready, the server stopping."""
        if self.installation is not None:
            return self._poll_installation()
        if self.backend is not None:
            return self._poll_backend()
        return BackendPoll()

    def _poll_installation(self) -> BackendPoll:
        status = self.installation.poll()
        log = self.installation.log_tail(200)
        step, count = self.installation.step
        if status is None:
            return BackendPoll(f"Installing the backend: step {step} of {count}...", log)
        self.installation = None
        if status == 0:
            return BackendPoll("The backend is installed: click 'Start local backend'.", log)
        return BackendPoll(
            "Installing the backend failed.",
            log,
            error=UserFacingError(
                f"Installing the backend failed at step {step} of {count} (exit status {status}). The end of its log "
                f"{self.install_log}:\n{_tail(self.install_log, 15)}"
            ),
        )

    def _poll_backend(self) -> BackendPoll:
        log = self.backend.log_tail(200)
        if not self._awaiting_backend:
            if self.backend.is_running():
                return BackendPoll(log=log)
            self.backend = None
            return BackendPoll("The local backend has stopped.", log)
        try:
            ready = self.backend.poll_ready()
        except UserFacingError as error:
            self._awaiting_backend = False
            self.backend = None
            return BackendPoll("The local backend did not start.", log, error=error)
        if not ready:
            return BackendPoll(log=log)
        self._awaiting_backend = False
        return BackendPoll(f"The local backend runs at {self.backend.url}.", log, ready_url=self.backend.url)


_RUNNING: weakref.WeakSet[LocalBackend] = weakref.WeakSet()


@atexit.register
def _stop_running_backends() -> None:
    """Slicer quitting: stop every local backend this process started."""
    for backend in list(_RUNNING):
        backend.stop(timeout=10)


def _new_process_group() -> dict:
    """Popen arguments that put the child (and what it starts) in its own process group, so a stop reaches its
    children and a Ctrl+C in Slicer's terminal does not."""
    return {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP} if _WINDOWS else {"start_new_session": True}


def _stop_process_group(process: subprocess.Popen, timeout: float) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            _kill_process_group(process)
    process.wait()


def _kill_process_group(process: subprocess.Popen) -> None:
    if _WINDOWS:
        process.kill()
        return
    try:
        os.killpg(process.pid, signal.SIGKILL)  # the group id is the child's pid (start_new_session)
    except ProcessLookupError:
        pass


def _tail(path: Path, lines: int) -> str:
    try:
        with open(path, "rb") as handle:
            handle.seek(max(0, handle.seek(0, os.SEEK_END) - LOG_TAIL_BYTES))
            text = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])
