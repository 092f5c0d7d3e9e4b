"""``covidal predict``: segment a slice image, a folder of slices, or a CT volume / DICOM series."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from covidal.cli.options import add_device_option, finite_float, positive_float
from covidal.cli.slices.evaluate import _window
from covidal.data.io import IMAGE_SUFFIXES, VOLUME_SUFFIXES, read_image_2d, read_volume, volume_suffix, write_volume
from covidal.data.slices import (
    SliceRecord,
    case_name,
    load_slice_folder,
    load_volume_slices,
    records_kind,
)
from covidal.data.volume import Volume
from covidal.data.window import HUWindow, ImageKind, image_kind, to_unit_intensity
from covidal.errors import CovidalError
from covidal.training.checkpoint import LoadedRun, load_run
from covidal.training.inference import predict_probabilities
from covidal.training.train_config import resolve_device
from covidal.utils.atomic import atomic_write
from covidal.volumes.lungs import find_lungs, involvement, restrict_to_lungs


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "predict", help="write a predicted infection mask", description=__doc__.split(":", 1)[1].strip()
    )
    parser.add_argument("--model", type=Path, required=True, help="run folder written by `covidal train`")
    parser.add_argument(
        "--input",
        type=Path,
        required=True,
        help="a PNG/JPG slice, a folder of them, a volume (NIfTI/NRRD/MHA) or a DICOM series folder",
    )
    parser.add_argument(
        "--out",
        type=Path,
        required=True,
        help="PNG mask (0/255) for a slice, a folder for a folder, a label volume (.nrrd) for a volume",
    )
    parser.add_argument("--window-level", type=finite_float, default=None, help="override the trained HU window level")
    parser.add_argument(
        "--window-width", type=positive_float, default=None, help="override the trained HU window width"
    )
    add_device_option(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    device = resolve_device(args.device)
    loaded = load_run(args.model, device)
    window = _window(args, loaded.config.window)
    source: Path = args.input
    if not source.exists():
        raise CovidalError(f"input {source} does not exist")
    if source.is_file() and not _is_image(source) and volume_suffix(source) is None:
        hint = "; for DICOM, give the folder holding the series" if source.suffix.lower() == ".dcm" else ""
        raise CovidalError(
            f"--input {source} is neither a slice image ({', '.join(IMAGE_SUFFIXES)}) nor a volume "
            f"({', '.join(VOLUME_SUFFIXES)}){hint}"
        )
    # Each reads the input before it checks --out, so an input it cannot read is what the error names.
    if source.is_file() and _is_image(source):
        _predict_image_file(loaded, source, args.out, window, device)
    elif source.is_dir() and any(_is_image(p) for p in source.iterdir()):
        _predict_image_folder(loaded, source, args.out, window, device, not args.quiet)
    else:
        _predict_volume(loaded, source, args.out, window, device, not args.quiet)
    print(f"prediction written to {args.out}")
    return 0


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def _write_png(mask: np.ndarray, path: Path) -> None:
    image = sitk.GetImageFromArray((mask * 255).astype(np.uint8))
    atomic_write(path, lambda tmp: sitk.WriteImage(image, str(tmp)))


def _say_image_kind(trained: ImageKind | None, given: ImageKind | None, source: Path) -> None:
    """One line on stderr when the model was trained on another kind of image than ``source`` is (e.g. 8-bit
    renderings against a CT in HU: its intensities then mean something else to the model), or does not say."""
    if given is None:
        return  # a folder mixing 8-bit and 16-bit slices: no one kind to compare
    if trained is None:
        print(
            f"note: the model does not record whether it was trained on 8-bit slices or on CT in Hounsfield units "
            f"(saved before covidal recorded it), so it is not known whether {source} ({given.description}) suits it",
            file=sys.stderr,
        )
    elif trained is not given:
        print(
            f"warning: the model was trained on {trained.description} but {source} is {given.description}: "
            f"expect a poor prediction; use a model trained on {given.description}",
            file=sys.stderr,
        )


def _predict_image_file(loaded: LoadedRun, source: Path, out: Path, window: HUWindow, device) -> None:
    pixels = read_image_2d(source)
    if out.suffix.lower() != ".png":
        raise CovidalError(f"--out must be a .png file for a slice image, got {out}")
    _say_image_kind(loaded.image_kind, image_kind(pixels), source)
    image = to_unit_intensity(pixels, window)
    record = SliceRecord(slice_id=source.stem, image=image, mask=None, case_id=source.stem, slice_index=None)
    ((_, prob),) = predict_probabilities(
        loaded.model, [record], loaded.config.image_size, device, options=loaded.config.prediction
    )
    _write_png(prob >= loaded.config.prediction.threshold, out)


def _predict_image_folder(loaded: LoadedRun, source: Path, out: Path, window: HUWindow, device, progress: bool) -> None:
    records = load_slice_folder(source, None, window=window)
    if (out.exists() and not out.is_dir()) or out.suffix.lower() in IMAGE_SUFFIXES:
        raise CovidalError(f"--out {out} looks like a file; give a folder for the predictions of a folder of slices")
    _say_image_kind(loaded.image_kind, records_kind(records), source)
    for record, prob in predict_probabilities(
        loaded.model, records, loaded.config.image_size, device, progress=progress, options=loaded.config.prediction
    ):
        _write_png(prob >= loaded.config.prediction.threshold, out / f"{record.slice_id}.png")


def _predict_volume(loaded: LoadedRun, source: Path, out: Path, window: HUWindow, device, progress: bool) -> None:
    volume = read_volume(source)
    if volume_suffix(out) is None:
        raise CovidalError(f"--out must be a label volume file ({', '.join(VOLUME_SUFFIXES)}) for a volume, got {out}")
    _say_image_kind(loaded.image_kind, image_kind(volume.array), source)
    records = load_volume_slices(volume, None, case_name(source), window)
    labels = np.zeros(volume.array.shape, dtype=np.uint8)
    for record, prob in predict_probabilities(
        loaded.model, records, loaded.config.image_size, device, progress=progress, options=loaded.config.prediction
    ):
        labels[record.slice_index] = prob >= loaded.config.prediction.threshold
    labels = _restricted_to_lungs(labels, volume)
    write_volume(volume.with_array(labels), out)


def _restricted_to_lungs(labels: np.ndarray, volume: Volume) -> np.ndarray:
    """``labels`` ``[K, J, I]`` inside the volume's lungs, printing the infected mL and each lung's share, as the
    service reports a prediction; unchanged, with the reason, when no lungs are found (not a CT in HU)."""
    try:
        lungs = find_lungs(volume)
    except CovidalError as error:
        voxel_ml = float(np.prod(volume.spacing)) / 1000.0
        print(f"infected: {labels.sum() * voxel_ml:.1f} mL, not restricted to the lungs ({error})")
        return labels
    labels = restrict_to_lungs(labels, lungs)
    measured = involvement(labels.astype(bool), lungs)
    print(
        f"infected: {measured.infected_ml:.1f} mL inside the lungs ({measured.percent:.1f}% of {measured.lung_ml:.0f} "
        f"mL; right lung {measured.right_percent:.1f}%, left lung {measured.left_percent:.1f}%)"
    )
    return labels
