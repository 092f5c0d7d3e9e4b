"""model.pt: save/load round trip; anything that is not a covidal checkpoint is refused with CovidalError."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from covidal.data.window import ImageKind
from covidal.errors import CovidalError
from covidal.losses.registry import LossConfig, LossName
from covidal.models.slices.build import ModelConfig, build_model
from covidal.training.checkpoint import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_VERSION,
    MODEL_FILE,
    load_run,
    save_checkpoint,
)
from covidal.training.train_config import TrainConfig

pytestmark = pytest.mark.usefixtures("single_thread_torch")

CONFIG = TrainConfig(
    loss=LossConfig(LossName.CB_FLIP, consistency_weight=0.5),
    model=ModelConfig(dropout=0.3),
    steps=2,
    image_size=32,
    seed=3,
    device="cpu",
)


def saved_model(path):
    torch.manual_seed(5)
    model = build_model(CONFIG.model)
    save_checkpoint(path, model, CONFIG, step=2, val_dice=0.75, image_kind=ImageKind.EIGHT_BIT)
    return model


@pytest.mark.parametrize("point_at", ["folder", "file"])
def test_round_trip_gives_identical_predictions(tmp_path, point_at):
    model = saved_model(tmp_path / MODEL_FILE)
    run = load_run(tmp_path if point_at == "folder" else tmp_path / MODEL_FILE)
    assert run.config == CONFIG
    assert (run.step, run.val_dice, run.image_kind) == (2, 0.75, ImageKind.EIGHT_BIT)
    assert not run.model.training  # ready for inference: dropout off
    images = torch.randn(2, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    model.eval()
    with torch.no_grad():
        assert torch.equal(run.model(images), model(images))


def test_save_leaves_no_temporary_file(tmp_path):
    saved_model(tmp_path / MODEL_FILE)
    saved_model(tmp_path / MODEL_FILE)  # overwrite in place
    assert [p.name for p in tmp_path.iterdir()] == [MODEL_FILE]


def test_missing_model_says_how_to_make_one(tmp_path):
    with pytest.raises(CovidalError, match="no trained 2D model.*covidal train"):
        load_run(tmp_path / "nowhere")


def valid_payload(**changes):
    state = {k: v for k, v in build_model(CONFIG.model).state_dict().items()}
    return {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "config": CONFIG.to_dict(),
        "step": 1,
        "val_dice": None,
        "image_kind": "8-bit",
        "state_dict": state,
        **changes,
    }


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"weights": [1, 2, 3]}, "not a covidal 2D model"),
        ([1, 2, 3], "not a covidal 2D model"),
        ("format", "not a covidal 2D model"),
        (valid_payload(format="other.model"), "not a covidal 2D model"),
        (valid_payload(version=CHECKPOINT_VERSION + 1), f"version {CHECKPOINT_VERSION + 1}"),
        (valid_payload(version=None), "version None"),
    ],
)
def test_foreign_or_other_version_files_are_refused(tmp_path, payload, message):
    path = tmp_path / MODEL_FILE
    torch.save(payload, path)
    with pytest.raises(CovidalError, match=message):
        load_run(tmp_path)


def without(key):
    payload = valid_payload()
    del payload[key]
    return payload


@pytest.mark.parametrize(
    "payload",
    [
        valid_payload(config={}),
        valid_payload(config={**CONFIG.to_dict(), "steps": 0}),
        valid_payload(config={**CONFIG.to_dict(), "model": {"name": "resnet"}}),
        valid_payload(state_dict={}),
        valid_payload(state_dict={"classifier.weight": torch.zeros(3)}),
        without("config"),
        without("step"),
        valid_payload(image_kind="12-bit"),
    ],
    ids=[
        "empty config",
        "bad config value",
        "unknown model",
        "no weights",
        "wrong weights",
        "no config",
        "no step",
        "unknown image kind",
    ],
)
def test_damaged_checkpoint_is_one_clear_error(tmp_path, payload):
    torch.save(payload, tmp_path / MODEL_FILE)
    with pytest.raises(CovidalError, match="damaged covidal checkpoint") as caught:
        load_run(tmp_path)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(("saved", "loaded"), [("HU", ImageKind.HU), (None, None), ("absent", None)])
def test_the_image_kind_trained_on_is_read_back_and_unknown_for_older_files(tmp_path, saved, loaded):
    """Files written before the kind was recorded have no key: they load, with the kind unknown (None)."""
    torch.save(without("image_kind") if saved == "absent" else valid_payload(image_kind=saved), tmp_path / MODEL_FILE)
    assert load_run(tmp_path).image_kind == loaded


def test_a_plain_pickle_with_code_is_refused_not_executed(tmp_path):
    """weights_only loading: a pickle naming arbitrary classes is not run."""
    path = tmp_path / MODEL_FILE
    torch.save({"format": CHECKPOINT_FORMAT, "object": np.random.default_rng(0)}, path)
    with pytest.raises(CovidalError, match="not a readable covidal model"):
        load_run(path)


# torch.load raises a different exception type depending on the bytes; every one must become
# the same clear error. Seeds 0, 17, 54, 62 give UnpicklingError, IndexError, UnicodeDecodeError,
# KeyError (torch 2.x); b"" gives EOFError and a broken zip RuntimeError.
CORRUPT_SEEDS = (0, 17, 54, 62, *range(1, 13))


@pytest.mark.parametrize(
    "content", [b"", b"PK\x03\x04broken zip"] + [np.random.default_rng(s).bytes(1000) for s in CORRUPT_SEEDS]
)
def test_corrupt_bytes_are_refused(tmp_path, content):
    path = tmp_path / MODEL_FILE
    path.write_bytes(content)
    with pytest.raises(CovidalError, match="not a readable covidal model"):
        load_run(tmp_path)


def test_a_model_saved_before_training_counted_steps_still_loads(tmp_path):
    """Files of earlier versions (the service's current models among them) name the step ``epoch`` and the
    config's step count ``epochs``."""
    legacy = valid_payload(
        config={k: v for k, v in CONFIG.to_dict().items() if k not in ("steps", "validate_every")} | {"epochs": 7}
    )
    legacy["epoch"] = legacy.pop("step")
    torch.save(legacy, tmp_path / MODEL_FILE)
    run = load_run(tmp_path)
    assert (run.step, run.config.steps, run.config.validate_every) == (1, 7, None)
    assert run.config.image_size == CONFIG.image_size
