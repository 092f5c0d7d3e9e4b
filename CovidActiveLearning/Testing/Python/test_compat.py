"""Tests of CovidActiveLearningLib/compat.py: the sentence an older Slicer shows instead of a traceback."""

import pytest

from CovidActiveLearningLib.compat import unsupported_reason


@pytest.mark.parametrize(
    ("python", "slicer"), [((3, 9, 10), "5.8.1"), ((3, 6, 7), "4.11.20210226"), ((3, 10, 0), None)]
)
def test_an_older_slicer_gets_one_readable_sentence(python, slicer):
    reason = unsupported_reason(python, slicer)
    running = ".".join(str(part) for part in python)
    assert reason.startswith("Covid Active Learning needs 3D Slicer 5.10 or newer (Python 3.11+); this Slicer")
    assert f"runs Python {running}." in reason and "\n" not in reason
    assert (f"({slicer})" in reason) if slicer else "this Slicer runs" in reason


@pytest.mark.parametrize("python", [(3, 11, 0), (3, 12, 4), (4, 0, 0)])
def test_slicer_5_10_and_newer_run_the_module(python):
    assert unsupported_reason(python, "5.10.0") is None
    assert unsupported_reason() is None  # the Python running these tests is 3.11+
