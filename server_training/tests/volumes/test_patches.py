import numpy as np
import pytest

from covidal.volumes.patches import AnsweredPatchSampler, PatchConfig, PatchSampler, pad_to_at_least

SIZE = (6, 8, 10)  # [D, H, W]


def numbered_volume(shape: tuple[int, int, int]) -> np.ndarray:
    """float32 volume whose voxels are all different, so a patch's values tell where it was cut."""
    return np.arange(1, np.prod(shape) + 1, dtype=np.float32).reshape(shape)


def patch_corner(image: np.ndarray, patch: np.ndarray) -> tuple[int, ...]:
    return tuple(int(c[0]) for c in np.nonzero(image == patch[0, 0, 0]))


def one_foreground_voxel(shape: tuple[int, int, int], voxel: tuple[int, int, int]) -> np.ndarray:
    label = np.zeros(shape, np.uint8)
    label[voxel] = 1
    return label


# ---------------------------------------------------------------- configuration


def test_patch_config_turns_lists_into_tuples():
    assert PatchConfig(size=[4, 5, 6]).size == (4, 5, 6)


@pytest.mark.parametrize(
    ("size", "probability", "message"),
    [
        ((0, 8, 8), 0.5, r"patch size \(D, H, W\) must be 3 integers >= 1"),
        ((8, 8), 0.5, r"patch size \(D, H, W\) must be 3 integers >= 1"),
        ((8.0, 8, 8), 0.5, r"patch size \(D, H, W\) must be 3 integers >= 1"),
        ((True, 8, 8), 0.5, r"patch size \(D, H, W\) must be 3 integers >= 1"),
        (8, 0.5, r"patch size \(D, H, W\) must be 3 integers >= 1"),
        ((8, 8, 8), -0.1, r"foreground probability must be in \[0, 1\]"),
        ((8, 8, 8), 1.5, r"foreground probability must be in \[0, 1\]"),
        ((8, 8, 8), float("nan"), r"foreground probability must be in \[0, 1\]"),
    ],
)
def test_bad_patch_config_is_refused(size, probability, message):
    with pytest.raises(ValueError, match=message):
        PatchConfig(size=size, foreground_probability=probability)


# ---------------------------------------------------------------- padding


def test_pad_to_at_least_splits_padding_between_both_ends():
    array = np.ones((3, 5, 7), np.float32)
    padded = pad_to_at_least(array, (4, 4, 10), value=-1.0)
    assert padded.shape == (4, 5, 10)
    # axis 0 misses 1 voxel (0 before, 1 after); axis 2 misses 3 (1 before, 2 after); axis 1 is long enough
    np.testing.assert_array_equal(padded[0:3, :, 1:8], array)
    assert (padded == -1).sum() == padded.size - array.size
    assert (padded[3] == -1).all() and (padded[:, :, 0] == -1).all() and (padded[:, :, 8:] == -1).all()


def test_pad_to_at_least_returns_large_arrays_unchanged():
    array = np.zeros((6, 8, 10), np.uint8)
    assert pad_to_at_least(array, SIZE, value=0) is array


def test_pad_to_at_least_refuses_a_size_of_another_rank():
    with pytest.raises(ValueError, match="array has 2 axes but size"):
        pad_to_at_least(np.zeros((4, 4)), SIZE, value=0)


# ---------------------------------------------------------------- sampling


@pytest.mark.parametrize("probability", [0.0, 1.0])
def test_patches_are_exactly_sized_crops_of_image_and_label_at_the_same_place(probability):
    shape = (15, 17, 19)
    image = numbered_volume(shape)
    label = (np.random.default_rng(0).random(shape) < 0.05).astype(np.uint8)
    sampler = PatchSampler(PatchConfig(SIZE, probability), seed=3)
    for _ in range(20):
        image_patch, label_patch = sampler.sample(image, label)
        assert image_patch.shape == label_patch.shape == SIZE
        assert image_patch.dtype == np.float32 and label_patch.dtype == np.uint8
        k, j, i = patch_corner(image, image_patch)
        window = (slice(k, k + SIZE[0]), slice(j, j + SIZE[1]), slice(i, i + SIZE[2]))
        np.testing.assert_array_equal(image_patch, image[window])
        np.testing.assert_array_equal(label_patch, label[window])


def test_small_volumes_are_padded_with_air_and_background():
    image = numbered_volume((4, 8, 3))  # shorter than the patch along D and W
    label = np.ones(image.shape, np.uint8)
    image_patch, label_patch = PatchSampler(PatchConfig(SIZE, 1.0), seed=0).sample(image, label)
    assert image_patch.shape == label_patch.shape == SIZE
    # D misses 2 (1 before, 1 after), W misses 7 (3 before, 4 after): the volume sits at (1, 0, 3)
    np.testing.assert_array_equal(image_patch[1:5, :, 3:6], image)
    np.testing.assert_array_equal(label_patch[1:5, :, 3:6], label)
    assert image_patch.sum() == image.sum() and label_patch.sum() == label.sum()  # the rest is 0.0 and 0


