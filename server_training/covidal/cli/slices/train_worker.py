"""One process of ``covidal train --gpus N``: started by torchrun with the run as JSON (:class:`TrainJob`).

Usage (what ``covidal train`` runs): ``python -m torch.distributed.run --standalone
--nproc-per-node N -m covidal.cli.slices.train_worker JOB_JSON``. Errors are reported as
by ``covidal``: one ``covidal: error: ...`` line and exit status 2.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import torch.distributed as dist

from covidal.cli.slices.train import TrainJob, run_job
from covidal.errors import CovidalError
from covidal.training.distributed import init_process_group


def main(argv: Sequence[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else list(argv)
    if len(arguments) != 1:
        print(
            "covidal: error: usage: python -m covidal.cli.slices.train_worker JOB_JSON (started by covidal train --gpus N)",
            file=sys.stderr,
        )
        return 2
    job = TrainJob.from_json(arguments[0])
    try:
        shard = init_process_group(job.config.device)
    except CovidalError as error:
        print(f"covidal: error: {error}", file=sys.stderr)
        return 2
    try:
        run_job(job, shard)
    except CovidalError as error:
        print(f"covidal: error: (rank {shard.rank}) {error}", file=sys.stderr)
        return 2
    finally:
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
