"""The hostile benchmark's pieces: a small run of every phase against real servers (nothing crashes, nothing is
lost, every known input gets its answer), the upload-time estimate by hand, bad configurations."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from covidal.bench.hostile import HostileBenchConfig, UploadTiming, bench_hostile, summary
from covidal.errors import CovidalError

DICOM_SERIES = Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "dicom" / "dcmqi_chest_ct_3slice"


@pytest.mark.skipif(os.name != "posix" or not Path("/proc/self/status").exists(), reason="Linux /proc")
def test_a_small_run_of_every_phase(tmp_path):
    dicom = DICOM_SERIES if DICOM_SERIES.is_dir() else None
    result = bench_hostile(
        HostileBenchConfig(mutations=30, stalled=12, repeats=1, slices=2, dicom=dicom, demo=False, kills=1), tmp_path
    )
    counts = result.counts
    assert counts.tried == counts.known + 30 and counts.known >= 25
    assert (counts.crashes, counts.server_errors, counts.unexpected, counts.unclear, counts.left_behind) == (
        0,
        0,
        [],
        [],
        [],
    )
    assert result.stall.answered == result.stall.probes and result.stall.held + result.stall.refused == 12
    assert result.stall.refused >= 12 - 4  # the default bound on concurrent uploads
    assert result.acknowledged >= 3 and result.lost == 0
    assert [timing.name.split()[0] for timing in result.uploads] == ["real"] * (dicom is not None) + ["synthetic"] * 2
    assert 0 < result.peak_hostile_mib <= result.peak_end_mib <= result.peak_tree_mib
    text = summary(result)
    for line in (
        "server crashes: 0",
        "5xx answers: 0",
        "kill -9 during submits: 1 kills",
        "0 lost",
        "while 12 uploads stall: 20/20 other requests answered",
    ):
        assert line in text, text


def test_the_upload_time_change_is_the_safe_reads_extra_time_over_the_upload_before():
    timing = UploadTiming(
        "ct", (1, 1, 1), 1.0, upload_s=(1.2, 1.1, 9.0), direct_read_s=(0.3, 0.2, 0.9), safe_read_s=(0.5, 0.45, 0.95)
    )
    assert timing.extra_s == pytest.approx(0.2)  # the pairs differ by 0.2, 0.25 and 0.05
    assert timing.change == pytest.approx(0.2 / (1.2 - 0.2))
    assert timing.change_of_minima == pytest.approx((0.45 - 0.2) / (1.1 - 0.45 + 0.2))


def test_the_change_against_a_baseline_is_the_median_of_the_paired_ratios():
    timing = UploadTiming("ct", (1, 1, 1), 1.0, upload_s=(1.2, 1.0, 9.0), baseline_upload_s=(1.0, 1.0, 3.0))
    assert timing.baseline_change == pytest.approx(0.2)  # ratios 1.2, 1.0 and 3.0
    assert timing.baseline_change_of_minima == pytest.approx(0.0)


@pytest.mark.skipif(os.name != "posix", reason="the decoders' fork server")
def test_uploads_are_timed_against_a_baseline_checkouts_service(tmp_path):
    """The baseline is this checkout itself (the only one a test can count on): both services answer each upload,
    and the report compares them instead of estimating."""
    own_source = Path(__file__).resolve().parents[2]
    result = bench_hostile(
        HostileBenchConfig(mutations=0, stalled=0, repeats=2, slices=2, demo=False, kills=0, baseline=own_source),
        tmp_path,
    )
    assert [timing.name.split()[0] for timing in result.uploads] == ["synthetic"] * 2
    for timing in result.uploads:
        assert len(timing.upload_s) == len(timing.baseline_upload_s) == 2 and not timing.direct_read_s
        assert min(timing.upload_s + timing.baseline_upload_s) > 0
    assert "against the baseline service" in summary(result)
    assert (tmp_path / "baseline-serve.log").exists()


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"mutations": -1}, "mutations"),
        ({"kills": True}, "kills"),
        ({"dicom": Path("/no/such/series")}, "not a folder"),
        ({"baseline": Path("/tmp")}, "no covidal package"),
    ],
)
def test_bad_config_is_a_clear_error(changes, words):
    with pytest.raises(CovidalError, match=words):
        HostileBenchConfig(**changes)
