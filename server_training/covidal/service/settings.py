"""Settings of one running ``covidal serve`` service."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from covidal.service.uploads.limits import DecodeLimits
from covidal.validation import check_int, check_real

DEFAULT_MAX_UPLOAD_BYTES = 2 * 1024**3
DEFAULT_LEASE_SECONDS = 15 * 60.0
DEFAULT_CACHE_BYTES = 2 * 1024**3
DEFAULT_MAX_VOXELS = 2**28  # 512 x 512 x 1024: a long thin-slice CT; 512 MiB of int16
DEFAULT_DECODE_TIMEOUT_S = 120.0
DEFAULT_BODY_TIMEOUT_S = 30.0
DEFAULT_MAX_CONCURRENT_UPLOADS = 4
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")


@dataclass(frozen=True)
class ServiceSettings:
    """What the HTTP service needs to know.

    Attributes:
        project_dir: the store folder (SQLite database plus uploaded files); created if missing.
        token: when set, every request needs ``Authorization: Bearer <token>`` (401 otherwise).
        device: where models run (``"cpu"`` or ``"cuda"``); phase 1 runs no model.
        max_upload_bytes: the largest volume upload accepted (413 above it).
        lease_seconds: how long a region handed to an annotator stays reserved for them.
        cache_bytes: memory the service may keep decoded volumes and their network inputs in between
            requests (:class:`~covidal.service.cache.ServiceCache`); 0 keeps nothing, models included.
        max_voxels: the most voxels an uploaded volume or label may decode to (413 above it, before decoding);
            a DICOM zip may expand to 4 bytes per voxel of it.
        decode_timeout_s: the longest an upload's decoding (in a child process) may take (422 past it).
        body_timeout_s: the longest a request body may pause between two parts (408 past it).
        max_concurrent_uploads: uploads received or decoded at once (503 for one more).
        allowed_hosts: names the service answers to in the ``Host`` header besides the loopback ones
            (:data:`LOOPBACK_HOSTS`), e.g. the address it binds; lower-cased, IPv6 literals in brackets.

    Raises:
        ValueError: an empty token, a non-positive limit, lease or timeout, a negative cache size, an unknown
            device, a host name with spaces or slashes.
    """

    project_dir: Path
    token: str | None = None
    device: str = "cpu"
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES
    lease_seconds: float = DEFAULT_LEASE_SECONDS
    cache_bytes: int = DEFAULT_CACHE_BYTES
    max_voxels: int = DEFAULT_MAX_VOXELS
    decode_timeout_s: float = DEFAULT_DECODE_TIMEOUT_S
    body_timeout_s: float = DEFAULT_BODY_TIMEOUT_S
    max_concurrent_uploads: int = DEFAULT_MAX_CONCURRENT_UPLOADS
    allowed_hosts: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "project_dir", Path(self.project_dir))
        if self.token is not None and (not self.token or self.token != self.token.strip()):
            raise ValueError("the token must be a non-empty string without surrounding whitespace")
        if self.device not in ("cpu", "cuda"):
            raise ValueError(f"device must be 'cpu' or 'cuda', got {self.device!r}")
        for name in ("max_upload_bytes", "max_voxels", "max_concurrent_uploads"):
            check_int(name, getattr(self, name), minimum=1)
        check_int("cache_bytes", self.cache_bytes, minimum=0)
        for name in ("lease_seconds", "decode_timeout_s", "body_timeout_s"):
            check_real(name, getattr(self, name), above=0.0)
        object.__setattr__(self, "allowed_hosts", tuple(host_name(host) for host in self.allowed_hosts))

    @property
    def decode_limits(self) -> DecodeLimits:
        return DecodeLimits(self.max_voxels, self.decode_timeout_s)

    @property
    def hosts(self) -> frozenset[str]:
        """Every name accepted in the ``Host`` header (without a port)."""
        return frozenset((*LOOPBACK_HOSTS, *self.allowed_hosts))


def host_name(host: str) -> str:
    """``host`` as the ``Host`` header carries it: lower case, an IPv6 literal in brackets (``::1`` -> ``[::1]``).

    Raises:
        ValueError: empty, or holding whitespace, ``/``, ``@`` or brackets in the wrong places.
    """
    text = str(host).strip().lower()
    if ":" in text and not text.startswith("["):
        text = f"[{text}]"
    inner = text[1:-1] if text.startswith("[") and text.endswith("]") else text
    if not inner or any(c.isspace() or c in "/@[]" for c in inner) or not text.isprintable():
        raise ValueError(f"not a host name or address: {host!r}")
    return text
