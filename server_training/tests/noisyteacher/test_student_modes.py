"""Tests for covidal.noisyteacher.student_modes: modes, the registry, and each weighting's pipeline."""

import pytest
import torch

from covidal.errors import CovidalError
from covidal.noisyteacher.sample_weights import (
    combine_weights,
    rectify,
    rgm_weights,
    rgs_weights,
)
from covidal.noisyteacher.student_modes import (
    WEIGHTINGS,
    RGMWeighting,
    RGSMWeighting,
    RGSWeighting,
    SampleWeighting,
    StudentMode,
    UniformWeighting,
    build_weighting,
    parse_student_mode,
    uses_pseudo_labels,
)

FINAL = ("head.weight", "head.bias")

# Four samples: products with the validation gradient (4, 2, -2, 1) -> RGS (4, 2, 0, 1) / 7;
# final-layer norms (1, 1, 2, 0) -> RGM (1, 1, 2, 0) / 4.
PER_SAMPLE = {
    "body.weight": torch.tensor([[2.0, 0.0], [1.0, 0.0], [-1.0, 0.0], [0.0, 1.0]]),
    "head.weight": torch.tensor([[0.0], [1.0], [0.0], [0.0]]),
    "head.bias": torch.tensor([[1.0], [0.0], [-2.0], [0.0]]),
}
VALIDATION = {
    "body.weight": torch.tensor([2.0, 1.0]),
    "head.weight": torch.tensor([0.0]),
    "head.bias": torch.tensor([0.0]),
}
RGS = torch.tensor([4.0, 2.0, 0.0, 1.0]) / 7
RGM = torch.tensor([1.0, 1.0, 2.0, 0.0]) / 4


def test_mode_values():
    assert [str(mode) for mode in StudentMode] == ["supervised", "semi", "rgs", "rgm", "rgsm", "rgs-al", "rgsm-al"]


def test_every_pseudo_label_mode_has_a_weighting():
    assert set(WEIGHTINGS) == set(StudentMode) - {StudentMode.SUPERVISED}


@pytest.mark.parametrize(
    ("mode", "kind", "rectified", "needs_per_sample", "needs_validation"),
    [
        ("semi", UniformWeighting, False, False, False),
        ("rgs", RGSWeighting, False, True, True),
        ("rgm", RGMWeighting, False, True, False),
        ("rgsm", RGSMWeighting, False, True, True),
        ("rgs-al", RGSWeighting, True, True, True),
        (StudentMode.RGSM_AL, RGSMWeighting, True, True, True),
    ],
)
def test_build_weighting(mode, kind, rectified, needs_per_sample, needs_validation):
    weighting = build_weighting(mode, FINAL, lam=0.25)
    assert type(weighting) is kind and isinstance(weighting, SampleWeighting)
    assert weighting.rectified is rectified
    assert weighting.needs_per_sample_gradients is needs_per_sample
    assert weighting.needs_validation_gradient is needs_validation
    if isinstance(weighting, RGMWeighting):
        assert weighting.final_layer_names == FINAL
    if isinstance(weighting, RGSMWeighting):
        assert weighting.lam == 0.25


def test_supervised_has_no_weighting():
    assert build_weighting("supervised", FINAL) is None


@pytest.mark.parametrize(("mode", "expected"), [("supervised", False), *((m, True) for m in list(StudentMode)[1:])])
def test_uses_pseudo_labels(mode, expected):
    assert uses_pseudo_labels(mode) is expected


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("semi", torch.full((4,), 0.25)),
        ("rgs", RGS),
        ("rgm", RGM),
        ("rgsm", 0.25 * RGS + 0.75 * RGM),
        # RGS (4, 2, 0, 1) / 7 against 1/4: 4/7 and 2/7 kept, renormalised over 6/7.
        ("rgs-al", torch.tensor([4.0, 2.0, 0.0, 0.0]) / 6),
        # 0.25 * RGS + 0.75 * RGM = (0.330, 0.259, 0.375, 0.036): the first three kept.
        ("rgsm-al", rectify(0.25 * RGS + 0.75 * RGM)),
    ],
)
def test_weights_of_each_mode_by_hand(mode, expected):
    weights = build_weighting(mode, FINAL, lam=0.25)(PER_SAMPLE, VALIDATION, 4)
    torch.testing.assert_close(weights, expected)


def test_rgsm_al_drops_exactly_the_sample_below_a_quarter():
    weights = build_weighting("rgsm-al", FINAL, lam=0.25)(PER_SAMPLE, VALIDATION, 4)
    assert weights.tolist()[3] == 0.0 and all(w > 0 for w in weights.tolist()[:3])
    assert weights.sum().item() == pytest.approx(1.0)


def test_weightings_call_the_weight_functions():
    torch.testing.assert_close(RGSWeighting()(PER_SAMPLE, VALIDATION, 4), rgs_weights(PER_SAMPLE, VALIDATION))
    torch.testing.assert_close(RGMWeighting(FINAL)(PER_SAMPLE, None, 4), rgm_weights(PER_SAMPLE, FINAL))
    expected = combine_weights(rgs_weights(PER_SAMPLE, VALIDATION), rgm_weights(PER_SAMPLE, FINAL), 0.5)
    torch.testing.assert_close(RGSMWeighting(FINAL)(PER_SAMPLE, VALIDATION, 4), expected)


def test_uniform_weighting_needs_no_gradients():
    torch.testing.assert_close(UniformWeighting()(None, None, 5), torch.full((5,), 0.2))


@pytest.mark.parametrize(
    ("weighting", "per_sample", "validation", "message"),
    [
        (RGSWeighting(), None, VALIDATION, "RGSWeighting needs per-sample gradients"),
        (RGSWeighting(), PER_SAMPLE, None, "RGSWeighting needs the validation gradient"),
        (RGMWeighting(FINAL), None, None, "RGMWeighting needs per-sample gradients"),
        (RGSMWeighting(FINAL), PER_SAMPLE, None, "RGSMWeighting needs the validation gradient"),
    ],
)
def test_missing_gradients_raise(weighting, per_sample, validation, message):
    with pytest.raises(ValueError, match=message):
        weighting(per_sample, validation, 4)


def test_batch_size_mismatch_raises():
    with pytest.raises(ValueError, match=r"weights are \(4,\) for a batch of 3 samples"):
        RGSWeighting()(PER_SAMPLE, VALIDATION, 3)


@pytest.mark.parametrize("mode", ["RGS", "rgs_al", "teacher", ""])
def test_unknown_mode_raises_listing_the_modes(mode):
    listing = "supervised, semi, rgs, rgm, rgsm, rgs-al, rgsm-al"
    for call in (parse_student_mode, uses_pseudo_labels, lambda m: build_weighting(m, FINAL)):
        with pytest.raises(CovidalError, match=f"unknown student mode '{mode}'; choose one of: {listing}"):
            call(mode)


@pytest.mark.parametrize("lam", [-0.5, 1.01, float("nan")])
def test_bad_lambda_raises(lam):
    with pytest.raises(ValueError, match=r"must be a finite number in \[0, 1\]"):
        build_weighting("rgsm", FINAL, lam=lam)
    with pytest.raises(ValueError, match=r"must be a finite number in \[0, 1\]"):
        RGSMWeighting(FINAL, lam)


def test_rgm_without_final_layer_names_raises():
    with pytest.raises(ValueError, match="RGM needs the names of the final layer's parameters"):
        build_weighting("rgm", ())
