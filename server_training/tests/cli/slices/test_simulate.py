import json

from PIL import Image

from covidal.activelearning.simulation.curve import load_curves

TINY = [
    "--regions",
    "16",
    "--init-slices",
    "1",
    "--cycles",
    "1",
    "--per-cycle",
    "2",
    "--mc-samples",
    "3",
    "--steps",
    "2",
    "--batch-size",
    "2",
    "--size",
    "32",
    "--width",
    "4",
    "--device",
    "cpu",
    "--quiet",
]


def test_simulate_writes_curve_json_and_png(cli, make_slices, tmp_path, single_thread_torch):
    pool, test = make_slices(4, name="pool"), make_slices(2, seed=3, name="test")
    out = tmp_path / "out"
    for strategy in ("entropy", "random"):
        result = cli(
            "simulate",
            "--images",
            pool.images,
            "--masks",
            pool.masks,
            "--test-images",
            test.images,
            "--test-masks",
            test.masks,
            "--strategy",
            strategy,
            "--loss",
            "point",
            "--out",
            out,
            *TINY,
        )
        assert result.code == 0, result.err
        assert "test Dice" in result.out
    runs = load_curves(out / "curve.json")
    assert sorted(r.name for r in runs) == ["entropy-point-seed0", "random-point-seed0"]
    assert all([c.labelled_regions for c in r.cycles] == [16, 18] for r in runs)
    with Image.open(out / "curve.png") as image:
        assert image.format == "PNG"
    config = json.loads((out / "runs" / "entropy-point-seed0" / "config.json").read_text())
    assert config["regions"] == 16 and config["strategy"] == "entropy"


def test_without_test_images_holds_out_the_last_slices(cli, make_slices, tmp_path, single_thread_torch):
    data = make_slices(5)
    out = tmp_path / "out"
    result = cli(
        "simulate",
        "--images",
        data.images,
        "--masks",
        data.masks,
        "--strategy",
        "bald",
        "--test-count",
        "2",
        "--out",
        out,
        *TINY,
    )
    assert result.code == 0, result.err
    record = json.loads((out / "runs" / "bald-cb-flip-rot-seed0" / "cycle_01.json").read_text())
    assert {s["slice"] for s in record["selection"]} <= {"1", "2", "3"}


def test_bad_options_are_one_line_errors(cli, make_slices, tmp_path):
    data = make_slices(3)
    base = ["simulate", "--images", data.images, "--masks", data.masks, "--out", tmp_path / "o"]
    cli(*base, "--strategy", "entropy", "--regions", "10", *TINY[2:]).assert_user_error("perfect square")
    cli(*base, "--strategy", "oracle").assert_user_error("strategy")
    cli(*base, "--strategy", "entropy", "--loss", "full").assert_user_error("loss")
    cli(*base, "--strategy", "entropy", "--test-images", data.images).assert_user_error("--test-masks")
    cli(*base, "--strategy", "entropy", "--test-count", "3").assert_user_error("3 test")
    cli(*base, "--strategy", "entropy", "--protocol", "scribble").assert_user_error("protocol")
    cli(*base, "--strategy", "density", "--beta", "-1").assert_user_error("beta")
    cli(*base, "--strategy", "ceal", "--delta", "0.4").assert_user_error("delta")
    cli(*base, "--strategy", "vaal", "--crop", "10").assert_user_error("crop")
    cli(*base, "--strategy", "suggestive", "--committee", "1").assert_user_error("committee")
    cli(*base, "--strategy", "suggestive", "--top-k", "many").assert_user_error("top-k")


def test_the_strategy_params_and_protocol_are_saved_with_the_run(cli, make_slices, tmp_path, single_thread_torch):
    data = make_slices(4)
    out = tmp_path / "out"
    args = ["--images", data.images, "--masks", data.masks, "--test-count", "1", "--out", out, *TINY]
    result = cli("simulate", *args, "--strategy", "density", "--beta", "2.5", "--protocol", "mask")
    assert result.code == 0, result.err
    [run] = load_curves(out / "curve.json")
    assert run.name == "density-cb-flip-rot-seed0-mask"
    assert run.config["strategy_params"]["beta"] == 2.5 and run.config["protocol"] == "mask"


def test_an_augmented_simulation_records_its_augmentation(cli, make_slices, tmp_path, single_thread_torch):
    pool, test = make_slices(4, name="pool"), make_slices(2, seed=3, name="test")
    out = tmp_path / "out"
    data = ("--images", pool.images, "--masks", pool.masks, "--test-images", test.images, "--test-masks", test.masks)
    args = ("simulate", *data, "--strategy", "entropy", "--loss", "point", "--out", out, *TINY)
    assert cli(*args, "--augment", "intensity+scale").code == 0
    (run,) = load_curves(out / "curve.json")
    assert run.name == "entropy-point-seed0-intensity+scale" and run.config["augment"] == "intensity+scale"
    cli(*args, "--augment", "elastic").assert_user_error("--augment")
