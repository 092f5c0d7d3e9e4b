"""A client of the ``covidal serve`` HTTP API using only the standard library (it runs inside 3D Slicer's Python).

Every method returns the decoded JSON of the answer (dicts and lists), raises
:class:`ClientError` for an HTTP error status (with the server's ``detail``) and
:class:`BackendUnreachable` when the server cannot be reached. Geometry is in
voxel indices ``(i, j, k)``; each volume's ``ijk_to_ras`` places it in RAS.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import uuid
import zipfile
from pathlib import Path
from typing import Any, BinaryIO

CHUNK_BYTES = 1 << 20
_FORMATS = ((".nrrd", "nrrd"), (".nii.gz", "nifti"), (".nii", "nifti"), (".zip", "dicom-zip"))


class ClientError(Exception):
    """The server answered with an error status (4xx for a bad request, 5xx for a server fault)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"HTTP {status}: {detail}")
        self.status = status
        self.detail = detail


class BackendUnreachable(Exception):
    """No answer from the server (not running, wrong address, network down, timeout)."""


class CovidalClient:
    """Talks to ``covidal serve`` at ``base_url`` (e.g. ``http://127.0.0.1:8765``).

    Args:
        token: sent as ``Authorization: Bearer <token>`` when given.
        timeout: seconds to wait for the server on each request.
    """

    def __init__(self, base_url: str, token: str | None = None, timeout: float = 30) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout

    # Service and projects

    def health(self) -> dict:
        return self._json("GET", "/health")

    def create_project(
        self,
        name: str,
        *,
        model_kind: str | None = None,
        grid_k: int | None = None,
        strategy: str | None = None,
        mc_samples: int | None = None,
        loss: str | None = None,
        settings: dict | None = None,
    ) -> dict:
        """Create a project; the choices left None take the service's defaults for its device (:meth:`defaults`)."""
        choices = {"model_kind": model_kind, "grid_k": grid_k, "strategy": strategy, "mc_samples": mc_samples}
        choices["loss"] = loss
        body = {key: value for key, value in choices.items() if value is not None}
        return self._json("POST", "/projects", {"name": name, **body, "settings": settings or {}})

    def defaults(self) -> dict:
        """The project defaults of the service's device (loss, grid, width, steps, regions per cycle, ...)."""
        return self._json("GET", "/defaults")

    def strategies(self) -> dict:
        """The region strategies a project may choose: ``names``, this device's ``default`` and every option's
        default (``strategy_params``)."""
        return self._json("GET", "/strategies")

    def list_projects(self) -> list[dict]:
        return self._json("GET", "/projects")

    def get_project(self, project_id: int) -> dict:
        return self._json("GET", f"/projects/{int(project_id)}")

    def update_project_settings(self, project_id: int, changes: dict) -> dict:
        return self._json("PATCH", f"/projects/{int(project_id)}/settings", changes)

    # Volumes

    def upload_volume(
        self, project_id: int, path: str | os.PathLike, name: str | None = None, volume_format: str | None = None
    ) -> tuple[dict, bool]:
        """Upload a NRRD/NIfTI file, a zip of a DICOM series, or a DICOM series folder (zipped here first).

        Returns:
            ``(volume, created)``: ``created`` is False when the same content was uploaded before.
        """
        path = Path(path)
        name = name or _volume_name(path)
        if path.is_dir():
            with tempfile.TemporaryDirectory(prefix="covidal-upload-") as folder:
                archive = zip_dicom_folder(path, Path(folder) / "series.zip")
                return self.upload_volume(project_id, archive, name, "dicom-zip")
        volume_format = volume_format or _format_of(path)
        query = urllib.parse.urlencode({"name": name, "format": volume_format})
        return self._upload_file("POST", f"/projects/{int(project_id)}/volumes?{query}", path)

    def list_volumes(self, project_id: int) -> list[dict]:
        return self._json("GET", f"/projects/{int(project_id)}/volumes")

    def get_volume(self, project_id: int, volume_id: int) -> dict:
        return self._json("GET", f"/projects/{int(project_id)}/volumes/{int(volume_id)}")

    def download_volume(self, project_id: int, volume_id: int, destination: str | os.PathLike) -> Path:
        """Save the volume's file, as uploaded, to ``destination``."""
        return self._download(f"/projects/{int(project_id)}/volumes/{int(volume_id)}/download", Path(destination))

    # Expert labels (unet3d projects)

    def upload_label(
        self, project_id: int, volume_id: int, path: str | os.PathLike, label_format: str | None = None
    ) -> tuple[dict, bool]:
        """Upload a NRRD/NIfTI label volume of the volume (0 background, > 0 infection, on the volume's exact grid);
        it replaces the volume's earlier label.

        Returns:
            ``(label, created)``: ``created`` is False when an earlier label was replaced.
        """
        path = Path(path)
        label_format = label_format or _format_of(path)
        query = urllib.parse.urlencode({"format": label_format})
        return self._upload_file("PUT", f"/projects/{int(project_id)}/volumes/{int(volume_id)}/label?{query}", path)

    def download_label(self, project_id: int, volume_id: int, destination: str | os.PathLike) -> Path:
        """Save the volume's label file, as uploaded, to ``destination``."""
        return self._download(f"/projects/{int(project_id)}/volumes/{int(volume_id)}/label", Path(destination))

    def list_labels(self, project_id: int) -> list[dict]:
        """The project's expert labels (``volume_id``, ``foreground_voxels``, ...), by volume id."""
        return self._json("GET", f"/projects/{int(project_id)}/labels")

    # Cycles

    def create_cycle(self, project_id: int, count: int, volume_ids: list[int] | None = None) -> dict:
        """A new cycle with ``count`` suggested regions (``suggestions``: id, volume_id, k, region, box, score, rank)."""
        body: dict[str, Any] = {"count": count}
        if volume_ids is not None:
            body["volume_ids"] = list(volume_ids)
        return self._json("POST", f"/projects/{int(project_id)}/cycles", body)

    def list_cycles(self, project_id: int) -> list[dict]:
        return self._json("GET", f"/projects/{int(project_id)}/cycles")

    def get_cycle(self, project_id: int, cycle_id: int) -> dict:
        return self._json("GET", f"/projects/{int(project_id)}/cycles/{int(cycle_id)}")

    def lease_suggestions(self, project_id: int, cycle_id: int, annotator: str, limit: int = 5) -> list[dict]:
        """Reserve up to ``limit`` unanswered regions for ``annotator`` (nobody else gets them while leased)."""
        query = urllib.parse.urlencode({"annotator": annotator, "limit": limit})
        return self._json("GET", f"/projects/{int(project_id)}/cycles/{int(cycle_id)}/suggestions?{query}")

    def download_heatmap(self, project_id: int, cycle_id: int, volume_id: int, destination: str | os.PathLike) -> Path:
        """Save the cycle's score heat map of the volume (NRRD on the volume's grid) to ``destination``."""
        return self._download(
            f"/projects/{int(project_id)}/cycles/{int(cycle_id)}/heatmap/{int(volume_id)}", Path(destination)
        )

    # Annotations

    def submit_annotation(
        self,
        project_id: int,
        suggestion_id: int,
        *,
        annotator: str,
        answer: str,
        points: list[list[int]] | None = None,
        effort_seconds: float = 0.0,
        idempotency_key: str | None = None,
    ) -> tuple[dict, bool]:
        """Answer a region (``"background"``, or ``"infection"`` with ``[[i, j, k], ...]`` points).

        Resend with the same ``idempotency_key`` after a lost answer: the stored annotation comes back.

        Returns:
            ``(annotation, created)``: ``created`` is False for a replay.
        """
        body = {
            "suggestion_id": suggestion_id,
            "annotator": annotator,
            "answer": answer,
            "points": [list(point) for point in points or []],
            "effort_seconds": effort_seconds,
            "idempotency_key": idempotency_key or uuid.uuid4().hex,
        }
        status, content = self._send(
            "POST",
            f"/projects/{int(project_id)}/annotations",
            json.dumps(body).encode(),
            {"Content-Type": "application/json"},
        )
        return json.loads(content), status == 201

    def list_annotations(self, project_id: int) -> list[dict]:
        return self._json("GET", f"/projects/{int(project_id)}/annotations")

    # Training jobs

    def start_training(
        self, project_id: int, steps: int | None = None, config: dict | None = None, kind: str = "train"
    ) -> dict:
        """Queue a training job (``status`` ``"queued"``).

        ``kind`` ``"train"`` trains a 2D project's model on every answered region (``steps`` optimiser steps);
        ``"noisy-teacher"`` trains a unet3d project's 3D model from the volumes with an expert label and the
        others (``config``: e.g. ``mode``, ``epochs``, ``steps_per_epoch``, ``patch_size``; no ``steps``);
        ``"clicks-to-3d"`` trains a 2D project's 3D model from its answers, the 2D model's pseudo-labels and any
        expert labels (the same ``config``).
        """
        body: dict[str, Any] = {"kind": kind, "config": dict(config or {})}
        if steps is not None:
            body["steps"] = steps
        return self._json("POST", f"/projects/{int(project_id)}/jobs", body)

    def list_jobs(self, project_id: int) -> list[dict]:
        return self._json("GET", f"/projects/{int(project_id)}/jobs")

    def get_job(self, project_id: int, job_id: int) -> dict:
        """The job's ``status``, ``progress`` (step, steps, loss, val_dice, eta_seconds) and ``error``."""
        return self._json("GET", f"/projects/{int(project_id)}/jobs/{int(job_id)}")

    def job_log(self, project_id: int, job_id: int) -> str:
        return self._send("GET", f"/projects/{int(project_id)}/jobs/{int(job_id)}/log", None, {})[1].decode(
            "utf-8", errors="replace"
        )

    def cancel_job(self, project_id: int, job_id: int) -> dict:
        return self._json("POST", f"/projects/{int(project_id)}/jobs/{int(job_id)}/cancel")

    def resume_job(self, project_id: int, job_id: int) -> dict:
        """Queue an interrupted job again (it continues from its last checkpoint)."""
        return self._json("POST", f"/projects/{int(project_id)}/jobs/{int(job_id)}/resume")

    # Predictions and metrics

    def predict_volume(self, project_id: int, volume_id: int, model: str = "project") -> dict:
        """Run the current model (``model="3d"``: a 2D project's 3D model) on the volume: ``voxels``,
        ``infected_ml``, ``lung_percent`` (or None)."""
        return self._json(
            "POST", f"/projects/{int(project_id)}/volumes/{int(volume_id)}/prediction?{_model_query(model)}"
        )

    def download_prediction(
        self, project_id: int, volume_id: int, destination: str | os.PathLike, model: str = "project"
    ) -> Path:
        """Save the volume's last prediction by ``model`` (uint8 NRRD on the volume's grid, 1 = infection)."""
        return self._download(
            f"/projects/{int(project_id)}/volumes/{int(volume_id)}/prediction.nrrd?{_model_query(model)}",
            Path(destination),
        )

    def learning_curve(self, project_id: int) -> list[dict]:
        """One point per finished training job: ``answers``, ``effort_seconds``, ``val_dice``."""
        return self._json("GET", f"/projects/{int(project_id)}/metrics/curve")

    def download_learning_curve(self, project_id: int, destination: str | os.PathLike) -> Path:
        """Save the learning curve plot (PNG) to ``destination``."""
        return self._download(f"/projects/{int(project_id)}/metrics/curve.png", Path(destination))

    # HTTP

    def _json(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        headers = {} if body is None else {"Content-Type": "application/json"}
        return json.loads(self._send(method, path, data, headers)[1])

    def _upload_file(self, method: str, url: str, path: Path) -> tuple[dict, bool]:
        """Stream the file at ``path`` as the request body: ``(reply, created)``, created when the status is 201."""
        with open(path, "rb") as handle:
            headers = {"Content-Type": "application/octet-stream", "Content-Length": str(path.stat().st_size)}
            status, body = self._send(method, url, handle, headers)
        return json.loads(body), status == 201

    def _download(self, path: str, destination: Path) -> Path:
        destination.parent.mkdir(parents=True, exist_ok=True)
        partial = destination.with_name(destination.name + ".part")
        with self._open("GET", path, None, {}) as response, open(partial, "wb") as handle:
            shutil.copyfileobj(response, handle, CHUNK_BYTES)
        os.replace(partial, destination)
        return destination

    def _send(self, method: str, path: str, data: bytes | BinaryIO | None, headers: dict) -> tuple[int, bytes]:
        with self._open(method, path, data, headers) as response:
            return response.status, response.read()

    def _open(self, method: str, path: str, data: bytes | BinaryIO | None, headers: dict):
        headers = {"Accept": "application/json", **headers}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(self.base_url + path, data=data, headers=headers, method=method)
        try:
            return urllib.request.urlopen(request, timeout=self.timeout)
        except urllib.error.HTTPError as error:
            with error:
                raise ClientError(error.code, _detail(error.read(), error.reason)) from None
        except (urllib.error.URLError, ConnectionError, TimeoutError) as error:
            raise BackendUnreachable(
                f"cannot reach the covidal service at {self.base_url}: {getattr(error, 'reason', error)}"
            ) from None


def zip_dicom_folder(folder: Path, destination: Path) -> Path:
    """Zip the files directly in ``folder`` (one DICOM series) to ``destination`` (stored, not compressed)."""
    with zipfile.ZipFile(destination, "w", zipfile.ZIP_STORED) as archive:
        for path in sorted(p for p in Path(folder).iterdir() if p.is_file()):
            archive.write(path, path.name)
    return destination


def _model_query(model: str) -> str:
    return urllib.parse.urlencode({"model": model})


def _format_of(path: Path) -> str:
    lower = path.name.lower()
    for suffix, volume_format in _FORMATS:
        if lower.endswith(suffix):
            return volume_format
    raise ValueError(
        f"cannot tell the format of {path}: use .nrrd, .nii, .nii.gz, .zip or a DICOM folder, or pass volume_format"
    )


def _volume_name(path: Path) -> str:
    lower = path.name.lower()
    for suffix, _ in _FORMATS:
        if lower.endswith(suffix):
            return path.name[: -len(suffix)] or path.name
    return path.name


def _detail(body: bytes, reason: str) -> str:
    """The server's ``detail`` as one readable line (FastAPI's validation errors are a list)."""
    try:
        detail = json.loads(body)["detail"]
    except (ValueError, KeyError, TypeError):
        return body.decode(errors="replace").strip() or str(reason)
    if isinstance(detail, list):
        return "; ".join(
            f"{'.'.join(str(part) for part in item.get('loc', ()))}: {item.get('msg', item)}"
            if isinstance(item, dict)
            else str(item)
            for item in detail
        )
    return str(detail)
