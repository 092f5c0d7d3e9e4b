"""A set of 3D cases for semi-supervised training: real chest CT anatomy with SYNTHETIC lesions.

Real COVID-19 CT volumes with infection masks are not available here, so every case is the
one real chest CT of :mod:`covidal.sample_data.demo` (TotalSegmentator's example CT, fetched and
cached by :func:`~covidal.sample_data.demo.fetch_reference_ct`) with its own synthetic lesions
(:func:`~covidal.sample_data.demo.insert_lesions`, recipe version ``DEMO_RECIPE_VERSION``):

* case ``n`` has its own lesion seed, :func:`lesion_seed` of ``(config.seed, n)``, and draws its
  lesion count in ``config.lesions_range`` from that seed's generator;
* with ``mirror_alternate`` every second case (odd ``n``) is the CT mirrored left-right (the
  array flipped along i, the geometry unchanged), so the anatomy differs between cases;
* the lungs are segmented once and reused (mirrored with the CT).

Layout of ``out``: ``images/case_NN.nrrd`` (int16 HU), ``labels/case_NN.nrrd`` (uint8 {0, 1}
lesions), ``lungs/case_NN.nrrd`` (uint8 {0, 1}), all on the source CT's grid, and ``cases.json``
(recipe version, seeds, per case: lesion count, lesion mL, mirrored, provenance). ``cases.json``
is written last, so a set is complete exactly when it is there.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from covidal.data.case_files import case_name, files_with_suffixes
from covidal.data.io import VOLUME_SUFFIXES, write_volume
from covidal.data.volume import Volume
from covidal.errors import CovidalError
from covidal.sample_data.demo import (
    DEMO_RECIPE_VERSION,
    REFERENCE_CT_NAME,
    REFERENCE_CT_SHA256,
    TOTALSEGMENTATOR_VERSION,
    fetch_reference_ct,
    insert_lesions,
)
from covidal.utils.atomic import atomic_write_json
from covidal.validation import is_integer
from covidal.volumes.lungs import segment_lungs

CASES_FILE = "cases.json"
IMAGES_DIR, LABELS_DIR, LUNGS_DIR = "images", "labels", "lungs"
CASE_SUFFIX = ".nrrd"


@dataclass(frozen=True)
class CaseSetConfig:
    """Everything that determines a case set (with the recipe version and the source CT).

    Attributes:
        count: number of cases (>= 1).
        seed: the set's seed (>= 0); each case's lesion seed is derived from it and the case index.
        mirror_alternate: odd-numbered cases are the CT mirrored left-right.
        lesions_range: ``(low, high)``, inclusive range of the lesion count per case (0 <= low <= high).
        slices: ``(start, stop)``: keep only these axial slices ``[start, stop)`` of the CT (a thin
            slab for quick trials and tests); None keeps the whole CT.

    Raises:
        ValueError: any of the above is out of range.
    """

    count: int
    seed: int = 0
    mirror_alternate: bool = True
    lesions_range: tuple[int, int] = (6, 16)
    slices: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        # Normalised to tuples so a config read back from JSON (lists) compares equal.
        object.__setattr__(self, "lesions_range", _int_pair(self.lesions_range, "lesions_range"))
        if self.slices is not None:
            object.__setattr__(self, "slices", _int_pair(self.slices, "slices"))
        if self.count < 1:
            raise ValueError(f"count must be at least 1, got {self.count}")
        if self.seed < 0:
            raise ValueError(f"seed must not be negative, got {self.seed}")
        low, high = self.lesions_range
        if not 0 <= low <= high:
            raise ValueError(f"lesions_range must be (low, high) with 0 <= low <= high, got {self.lesions_range}")
        if self.slices is not None and not 0 <= self.slices[0] < self.slices[1]:
            raise ValueError(f"slices must be (start, stop) with 0 <= start < stop, got {self.slices}")

    def to_json(self) -> dict:
        """The config as JSON types (tuples become lists)."""
        return json.loads(json.dumps(asdict(self)))


def _int_pair(value, name: str) -> tuple[int, int]:
    pair = tuple(value) if isinstance(value, (tuple, list)) else ()
    if len(pair) != 2 or not all(is_integer(v) for v in pair):
        raise ValueError(f"{name} must be two whole numbers, got {value!r}")
    return int(pair[0]), int(pair[1])


def case_names(count: int) -> list[str]:
    """``case_00`` .. ``case_{count-1}``, zero-padded to at least two digits so names sort as numbers."""
    width = max(2, len(str(count - 1)))
    return [f"case_{index:0{width}d}" for index in range(count)]


def lesion_seed(seed: int, index: int) -> int:
    """The lesion seed of case ``index`` in a set seeded with ``seed``.

    A hash of both (NumPy's SeedSequence), so cases get unrelated lesions, and case ``n`` of a
    set is the same whatever the set's size.
    """
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


def make_lesion_cases(out: Path, config: CaseSetConfig, cache_dir: Path | None = None) -> list[str]:
    """Write the case set of ``config`` under ``out`` (layout in the module docstring), or reuse it.

    A complete set for the same config and recipe (``cases.json`` says so and every file is
    there) is reused as it is. Otherwise every case is written (atomically, file by file) and
    ``cases.json`` last. Deterministic: the same config gives the same arrays.

    Args:
        out: output folder (created if needed).
        config: what to generate.
        cache_dir: where the reference CT is cached; default ``covidal.sample_data.demo.default_cache_dir()``.

    Returns:
        The case names, ``case_00`` ..., in order.

    Raises:
        CovidalError: ``out`` is a file, or holds volume files of other cases (which a folder
            reader would mix in); the CT cannot be fetched; ``config.slices`` exceeds the CT;
            no lungs are found in it.
    """
    out = Path(out)
    names = case_names(config.count)
    if _is_complete(out, config, names):
        return names
    _check_output_folder(out, names)
    (out / CASES_FILE).unlink(missing_ok=True)  # the set is incomplete until the new record is written
    ct = _read_source(fetch_reference_ct(cache_dir), config.slices)
    lungs = segment_lungs(ct)
    records = [_write_case(out, name, index, ct, lungs, config) for index, name in enumerate(names)]
    atomic_write_json(out / CASES_FILE, _set_record(config, records))
    return names


def read_case_set(out: Path) -> dict:
    """The ``cases.json`` of a case set in ``out``.

    Raises:
        CovidalError: it is missing or not valid JSON.
    """
    path = Path(out) / CASES_FILE
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise CovidalError(f"{path} does not exist: {out} holds no complete case set") from None
    except (OSError, ValueError) as error:
        raise CovidalError(f"cannot read {path}: {error}") from None


def _is_complete(out: Path, config: CaseSetConfig, names: list[str]) -> bool:
    try:
        record = read_case_set(out)
    except CovidalError:
        return False
    if not isinstance(record, dict) or not isinstance(record.get("cases"), list):
        return False
    same = (
        record.get("recipe_version") == DEMO_RECIPE_VERSION
        and record.get("source", {}).get("sha256") == REFERENCE_CT_SHA256
        and record.get("config") == config.to_json()
        and [case.get("name") for case in record["cases"]] == names
    )
    return same and all(path.is_file() for name in names for path in _case_paths(out, name))


def _case_paths(out: Path, name: str) -> tuple[Path, Path, Path]:
    """``(image, label, lungs)`` files of case ``name``."""
    return tuple(out / folder / f"{name}{CASE_SUFFIX}" for folder in (IMAGES_DIR, LABELS_DIR, LUNGS_DIR))


def _check_output_folder(out: Path, names: list[str]) -> None:
    if out.exists() and not out.is_dir():
        raise CovidalError(f"output folder {out} is a file")
    wanted = set(names)
    for folder in (out / IMAGES_DIR, out / LABELS_DIR, out / LUNGS_DIR):
        if not folder.is_dir():
            continue
        volumes = files_with_suffixes(folder, VOLUME_SUFFIXES)
        foreign = sorted(path.name for path in volumes if case_name(path) not in wanted)
        if foreign:
            raise CovidalError(
                f"{folder} holds {', '.join(foreign[:3])}{', ...' if len(foreign) > 3 else ''}, not among the "
                f"{len(names)} cases to write; use an empty output folder"
            )


def _read_source(path: Path, slices: tuple[int, int] | None) -> Volume:
    """The reference CT as int16 HU, cut to the axial ``slices`` when given (geometry kept)."""
    image = sitk.ReadImage(str(path), sitk.sitkInt16)
    if slices is not None:
        depth = image.GetSize()[2]
        if slices[1] > depth:
            raise CovidalError(f"slices {slices[0]}:{slices[1]} exceed the reference CT, which has {depth} slices")
        image = image[:, :, slices[0] : slices[1]]  # SimpleITK slicing moves the origin with the cut
    return Volume.from_sitk(image)


def _write_case(out: Path, name: str, index: int, ct: Volume, lungs: np.ndarray, config: CaseSetConfig) -> dict:
    """Make and write case ``index``; returns its ``cases.json`` entry."""
    mirrored = config.mirror_alternate and index % 2 == 1
    if mirrored:
        # Flipping i mirrors left and right; the geometry stays, so every case shares one grid.
        ct, lungs = ct.with_array(np.ascontiguousarray(ct.array[:, :, ::-1])), lungs[:, :, ::-1]
    seed = lesion_seed(config.seed, index)
    rng = np.random.default_rng(seed)
    count = int(rng.integers(config.lesions_range[0], config.lesions_range[1] + 1))
    lesion_ct, lesions = insert_lesions(ct, lungs, rng, count)
    image_path, label_path, lungs_path = _case_paths(out, name)
    write_volume(lesion_ct, image_path)
    write_volume(ct.with_array(lesions), label_path)
    write_volume(ct.with_array(lungs.astype(np.uint8)), lungs_path)
    voxel_ml = float(np.prod(ct.spacing)) / 1000.0
    return {
        "name": name,
        "lesion_seed": seed,
        "lesions": count,
        "lesion_ml": round(float(lesions.sum()) * voxel_ml, 3),
        "mirrored": mirrored,
        "provenance": _provenance(mirrored, config.slices, seed),
    }


def _provenance(mirrored: bool, slices: tuple[int, int] | None, seed: int) -> str:
    anatomy = f"real chest CT {REFERENCE_CT_NAME} from totalsegmentator {TOTALSEGMENTATOR_VERSION} (Apache-2.0)"
    if slices is not None:
        anatomy += f", axial slices {slices[0]}:{slices[1]}"
    if mirrored:
        anatomy += ", mirrored left-right"
    return f"{anatomy}; SYNTHETIC lesions (covidal.sample_data.demo recipe v{DEMO_RECIPE_VERSION}, lesion seed {seed})"


def _set_record(config: CaseSetConfig, cases: list[dict]) -> dict:
    return {
        "synthetic_lesions": True,
        "note": "the anatomy is real, the lesions are synthetic",
        "recipe_version": DEMO_RECIPE_VERSION,
        "source": {
            "file": REFERENCE_CT_NAME,
            "package": f"totalsegmentator=={TOTALSEGMENTATOR_VERSION}",
            "sha256": REFERENCE_CT_SHA256,
        },
        "seed": config.seed,
        "config": config.to_json(),
        "cases": cases,
    }
