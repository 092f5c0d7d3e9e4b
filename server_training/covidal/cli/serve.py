"""``covidal serve``: run the HTTP service the Slicer module talks to (FastAPI + uvicorn).

It binds to 127.0.0.1 by default. Binding any other address needs ``--token-file``;
with a token, every request needs ``Authorization: Bearer <token>`` (401 otherwise).
The OpenAPI schema is served at ``/openapi.json``.
"""

from __future__ import annotations

import argparse
import ipaddress
from pathlib import Path

from covidal.cli.options import non_negative_int, positive_float, positive_int
from covidal.errors import CovidalError
from covidal.service.settings import (
    DEFAULT_CACHE_BYTES,
    DEFAULT_LEASE_SECONDS,
    DEFAULT_MAX_UPLOAD_BYTES,
    ServiceSettings,
)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765


def add_parser(commands) -> None:
    parser = commands.add_parser("serve", help="run the HTTP service for the Slicer module",
                                 description=__doc__.split(":", 1)[1].strip())
    parser.add_argument("--project-dir", type=Path, required=True,
                        help="folder of the project store (database and uploaded volumes); created if missing")
    parser.add_argument("--host", default=DEFAULT_HOST, help=f"address to bind (default {DEFAULT_HOST})")
    parser.add_argument("--port", type=_port, default=DEFAULT_PORT, help=f"TCP port (default {DEFAULT_PORT})")
    parser.add_argument("--token-file", type=Path, default=None,
                        help="file holding the bearer token every request must send (required off loopback)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where models run (default cpu)")
    parser.add_argument("--max-upload-mb", type=positive_int, default=DEFAULT_MAX_UPLOAD_BYTES // 2**20,
                        help=f"largest volume upload in MiB (default {DEFAULT_MAX_UPLOAD_BYTES // 2**20})")
    parser.add_argument("--lease-seconds", type=positive_float, default=DEFAULT_LEASE_SECONDS,
                        help=f"how long a region handed to an annotator stays theirs (default {DEFAULT_LEASE_SECONDS:g})")
    parser.add_argument("--cache-mb", type=non_negative_int, default=DEFAULT_CACHE_BYTES // 2**20,
                        help="memory in MiB for decoded volumes and their network inputs kept between cycles; "
                             "0 keeps nothing and reads every file again, models included "
                             f"(default {DEFAULT_CACHE_BYTES // 2**20})")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    import uvicorn

    from covidal.service.app import create_app

    uvicorn.run(create_app(settings), host=args.host, port=args.port, log_level="info")
    return 0


def settings_from_args(args: argparse.Namespace) -> ServiceSettings:
    """The service settings; CovidalError for a non-loopback address without a token, or a bad token file."""
    token = _read_token(args.token_file) if args.token_file is not None else None
    if token is None and not is_loopback(args.host):
        raise CovidalError(f"--host {args.host} is reachable from other machines: give --token-file with a secret "
                           "token, or bind to 127.0.0.1")
    if args.device == "cuda":
        from covidal.training.train_config import resolve_device

        resolve_device("cuda")  # a clear error now rather than when the first job runs
    return ServiceSettings(args.project_dir, token, args.device, args.max_upload_mb * 2**20, args.lease_seconds,
                           args.cache_mb * 2**20)


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine (``localhost`` or a loopback address)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _read_token(path: Path) -> str:
    try:
        token = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as error:
        raise CovidalError(f"--token-file {path} cannot be read: {error}") from None
    if not token or any(c.isspace() for c in token) or not token.isprintable():
        raise CovidalError(f"--token-file {path} must hold one token: printable characters without spaces")
    return token


def _port(text: str) -> int:
    port = positive_int(text)
    if port > 65535:
        raise argparse.ArgumentTypeError(f"must be a TCP port 1..65535, got {port}")
    return port