@pytest.mark.parametrize("voxel", [(20, 21, 22), (0, 39, 1), (39, 0, 39)])
def test_foreground_patches_contain_the_foreground_voxel(voxel):
    shape = (40, 40, 40)
    label = one_foreground_voxel(shape, voxel)
    sampler = PatchSampler(PatchConfig(SIZE, 1.0), seed=1)
    for _ in range(10):
        _, label_patch = sampler.sample(np.zeros(shape, np.float32), label)
        assert label_patch.sum() == 1
    if voxel == (20, 21, 22):  # far from the borders: exactly at the patch centre
        assert label_patch[SIZE[0] // 2, SIZE[1] // 2, SIZE[2] // 2] == 1


def foreground_share(probability: float, draws: int = 300) -> float:
    shape = (30, 30, 30)
    label = one_foreground_voxel(shape, (15, 15, 15))
    sampler = PatchSampler(PatchConfig(SIZE, probability), seed=7)
    image = np.zeros(shape, np.float32)
    return float(np.mean([sampler.sample(image, label)[1].any() for _ in range(draws)]))


def test_foreground_probability_sets_the_share_of_patches_showing_foreground():
    # A uniformly placed 6x8x10 patch holds a given voxel of a 30^3 volume with chance about
    # (6/25)(8/23)(10/21) = 4 %, so the shares are about 0.04, 0.52 and 1.
    assert foreground_share(0.0) < 0.1
    assert 0.4 < foreground_share(0.5) < 0.65
    assert foreground_share(1.0) == 1.0


def test_uniform_patches_reach_every_start_position():
    shape = (8, 9, 12)  # starts 0..2, 0..1, 0..2
    image = numbered_volume(shape)
    sampler = PatchSampler(PatchConfig(SIZE, 0.0), seed=0)
    corners = {patch_corner(image, sampler.sample(image, np.zeros(shape, np.uint8))[0]) for _ in range(200)}
    assert corners == {(k, j, i) for k in range(3) for j in range(2) for i in range(3)}


def test_label_without_foreground_falls_back_to_uniform_patches():
    shape = (12, 12, 12)
    image_patch, label_patch = PatchSampler(PatchConfig(SIZE, 1.0), seed=0).sample(
        numbered_volume(shape), np.zeros(shape, np.uint8)
    )
    assert image_patch.shape == SIZE and not label_patch.any()


def draw(seed: int, count: int = 5) -> list[np.ndarray]:
    shape = (20, 20, 20)
    image = numbered_volume(shape)
    label = (np.random.default_rng(0).random(shape) < 0.01).astype(np.uint8)
    sampler = PatchSampler(PatchConfig(SIZE, 0.5), seed=seed)
    return [sampler.sample(image, label)[0] for _ in range(count)]


def test_sampling_is_reproducible_with_the_seed():
    first, again, other = draw(seed=11), draw(seed=11), draw(seed=12)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other))


def test_sample_batch_stacks_one_patch_per_case():
    big, small = (12, 14, 16), (3, 4, 5)
    cases = [(numbered_volume(big), np.ones(big, np.uint8)), (numbered_volume(small), np.ones(small, np.uint8))]
    images, labels = PatchSampler(PatchConfig(SIZE, 0.5), seed=0).sample_batch(cases)
    assert images.shape == (2, 1, *SIZE) and images.dtype == np.float32
    assert labels.shape == (2, *SIZE) and labels.dtype == np.int64
    assert labels[0].all() and labels[1].sum() == np.prod(small)  # the small case is padded with background


@pytest.mark.parametrize(
    ("image", "label", "message"),
    [
        (np.zeros((8, 8, 10)), np.zeros((8, 8, 11), np.uint8), "same shape"),
        (np.zeros((8, 10)), np.zeros((8, 10), np.uint8), "expected a 3D image"),
    ],
)
def test_mismatched_image_and_label_are_refused(image, label, message):
    with pytest.raises(ValueError, match=message):
        PatchSampler(PatchConfig(SIZE), seed=0).sample(image, label)


def test_empty_batch_is_refused():
    with pytest.raises(ValueError, match="at least one"):
        PatchSampler(PatchConfig(SIZE), seed=0).sample_batch([])


# ---------------------------------------------------------------- patches centred on answers


def test_answered_patches_always_hold_an_answer_and_half_are_centred_on_clicks():
    label = np.full((20, 30, 40), -1, np.int8)
    label[3, 5:10, 5:10] = 0
    label[15, 25, 33] = 1
    sampler = AnsweredPatchSampler(SIZE, seed=0)
    patches = [sampler.sample(numbered_volume(label.shape), label)[1] for _ in range(200)]
    assert all((patch >= 0).any() for patch in patches)
    with_click = sum(bool((patch == 1).any()) for patch in patches)
    assert 70 <= with_click <= 130  # the click is far from the background answers: only click-centred patches


def test_answered_patches_pad_with_unanswered_and_refuse_a_volume_without_answers():
    label = np.full((4, 5, 6), -1, np.int8)
    label[1, 2, 3] = 1
    images, labels = AnsweredPatchSampler(SIZE, seed=0).sample_batch([(numbered_volume(label.shape), label)])
    assert images.shape == (1, 1, *SIZE) and labels.shape == (1, *SIZE) and labels.dtype == np.int64
    assert int((labels == 1).sum()) == 1 and int((labels == 0).sum()) == 0  # padding is -1, not background
    with pytest.raises(ValueError, match="without any answered voxel"):
        AnsweredPatchSampler(SIZE, seed=0).sample(numbered_volume(label.shape), np.full_like(label, -1))
    with pytest.raises(ValueError, match="click probability"):
        AnsweredPatchSampler(SIZE, seed=0, click_probability=1.5)
