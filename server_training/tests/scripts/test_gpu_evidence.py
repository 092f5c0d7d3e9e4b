"""scripts/gpu_evidence.sh: its CPU form (--quick) writes every figure into one JSON; without a GPU it refuses.

Runs the real script on the real slices of ``../shared/data/covid_semiseg/train`` (at toy scale); skipped where
that data is absent.
"""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import pytest
import torch

from covidal.bench.cross_validation import METHODS, NESTED_ROWS

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "scripts" / "gpu_evidence.sh"
DATA = ROOT.parent / "shared" / "data" / "covid_semiseg" / "train"

pytestmark = pytest.mark.skipif(not (DATA / "images").is_dir(), reason="needs ../shared/data/covid_semiseg/train")


# About 3 minutes on two idle cores (every step starts its own processes); more on a shared machine.
@pytest.mark.timeout(1800)
def test_quick_form_writes_one_json_with_every_figure(tmp_path):
    done = subprocess.run(
        ["bash", str(SCRIPT), "--quick", "--out", str(tmp_path)],
        check=False,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=1800,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    evidence = json.loads((tmp_path / "evidence.json").read_text(encoding="utf-8"))
    assert evidence["quick"] is True and evidence["device"] == "cpu"
    assert set(evidence["seconds"]) == {"cv", "al", "scoring", "reweight", "cycle", "total"}
    rows = {row["method"]: row for row in evidence["cv"]["rows"]}
    assert set(rows) == set(METHODS) | NESTED_ROWS  # every method, and each threshold chosen fold by fold
    for row in rows.values():
        assert 0 <= row["dice"] <= 1 and len(row["fold_dice"]) == 2
    assert "| cb+all |" in evidence["cv"]["table"]
    assert 0 < evidence["al"]["supervised"] <= 1 and "entropy / cb-flip-rot" in evidence["al"]["table"]
    assert evidence["scoring"]["result"]["cached_slices_per_s"] > 0
    assert {timing["mode"] for timing in evidence["reweight"]["timings"]} == {"supervised", "rgsm-al"}
    assert math.isfinite(evidence["cycle"]["median_s"]) and evidence["cycle"]["device"] == "cpu"


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a CUDA GPU")
def test_full_form_without_a_gpu_stops_with_one_clear_line(tmp_path):
    done = subprocess.run(
        ["bash", str(SCRIPT), "--wait", "0", "--out", str(tmp_path)],
        check=False,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        "gpu_evidence.sh: no CUDA GPU after 0 s; use --quick for the CPU form"
    )
    assert not (tmp_path / "evidence.json").exists()
