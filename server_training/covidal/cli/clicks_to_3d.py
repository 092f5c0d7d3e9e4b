"""``covidal clicks-to-3d``: train a 2D project's 3D model from its answers on a running ``covidal serve``, follow
the job, and predict volumes with it."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from covidal.cli.options import non_negative_int
from covidal.cli.serve import DEFAULT_HOST, DEFAULT_PORT
from covidal.cli.served_loop import wait_for_job
from covidal.client import BackendUnreachable, ClientError, CovidalClient
from covidal.errors import CovidalError
from covidal.noisyteacher.student_modes import StudentMode


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "clicks-to-3d",
        help="train a 2D project's 3D model from its answers on a running service, then predict with it",
        description=__doc__.split(":", 1)[1].strip() + " The job pseudo-labels the project's volumes with its "
        "2D model (inside the lungs) and trains the 3D student on them, weighted per patch by how their gradient "
        "agrees with that of the answers and any expert label volumes (job kind 'clicks-to-3d'; the server's "
        "README). The project's 2D model stays its model; the 3D one predicts with '?model=3d'.",
    )
    parser.add_argument(
        "--url", default=f"http://{DEFAULT_HOST}:{DEFAULT_PORT}", help="the service (default %(default)s)"
    )
    parser.add_argument("--token-file", type=Path, default=None, help="file holding the service's bearer token")
    parser.add_argument("--project", type=non_negative_int, required=True, help="the 2D project's id")
    parser.add_argument(
        "--mode",
        choices=[mode.value for mode in StudentMode],
        default=None,
        help="how pseudo-labelled patches are weighted (default: the service's)",
    )
    parser.add_argument(
        "--config", type=_json_object, default={}, help="further job options as a JSON object, e.g. '{\"epochs\": 4}'"
    )
    parser.add_argument(
        "--predict", type=non_negative_int, nargs="*", default=[], help="volume ids to predict with the 3D model"
    )
    parser.add_argument("--out", type=Path, default=Path("."), help="folder for the predictions (default: here)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    token = args.token_file.read_text().strip() if args.token_file is not None else None
    client = CovidalClient(args.url, token=token)
    config = {**args.config, **({} if args.mode is None else {"mode": args.mode})}
    try:
        job = wait_for_job(
            client, args.project, client.start_training(args.project, config=config, kind="clicks-to-3d")
        )
        print(f"3D model of project {args.project} trained ({job['config']['mode']}, {job['progress']['steps']} steps)")
        for volume_id in args.predict:
            stats = client.predict_volume(args.project, volume_id, model="3d")
            path = client.download_prediction(
                args.project, volume_id, args.out / f"prediction-3d-volume{volume_id}.nrrd", model="3d"
            )
            print(f"volume {volume_id}: {describe(stats)}; {path}")
    except (ClientError, BackendUnreachable) as error:
        raise CovidalError(f"the service at {args.url} refused or did not answer: {error}") from None
    return 0


def describe(stats: dict) -> str:
    """A prediction's figures in one line: infected mL and each lung's share."""
    if stats.get("lung_percent") is None:
        return f"{stats['infected_ml']:.1f} mL infected ({stats['lungs']})"
    return (
        f"{stats['infected_ml']:.1f} mL infected, {stats['lung_percent']:.1f}% of the lungs (right "
        f"{stats['right_lung_percent']:.1f}%, left {stats['left_lung_percent']:.1f}%)"
    )


def _json_object(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise argparse.ArgumentTypeError(f"not JSON: {error.msg}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object")
    return value
