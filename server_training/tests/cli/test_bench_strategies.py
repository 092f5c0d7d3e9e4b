"""``covidal bench-strategies`` through the real entry point: a table with every strategy's time per cycle (CEAL's
with its pseudo-labels) and its ratio to entropy from the same run, the JSON, bad options."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.usefixtures("single_thread_torch")

FAST = ("--size", "32", "--width", "4", "--regions", "16", "--mc-samples", "2", "--repeats", "1", "--device", "cpu")
QUICK = ("--head-steps", "2", "--vae-steps", "2", "--per-cycle", "2")


def test_every_strategy_is_timed_against_entropy_in_the_same_run(cli, make_slices, tmp_path):
    data = make_slices(3)
    out = tmp_path / "strategies.json"
    result = cli("bench-strategies", "--images", data.images, "--masks", data.masks, *FAST, *QUICK, "--json", out)
    assert result.code == 0, result.err
    saved = json.loads(out.read_text())
    names = [timing["strategy"] for timing in saved["timings"]]
    assert names[0] == "entropy" and len(names) == 11 and len(set(names)) == 11
    assert saved["timings"][0]["ratio_to_entropy"] == 1.0
    for timing in saved["timings"]:
        assert timing["median_seconds"] > 0
        assert timing["ratio_to_entropy"] == pytest.approx(
            timing["median_seconds"] / saved["timings"][0]["median_seconds"]
        )
        assert f"| {timing['strategy']} |" in result.out
    assert saved["slices"] == 3 and saved["answered"] == 16
    pseudo = {timing["strategy"]: timing["pseudo_labelled_pixels"] for timing in saved["timings"]}
    assert isinstance(pseudo.pop("ceal"), int)  # CEAL's cycle includes its pseudo-labelling pass; no other has one
    assert set(pseudo.values()) == {None}


def test_a_chosen_subset_still_times_entropy(cli, make_slices):
    data = make_slices(2)
    result = cli("bench-strategies", "--images", data.images, "--masks", data.masks, *FAST, "--strategies", "random")
    assert result.code == 0, result.err
    assert "| entropy | " in result.out and "| random | " in result.out and "| bald |" not in result.out


@pytest.mark.parametrize(
    ("options", "words"),
    [
        (("--strategies", "psychic"), ["strategies"]),
        (("--answered-slices", "9"), ["answered-slices", "9"]),
        (("--beta", "-2"), ["beta"]),
        (("--regions", "10"), ["perfect square"]),
        (("--strategies", "vaal", "--answered-slices", "0"), ["none is answered"]),
    ],
)
def test_bad_options_are_one_line_errors(cli, make_slices, options, words):
    data = make_slices(2)
    cli("bench-strategies", "--images", data.images, "--masks", data.masks, *FAST, *options).assert_user_error(*words)
