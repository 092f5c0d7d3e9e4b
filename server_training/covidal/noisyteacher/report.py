"""The noisy-teacher experiment's table: Dice and HD95 per mode against the supervised teacher,
and how much weight each mode gave to the pseudo-labelled volumes that were deliberately corrupted.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from covidal.errors import CovidalError
from covidal.noisyteacher.run import HISTORY_FILE


@dataclass(frozen=True)
class ModeResult:
    """One evaluated run.

    Attributes:
        label: the row's name (the run folder's name).
        mode: the training mode.
        dice: mean Dice over the test volumes.
        hd95_mm: mean HD95 over the volumes where it is defined (NaN if none).
        hd95_undefined: volumes where HD95 is undefined (exactly one of prediction and reference empty).
        weight_by_case: mean weight each pseudo-labelled case received per patch (empty for the teacher).
    """

    label: str
    mode: str
    dice: float
    hd95_mm: float
    hd95_undefined: int
    weight_by_case: dict[str, float]


def load_result(evaluation: Path) -> ModeResult:
    """Read an ``evaluate-3d`` JSON and the ``history.json`` of the run it evaluated.

    Raises:
        CovidalError: a missing or unreadable file, or a JSON that is not an ``evaluate-3d`` report.
    """
    report = _read_json(evaluation, "evaluation")
    try:
        run_dir = Path(report["settings"]["model"])
        mode, dice, hd95 = report["settings"]["mode"], float(report["dice"]), report["hd95_mm"]
        undefined = int(report["hd95_undefined"])
    except (KeyError, TypeError, ValueError) as error:
        raise CovidalError(f"{evaluation} is not an `evaluate-3d` report (missing {error})") from None
    history_path = run_dir / HISTORY_FILE
    weights = {}
    if history_path.is_file():
        by_case = _read_json(history_path, "run history").get("pseudo_weight_by_case", {})
        weights = {name: float(entry["mean"]) for name, entry in by_case.items()}
    return ModeResult(run_dir.name, mode, dice, math.nan if hd95 is None else float(hd95), undefined, weights)


def corrupted_cases(corruption: Path) -> set[str]:
    """Names of the corrupted cases in a ``corrupt-labels`` record (``corruption.json``)."""
    record = _read_json(corruption, "corruption record")
    try:
        return {entry["name"] for entry in record["corrupted"]}
    except (KeyError, TypeError) as error:
        raise CovidalError(f"{corruption} is not a `corrupt-labels` record (missing {error})") from None


def markdown_table(results: list[ModeResult], reference: ModeResult, corrupted: set[str] | None = None) -> str:
    """One row per result: Dice, its change against ``reference``, HD95 and, with ``corrupted``,
    the mean per-patch weight of corrupted and of clean pseudo-labelled cases."""
    header = "| run | mode | Dice | Δ Dice vs teacher | HD95 (mm) |"
    rule = "|---|---|---:|---:|---:|"
    if corrupted is not None:
        header += " weight: corrupted | weight: clean |"
        rule += "---:|---:|"
    rows = [header, rule]
    for result in results:
        hd95 = "n/a" if math.isnan(result.hd95_mm) else f"{result.hd95_mm:.1f}"
        if result.hd95_undefined:
            hd95 += f" ({result.hd95_undefined} undefined)"
        row = f"| {result.label} | {result.mode} | {result.dice:.3f} | {result.dice - reference.dice:+.3f} | {hd95} |"
        if corrupted is not None:
            row += " " + " | ".join(_mean_weight(result, corrupted, want) for want in (True, False)) + " |"
        rows.append(row)
    return "\n".join(rows)


def _mean_weight(result: ModeResult, corrupted: set[str], want_corrupted: bool) -> str:
    weights = [w for name, w in result.weight_by_case.items() if (name in corrupted) == want_corrupted]
    return "-" if not weights else f"{sum(weights) / len(weights):.3f}"


def _read_json(path: Path, what: str) -> dict:
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise CovidalError(f"{what} {path} does not exist") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CovidalError(f"{what} {path} is not readable JSON ({error.__class__.__name__})") from None
    if not isinstance(data, dict):
        raise CovidalError(f"{what} {path} is not a JSON object")
    return data
