"""``covidal corrupt-labels``: copy a folder of label volumes, corrupting a chosen share of them.

For testing the re-weighting of noisy pseudo-labels: round(RATE x N) of the N label
volumes are corrupted (erase: no lesion; dilate: lesions grown by 6 mm; shift: moved 15 mm
in-plane; swap: another case's label; mixed: one of these per volume), the others copied
unchanged. Files keep their names. OUT/corruption.json lists which cases were corrupted and how.
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

from covidal.cli.options import finite_float, non_negative_int
from covidal.volumes.corruption import CORRUPTION_FILE, Corruption, corrupt_label_folder


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "corrupt-labels",
        help="corrupt a share of a folder of label volumes (noisy pseudo-labels)",
        description=__doc__.split(":", 1)[1].strip(),
    )
    parser.add_argument("--labels", type=Path, required=True, help="folder of label volumes (NIfTI/NRRD/MetaImage)")
    parser.add_argument("--out", type=Path, required=True, help="output folder for the copies and corruption.json")
    parser.add_argument("--rate", type=finite_float, required=True, help="share of the volumes to corrupt, in [0, 1]")
    parser.add_argument(
        "--kind",
        choices=[k.value for k in Corruption],
        default=Corruption.MIXED.value,
        help="how to corrupt (default mixed: drawn per volume)",
    )
    parser.add_argument("--seed", type=non_negative_int, default=0, help="seeds the choice and the corruptions")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    record = corrupt_label_folder(args.labels, args.out, args.rate, Corruption(args.kind), args.seed)
    kinds = Counter(entry["kind"] for entry in record["corrupted"])
    how = ", ".join(f"{kind}: {count}" for kind, count in sorted(kinds.items()))
    print(
        f"corrupted {len(record['corrupted'])} of {record['cases']} label volumes{f' ({how})' if how else ''}; "
        f"copies in {args.out}, record in {args.out / CORRUPTION_FILE}"
    )
    return 0
