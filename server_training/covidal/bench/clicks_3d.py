"""From clicks to a 3D model, measured through the served loop (``covidal bench-clicks-3d``).

A simulated clinician answers cycles of suggested regions on the training cases through a real ``covidal serve``
(as ``covidal demo`` does), a 'train' job follows each cycle, and then one 'clicks-to-3d' job per arm trains the
project's 3D model. Every model is copied as it is published and scored on held-out cases that were never in the
project: the 2D click model (arm ``2d``) and each 3D model, all restricted to the lungs the service finds, Dice and
HD95 on each case's own grid against its synthetic lesions.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from covidal.cli.served_loop import Tally, annotate_cycle, simulated_annotator, train_job, wait_for_job
from covidal.data.io import read_label_volume, read_volume
from covidal.regions.grid import RegionGrid
from covidal.service.local import local_service
from covidal.utils.atomic import atomic_write_json
from covidal.volumes.cases import CaseSource
from covidal.volumes.evaluation import score_volume
from covidal.volumes.lungs import find_lungs, restrict_to_lungs
from covidal.volumes.preprocess import prepare_case
from covidal.volumes.sliding_window import predict_on_source_grid

ARM_2D = "2d"
EXPERT_SUFFIX = "+expert"


@dataclass(frozen=True)
class Arm:
    """A 3D job to run: its student ``mode``, and whether the first training case's true label is uploaded as an
    expert volume before it (``name`` ends in ``+expert``)."""

    name: str

    @property
    def mode(self) -> str:
        return self.name.removesuffix(EXPERT_SUFFIX)

    @property
    def expert(self) -> bool:
        return self.name.endswith(EXPERT_SUFFIX)


@dataclass(frozen=True)
class BenchCases:
    """make-cases-3d cases: ``images/<name>.nrrd`` and ``labels/<name>.nrrd`` under ``folder``."""

    folder: Path
    train: tuple[str, ...]
    test: tuple[str, ...]

    def image(self, name: str) -> Path:
        return self.folder / "images" / f"{name}.nrrd"

    def label(self, name: str) -> Path:
        return self.folder / "labels" / f"{name}.nrrd"


def run_seed(
    cases: BenchCases,
    out: Path,
    seed: int,
    arms: Sequence[Arm],
    cycles: int,
    regions: int | None,
    job_options: dict,
    device: str,
) -> dict:
    """One seed: the served loop, the 3D jobs, the scores (also written to ``out/result.json``); a seed whose
    ``result.json`` exists is read back, not run again, and one whose models were all kept (``out/models``, with
    ``out/loop.json``) is only scored.

    Experts come last: once uploaded, the label stays, so every arm after the first ``+expert`` one has it.
    """
    done = out / "result.json"
    if done.is_file():
        return json.loads(done.read_text())
    models = out / "models"
    loop = out / "loop.json"
    names = [ARM_2D, *(arm.name for arm in arms)]
    if not (loop.is_file() and all((models / f"{name}.pt").is_file() for name in names)):
        atomic_write_json(loop, _served_loop(cases, out, seed, arms, cycles, regions, job_options, device))
    scores = score_models(cases, models, names, device)
    result = {**json.loads(loop.read_text()), "scores": scores}
    atomic_write_json(done, result)
    return result


def _served_loop(
    cases: BenchCases,
    out: Path,
    seed: int,
    arms: Sequence[Arm],
    cycles: int,
    regions: int | None,
    job_options: dict,
    device: str,
) -> dict:
    """The answered cycles and the 3D jobs through a service in ``out/service``; every model copied to
    ``out/models``. Returns what the loop did."""
    models = out / "models"
    models.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}
    with local_service(out / "service", out / "service.log", device) as client:
        steps = client.defaults()["steps"]  # the job's own Dice once, at its end (the demo's choice; same weights)
        project = client.create_project(f"clicks3d-seed{seed}", settings={"seed": seed, "checkpoint_every": steps})
        volumes = {name: client.upload_volume(project["id"], cases.image(name), name)[0] for name in cases.train}
        ids = [volume["id"] for volume in volumes.values()]
        lesions = {volumes[name]["id"]: read_volume(cases.label(name)).array > 0 for name in cases.train}
        annotator = simulated_annotator(lesions, RegionGrid(project["grid_k"]), seed)
        tally = Tally()
        count = regions or client.defaults()["regions_per_cycle"]
        for number in range(1, cycles + 1):
            print(f"seed {seed}, cycle {number}/{cycles}", flush=True)
            annotate_cycle(client, project["id"], ids, count, annotator, tally)
            train_job(client, project["id"], None)
        project_models = out / "service" / "models" / str(project["id"])
        shutil.copyfile(project_models / "current" / "model.pt", models / f"{ARM_2D}.pt")
        for arm in arms:
            if arm.expert and not client.list_labels(project["id"]):
                first = cases.train[0]
                client.upload_label(project["id"], volumes[first]["id"], cases.label(first))
            job = client.start_training(
                project["id"], config={**job_options, "mode": arm.mode, "seed": seed}, kind="clicks-to-3d"
            )
            finished = wait_for_job(client, project["id"], job)
            seconds[arm.name] = finished["finished_at"] - finished["started_at"]
            shutil.copyfile(project_models / "current-3d" / "model.pt", models / f"{arm.name}.pt")
    return {
        "seed": seed,
        "answers": tally.regions,
        "clicks": tally.infection,
        "effort_seconds": tally.effort_seconds,
        "job_seconds": seconds,
        "job_options": job_options,
        "train": list(cases.train),
        "test": list(cases.test),
    }


def score_models(cases: BenchCases, models: Path, arms: Sequence[str], device: str) -> dict[str, dict[str, dict]]:
    """``{arm: {case: VolumeScore as dict}}`` of each model on each test case, inside the case's lungs."""
    from covidal.noisyteacher.run import load_model as load_3d
    from covidal.service.project.models.slices import load_model as load_2d
    from covidal.service.project.models.slices import predict_labels

    scores: dict[str, dict[str, dict]] = {arm: {} for arm in arms}
    for name in cases.test:
        ct = read_volume(cases.image(name))
        truth = read_label_volume(cases.label(name), ct).array > 0
        lungs = find_lungs(ct)
        for arm in arms:
            path = models / f"{arm}.pt"
            if arm == ARM_2D:
                predicted = predict_labels(load_2d(path, device), ct)
            else:
                loaded = load_3d(path, torch.device(device))
                source = CaseSource(name, cases.image(name), None)
                prepared = prepare_case(source, loaded.config.spacing, loaded.config.window)
                labels, _ = predict_on_source_grid(
                    loaded.model, prepared, loaded.config.sliding_window, torch.device(device), loaded.config.amp
                )
                predicted = labels.array
            score = score_volume(restrict_to_lungs(predicted, lungs) > 0, truth, ct.spacing)
            scores[arm][name] = asdict(score)
            print(f"{arm} on {name}: Dice {score.dice:.3f}, HD95 {score.hd95_mm:.1f} mm", flush=True)
    return scores


