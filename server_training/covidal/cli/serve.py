"""``covidal serve``: run the HTTP service the Slicer module talks to (FastAPI + uvicorn).

It binds to 127.0.0.1 by default. Binding any other address needs ``--token-file``;
with a token, every request needs ``Authorization: Bearer <token>`` (401 otherwise).
It answers only requests whose Host header names it (loopback names, the bound
address and --allow-host names), and without a token refuses requests from web pages
(a foreign Origin). Everything it writes is its user's alone (umask 077: folders 0700,
files 0600). The OpenAPI schema is served at ``/openapi.json``.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import stat
import sys
from pathlib import Path

from covidal.cli.options import non_negative_int, positive_float, positive_int
from covidal.errors import CovidalError
from covidal.service.settings import (
    DEFAULT_BODY_TIMEOUT_S,
    DEFAULT_CACHE_BYTES,
    DEFAULT_DECODE_TIMEOUT_S,
    DEFAULT_LEASE_SECONDS,
    DEFAULT_MAX_CONCURRENT_UPLOADS,
    DEFAULT_MAX_UPLOAD_BYTES,
    DEFAULT_MAX_VOXELS,
    ServiceSettings,
    host_name,
)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "serve", help="run the HTTP service for the Slicer module", description=__doc__.split(":", 1)[1].strip()
    )
    parser.add_argument(
        "--project-dir",
        type=Path,
        required=True,
        help="folder of the project store (database and uploaded volumes); created if missing",
    )
    parser.add_argument("--host", default=DEFAULT_HOST, help=f"address to bind (default {DEFAULT_HOST})")
    parser.add_argument("--port", type=_port, default=DEFAULT_PORT, help=f"TCP port (default {DEFAULT_PORT})")
    parser.add_argument(
        "--token-file",
        type=Path,
        default=None,
        help="file holding the bearer token every request must send (required off loopback)",
    )
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where models run (default cpu)")
    parser.add_argument(
        "--max-upload-mb",
        type=positive_int,
        default=DEFAULT_MAX_UPLOAD_BYTES // 2**20,
        help=f"largest volume upload in MiB (default {DEFAULT_MAX_UPLOAD_BYTES // 2**20})",
    )
    parser.add_argument(
        "--lease-seconds",
        type=positive_float,
        default=DEFAULT_LEASE_SECONDS,
        help=f"how long a region handed to an annotator stays theirs (default {DEFAULT_LEASE_SECONDS:g})",
    )
    parser.add_argument(
        "--cache-mb",
        type=non_negative_int,
        default=DEFAULT_CACHE_BYTES // 2**20,
        help="memory in MiB for decoded volumes and their network inputs kept between cycles; "
        "0 keeps nothing and reads every file again, models included "
        f"(default {DEFAULT_CACHE_BYTES // 2**20})",
    )
    parser.add_argument(
        "--max-voxels",
        type=positive_int,
        default=DEFAULT_MAX_VOXELS,
        help="most voxels an uploaded volume or label may decode to, refused (413) from its header "
        f"before decoding; a DICOM zip may expand to 4 bytes per voxel (default {DEFAULT_MAX_VOXELS}"
        ", 512 x 512 x 1024)",
    )
    parser.add_argument(
        "--decode-timeout",
        type=positive_float,
        default=DEFAULT_DECODE_TIMEOUT_S,
        help=f"seconds an upload's decoding may take (default {DEFAULT_DECODE_TIMEOUT_S:g})",
    )
    parser.add_argument(
        "--body-timeout",
        type=positive_float,
        default=DEFAULT_BODY_TIMEOUT_S,
        help="seconds a request body may pause before the request is ended with 408 "
        f"(default {DEFAULT_BODY_TIMEOUT_S:g})",
    )
    parser.add_argument(
        "--max-uploads",
        type=positive_int,
        default=DEFAULT_MAX_CONCURRENT_UPLOADS,
        help=f"uploads received or decoded at once; one more gets 503 (default {DEFAULT_MAX_CONCURRENT_UPLOADS})",
    )
    parser.add_argument(
        "--allow-host",
        action="append",
        default=[],
        type=_host,
        metavar="NAME",
        help="a name clients reach the service by (the Host header) besides 127.0.0.1, localhost, "
        "[::1] and --host; repeat for several (needed with --host 0.0.0.0)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    os.umask(0o077)  # the store, uploads, logs and checkpoints are the clinician's data: their user's alone
    import uvicorn

    from covidal.service.app import create_app

    uvicorn.run(create_app(settings), host=args.host, port=args.port, log_level="info")
    return 0


def settings_from_args(args: argparse.Namespace) -> ServiceSettings:
    """The service settings; CovidalError for a non-loopback address without a token, or a bad token file."""
    token = _read_token(args.token_file) if args.token_file is not None else None
    if token is None and not is_loopback(args.host):
        raise CovidalError(
            f"--host {args.host} is reachable from other machines: give --token-file with a secret "
            "token, or bind to 127.0.0.1"
        )
    if args.device == "cuda":
        from covidal.training.train_config import resolve_device

        resolve_device("cuda")  # a clear error now rather than when the first job runs
    return ServiceSettings(
        args.project_dir,
        token,
        args.device,
        args.max_upload_mb * 2**20,
        args.lease_seconds,
        args.cache_mb * 2**20,
        max_voxels=args.max_voxels,
        decode_timeout_s=args.decode_timeout,
        body_timeout_s=args.body_timeout,
        max_concurrent_uploads=args.max_uploads,
        allowed_hosts=(_host_or_error(args.host), *args.allow_host),
    )


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
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        print(
            f"covidal: warning: --token-file {path} can be read by other users (mode {stat.filemode(mode)}): "
            f"anyone who reads it can use the service; run chmod 600 {path}",
            file=sys.stderr,
        )
    return token


def _host_or_error(host: str) -> str:
    try:
        return host_name(host)
    except ValueError as error:
        raise CovidalError(f"--host: {error}") from None


def _host(text: str) -> str:
    try:
        return host_name(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _port(text: str) -> int:
    port = positive_int(text)
    if port > 65535:
        raise argparse.ArgumentTypeError(f"must be a TCP port 1..65535, got {port}")
    return port
