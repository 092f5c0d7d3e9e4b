"""``covidal make-cases-3d``: the whole CT by default, a slab on request, a summary that says the lesions
are synthetic, reuse of a complete set, and one-line errors."""

from __future__ import annotations

import json

import SimpleITK as sitk

from covidal.sample_data.demo import fetch_reference_ct


def test_default_is_the_whole_ct_with_a_summary_saying_synthetic(cli, tmp_path):
    cache = fetch_reference_ct().parent
    out = tmp_path / "cases"
    result = cli("make-cases-3d", "--out", out, "--count", "1", "--seed", "4", "--cache", cache)
    assert result.code == 0, result.err
    image = sitk.ReadImage(str(out / "images" / "case_00.nrrd"))
    assert image.GetSize() == (233, 167, 191)
    (case,) = json.loads((out / "cases.json").read_text())["cases"]
    assert f"lesion volume {case['lesion_ml']:.1f}-{case['lesion_ml']:.1f} mL" in result.out
    assert f"lesions per case {case['lesions']}-{case['lesions']}" in result.out
    assert f"1 case(s) in {out} (case_00;" in result.out and "SYNTHETIC" in result.out


def test_options_reach_the_set_and_a_second_run_reuses_it(cli, tmp_path):
    cache = fetch_reference_ct().parent
    out = tmp_path / "cases"
    argv = (
        "make-cases-3d",
        "--out",
        out,
        "--count",
        "3",
        "--seed",
        "2",
        "--no-mirror",
        "--lesions",
        "1:2",
        "--slices",
        "70:82",
        "--cache",
        cache,
    )
    first = cli(*argv)
    assert first.code == 0, first.err
    record = json.loads((out / "cases.json").read_text())
    assert record["config"] == {
        "count": 3,
        "seed": 2,
        "mirror_alternate": False,
        "lesions_range": [1, 2],
        "slices": [70, 82],
    }
    assert all(1 <= case["lesions"] <= 2 and not case["mirrored"] for case in record["cases"])
    assert "case_00 .. case_02" in first.out and "0 mirrored" in first.out
    volumes = [case["lesion_ml"] for case in record["cases"]]
    assert f"lesion volume {min(volumes):.1f}-{max(volumes):.1f} mL" in first.out
    assert sitk.ReadImage(str(out / "labels" / "case_02.nrrd")).GetSize() == (233, 167, 12)

    stamp = (out / "images" / "case_01.nrrd").stat().st_mtime_ns
    second = cli(*argv)
    assert second.code == 0 and second.out == first.out
    assert (out / "images" / "case_01.nrrd").stat().st_mtime_ns == stamp


def test_bad_options_are_one_line_errors(cli, tmp_path):
    base = ("make-cases-3d", "--out", tmp_path / "o")
    cli(*base).assert_user_error("required", "--count")
    cli(*base, "--count", "0").assert_user_error("--count", "at least 1")
    cli(*base, "--count", "2", "--slices", "84").assert_user_error("--slices", "A:B")
    cli(*base, "--count", "2", "--slices", "84:60").assert_user_error("slices", "0 <= start < stop")
    cli(*base, "--count", "2", "--lesions", "5:2").assert_user_error("lesions_range", "(5, 2)")
    cli(*base, "--count", "2", "--seed", "-1").assert_user_error("--seed")
    (tmp_path / "file").write_text("x")
    cli("make-cases-3d", "--out", tmp_path / "file", "--count", "1").assert_user_error("is a file")