def summary_table(results: Sequence[dict]) -> str:
    """A markdown table: per arm, Dice (mean over the test cases) for each seed, and the mean +- sd over the seeds
    that ran it ("-" where a seed did not), HD95 and the predicted mL (true mL) likewise."""
    arms = list(dict.fromkeys(arm for result in results for arm in result["scores"]))
    seeds = [result["seed"] for result in results]
    lines = [
        "| arm | " + " | ".join(f"Dice s{s}" for s in seeds) + " | Dice mean ± sd | HD95 mm mean ± sd | mL (true) |",
        "|---|" + "---:|" * (len(seeds) + 3),
    ]
    for arm in arms:
        ran = [result["scores"][arm] for result in results if arm in result["scores"]]
        dice = [_mean(scores, "dice") for scores in ran]
        hd95 = [_mean(scores, "hd95_mm") for scores in ran]
        predicted = [_mean(scores, "predicted_ml") for scores in ran]
        true = [_mean(scores, "reference_ml") for scores in ran]
        per_seed = [f"{_mean(r['scores'][arm], 'dice'):.3f}" if arm in r["scores"] else "-" for r in results]
        lines.append(
            f"| {arm} | "
            + " | ".join(per_seed)
            + f" | {np.mean(dice):.3f} ± {np.std(dice):.3f} | {np.nanmean(hd95):.1f} ± {np.nanstd(hd95):.1f} | "
            f"{np.mean(predicted):.0f} ({np.mean(true):.0f}) |"
        )
    return "\n".join(lines)


def _mean(scores: dict[str, dict], key: str) -> float:
    values = [score[key] for score in scores.values()]
    return float(np.nanmean(values)) if not all(np.isnan(values)) else float("nan")
