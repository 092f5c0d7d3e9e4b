"""``covidal make-cases-3d``: a set of 3D cases, real chest CT anatomy with SYNTHETIC lesions.

Every case is the same real chest CT (TotalSegmentator's example CT, fetched from PyPI and
cached) with its own synthetic ground-glass and consolidation lesions; every second case is
mirrored left-right so the anatomy differs. Writes OUT/images, OUT/labels, OUT/lungs (NRRD,
case_NN.nrrd) and OUT/cases.json. An existing complete set for the same options is reused.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from covidal.cli.options import non_negative_int, positive_int
from covidal.errors import CovidalError
from covidal.sample_data.synthetic_cases import CaseSetConfig, make_lesion_cases, read_case_set


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "make-cases-3d",
        help="make 3D cases: a real chest CT with synthetic lesions",
        description=__doc__.split(":", 1)[1].strip(),
    )
    parser.add_argument("--out", type=Path, required=True, help="output folder (images/, labels/, lungs/, cases.json)")
    parser.add_argument("--count", type=positive_int, required=True, help="number of cases")
    parser.add_argument("--seed", type=non_negative_int, default=0, help="seed of the set; each case derives its own")
    parser.add_argument("--no-mirror", action="store_true", help="do not mirror every second case left-right")
    parser.add_argument(
        "--lesions",
        type=_int_range,
        default=(6, 16),
        metavar="LOW:HIGH",
        help="lesions per case, drawn in this inclusive range (default 6:16)",
    )
    parser.add_argument(
        "--slices",
        type=_int_range,
        default=None,
        metavar="START:STOP",
        help="keep only axial slices [START, STOP) of the CT, for quick trials (default: the whole CT)",
    )
    parser.add_argument(
        "--cache", type=Path, default=None, help="download cache (default $COVIDAL_CACHE or ~/.cache/covidal)"
    )
    parser.set_defaults(run=run)


def _int_range(text: str) -> tuple[int, int]:
    parts = text.split(":")
    try:
        low, high = (int(part) for part in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected two whole numbers as A:B, got {text!r}") from None
    return low, high


def run(args: argparse.Namespace) -> int:
    try:
        config = CaseSetConfig(
            count=args.count,
            seed=args.seed,
            mirror_alternate=not args.no_mirror,
            lesions_range=args.lesions,
            slices=args.slices,
        )
    except ValueError as error:
        raise CovidalError(str(error)) from error
    names = make_lesion_cases(args.out, config, args.cache)
    cases = read_case_set(args.out)["cases"]
    volumes = [case["lesion_ml"] for case in cases]
    counts = [case["lesions"] for case in cases]
    mirrored = sum(case["mirrored"] for case in cases)
    listed = names[0] if len(names) == 1 else f"{names[0]} .. {names[-1]}"
    print(f"{len(names)} case(s) in {args.out} ({listed}; images/, labels/, lungs/, cases.json)")
    print(
        f"  lesions per case {min(counts)}-{max(counts)}, lesion volume {min(volumes):.1f}-{max(volumes):.1f} mL; "
        f"{mirrored} mirrored left-right"
    )
    print("  the anatomy is a real chest CT; the lesions are SYNTHETIC (see cases.json for provenance)")
    return 0
