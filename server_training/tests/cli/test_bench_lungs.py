"""``covidal bench-lungs`` through the real entry point: its table and JSON on a phantom, and bad input."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parents[1] / "volumes"))  # lung_phantoms (--import-mode=importlib)
from lung_phantoms import fine_chest_phantom

from covidal.data.io import write_volume
from covidal.data.volume import Volume


def test_a_phantom_gets_a_row_of_times_and_dice_and_the_json_holds_them(cli, tmp_path):
    path = tmp_path / "phantom.nrrd"
    write_volume(fine_chest_phantom(), path)
    result = cli("bench-lungs", path, "--step", "2", "--json", tmp_path / "lungs.json")
    assert result.code == 0, result.err
    (row,) = [line for line in result.out.splitlines() if line.startswith("| phantom.nrrd |")]
    assert "| 40 x 127 x 159 | 0.80 x 0.80 x 2.00 | 2 |" in row  # served step 2 at 0.8 mm
    figures = json.loads((tmp_path / "lungs.json").read_text())
    (volume,) = figures["volumes"]
    assert figures["step"] == 2 and volume["served_step"] == 2 and volume["dice"]["aerated"] > 0.95
    assert figures["demo"] == []


def test_a_ct_without_lungs_and_a_missing_file_are_one_line_errors(cli, tmp_path):
    air = tmp_path / "air.nrrd"
    write_volume(Volume(np.full((4, 16, 16), -1000, np.int16)), air)
    cli("bench-lungs", air).assert_user_error("no lungs found")
    cli("bench-lungs", tmp_path / "absent.nrrd").assert_user_error("absent.nrrd", "does not exist")
    cli("bench-lungs", "--step", "0").assert_user_error("--step")
