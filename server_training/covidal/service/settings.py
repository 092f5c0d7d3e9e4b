"""Settings of one running ``covidal serve`` service."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from covidal.validation import check_int, check_real

DEFAULT_MAX_UPLOAD_BYTES = 2 * 1024**3
DEFAULT_LEASE_SECONDS = 15 * 60.0
DEFAULT_CACHE_BYTES = 2 * 1024**3


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

    Raises:
        ValueError: an empty token, a non-positive limit or lease, a negative cache size, an unknown device.
    """

    project_dir: Path
    token: str | None = None
    device: str = "cpu"
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES
    lease_seconds: float = DEFAULT_LEASE_SECONDS
    cache_bytes: int = DEFAULT_CACHE_BYTES

    def __post_init__(self) -> None:
        object.__setattr__(self, "project_dir", Path(self.project_dir))
        if self.token is not None and (not self.token or self.token != self.token.strip()):
            raise ValueError("the token must be a non-empty string without surrounding whitespace")
        if self.device not in ("cpu", "cuda"):
            raise ValueError(f"device must be 'cpu' or 'cuda', got {self.device!r}")
        check_int("max_upload_bytes", self.max_upload_bytes, minimum=1)
        check_real("lease_seconds", self.lease_seconds, above=0.0)
        check_int("cache_bytes", self.cache_bytes, minimum=0)
