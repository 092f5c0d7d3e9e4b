"""``covidal bench-thresholds`` through the real entry point: bad input is one line and exit 2, before any case is
made. (Its scores are tested in tests/bench/test_thresholds.py; a full run needs a finished demo.)"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "bench"))  # test_thresholds (--import-mode=importlib)
from test_thresholds import untrained_model


def test_bad_input_is_a_one_line_error(cli, tmp_path):
    cli("bench-thresholds", tmp_path).assert_user_error("no trained model under", "covidal demo")
    model = tmp_path / "service" / "jobs" / "1" / "checkpoint" / "model.pt"
    model.parent.mkdir(parents=True)
    untrained_model(model)
    cli("bench-thresholds", tmp_path, "--test-seed", "2").assert_user_error("test seed 2 is also a validation seed")
    cli("bench-thresholds", tmp_path, "--thresholds", "0.5", "1.2").assert_user_error("(0, 1)")
    cli("bench-thresholds", tmp_path, "--validation-seeds", "x").assert_user_error("--validation-seeds")
