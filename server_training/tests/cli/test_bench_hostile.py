"""``covidal bench-hostile`` through the real entry point: bad options are one-line errors (the run itself is
tested in tests/bench/test_hostile.py)."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (("--mutations", "-5"), ["--mutations", "negative"]),
        (("--stalled", "many"), ["--stalled"]),
        (("--dicom", "/no/such/series"), ["--dicom", "not a folder"]),
    ],
)
def test_bad_options_are_one_line_errors(cli, argv, words):
    cli("bench-hostile", *argv).assert_user_error(*words)
