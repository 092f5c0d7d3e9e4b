"""The simulated region-based active-learning loop: label, train, evaluate, score, select, repeat.

Cycle 0 trains on ``init_slices`` slices labelled in full (every region
answered). Each later cycle scores the pool with the previous cycle's model,
asks the simulated annotator about the selected regions, retrains and
evaluates on the held-out test slices. After every cycle the run's curve is
merged into ``out/curve.json`` (several runs may share the folder) and its
artefacts are written under ``out/runs/<run name>/``:

* ``config.json``: the :class:`SimulationConfig`;
* ``cycle_XX.json``: the seeds used, the selected regions with their scores,
  answers and effort, the strategy's pseudo-labels (CEAL: their cycle,
  threshold, seed, pixels and slices, :meth:`PseudoLabels.record`), the
  training losses and the test metrics;
* ``annotations.json``: every answer so far (``covidal.annotations`` format);
* ``model.pt``: the latest model (loadable by ``covidal predict``/``evaluate``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from covidal.activelearning.query import PoolPart, QueryOptions, cycle_seed, query_regions
from covidal.activelearning.seeds import derived_seed
from covidal.activelearning.simulation.curve import TEST_METRICS, CycleRecord, RunCurve, update_curve_file
from covidal.activelearning.simulation.pool import Pool
from covidal.activelearning.simulation.simulation_config import SimulationConfig
from covidal.activelearning.strategies import Strategy, build_strategy
from covidal.activelearning.strategies.pseudo_labels import PseudoLabels, training_label_maps
from covidal.activelearning.strategies.strategy import PartAnswers, SliceStack
from covidal.annotation.annotator import AnswerProtocol, SimulatedAnnotator
from covidal.annotation.effort import ClickEffort, EffortModel, OutlineEffort, PolygonEffort
from covidal.annotation.state import AnnotationState, Answer, RegionLabel
from covidal.data.slices import SliceRecord, records_kind
from covidal.data.window import ImageKind
from covidal.errors import CovidalError
from covidal.losses.registry import build_loss
from covidal.models.slices.build import build_model
from covidal.models.slices.network import SegmentationNet
from covidal.regions.grid import RegionGrid, RegionId
from covidal.training.augment import BatchAugmentation
from covidal.training.checkpoint import MODEL_FILE, save_checkpoint
from covidal.training.dataset import TrainingSlices
from covidal.training.inference import evaluate
from covidal.training.steps import StepTrainer
from covidal.training.train_config import resolve_device
from covidal.utils.atomic import atomic_write_json

CURVE_FILE = "curve.json"


@dataclass
class Session:
    """The moving parts of one simulated run."""

    config: SimulationConfig
    pool: Pool
    test: list[SliceRecord]
    grid: RegionGrid
    strategy: Strategy
    query: QueryOptions
    state: AnnotationState
    annotator: SimulatedAnnotator
    effort: EffortModel
    efforts: dict[RegionId, float]
    out_dir: Path
    run_dir: Path
    device: torch.device
    image_kind: ImageKind | None  # of the pool, saved with each cycle's model


def simulate(
    pool_records: Sequence[SliceRecord],
    test_records: Sequence[SliceRecord],
    config: SimulationConfig,
    out_dir: Path,
    progress: bool = True,
) -> RunCurve:
    """Run the whole simulation and return its learning curve (also merged into ``out_dir/curve.json``).

    Args:
        pool_records: slices the learner may query; their masks drive the simulated annotator.
        test_records: held-out slices with masks, evaluated after every cycle.
        config: the run's options.
        out_dir: output folder, possibly shared with other runs.
        progress: show a progress bar on stderr.

    Raises:
        CovidalError: missing masks, fewer pool slices than ``init_slices``, or slices smaller than the grid.
    """
    session = _start(pool_records, test_records, config, Path(out_dir))
    full_effort = PolygonEffort(session.pool.masks, session.grid).pool_seconds(session.pool.keys)
    run = RunCurve(
        name=config.run_name,
        strategy=config.strategy.value,
        loss=config.loss.name.value,
        seed=config.seed,
        full_effort_seconds=full_effort,
        config=config.to_dict(),
        cycles=[],
    )
    spent = 0.0
    model: SegmentationNet | None = None
    cycles = tqdm(range(config.cycles + 1), desc=config.run_name, unit="cycle", disable=not progress)
    for cycle in cycles:
        started = time.perf_counter()
        if cycle == 0:
            selection, labels = [], _initial_labels(session)
        else:
            selection, labels = _query(session, model, cycle)
            if not labels:
                break  # every region of the pool is labelled
        session.state.add_many(labels)
        session.efforts.update((label.region, session.effort.seconds(label)) for label in labels)
        spent += sum(session.efforts[label.region] for label in labels)
        pseudo = (
            None if model is None else session.strategy.pseudo_labels(model, session.pool.images, cycle, config.seed)
        )
        score_seconds = time.perf_counter() - started

        started = time.perf_counter()
        model, losses = _retrain(session, model, cycle, pseudo)
        train_seconds = time.perf_counter() - started
        test = evaluate(model, session.test, config.image_size, session.device).to_dict()

        record = CycleRecord(
            cycle=cycle,
            labelled_regions=len(session.state),
            labelled_slices=len(session.state.labelled_slices()),
            effort_seconds=spent,
            test={key: test[key] for key in TEST_METRICS},
            train_seconds=train_seconds,
            score_seconds=score_seconds,
        )
        run.cycles.append(record)
        _save_cycle(session, cycle, model, selection, labels, losses, record, pseudo)
        update_curve_file(session.out_dir / CURVE_FILE, run)
        cycles.set_postfix(dice=f"{test['dice']:.3f}", effort=f"{spent / 60:.0f}min")
    return run


def _check_slice_sizes(records: Sequence[SliceRecord], grid: RegionGrid) -> None:
    """Every pool slice must fit the grid (the grid's own rule), reported with the slice's name.

    Raises:
        CovidalError: naming the first slice that is too small.
    """
    for record in records:
        try:
            grid.boxes(record.image.shape)
        except ValueError as error:
            raise CovidalError(f"slice {record.slice_id}: {error}") from None


def _start(pool_records, test_records, config: SimulationConfig, out_dir: Path) -> Session:
    if len(pool_records) < config.init_slices:
        raise CovidalError(f"--init-slices {config.init_slices} is more than the {len(pool_records)} pool slices")
    missing = [r.slice_id for r in test_records if r.mask is None]
    if not test_records or missing:
        raise CovidalError(
            "the test set needs slices with reference masks" + (f" (e.g. {missing[0]})" if missing else "")
        )
    grid = RegionGrid(config.regions)
    _check_slice_sizes(pool_records, grid)
    pool = Pool.build(pool_records, config.image_size)
    effort = ClickEffort()
    if config.protocol is AnswerProtocol.MASK:
        effort = OutlineEffort(PolygonEffort(pool.masks, grid))
    run_dir = out_dir / "runs" / config.run_name
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(run_dir / "config.json", config.to_dict())
    return Session(
        config=config,
        pool=pool,
        test=list(test_records),
        grid=grid,
        strategy=build_strategy(config.strategy, config.strategy_params),
        query=config.query_options(),
        state=AnnotationState(grid, pool.shapes),
        annotator=SimulatedAnnotator(pool.masks, grid, derived_seed(config.seed, "annotator"), config.protocol),
        effort=effort,
        efforts={},
        out_dir=out_dir,
        run_dir=run_dir,
        device=resolve_device(config.device),
        image_kind=records_kind(pool_records),
    )


def _initial_labels(session: Session) -> list[RegionLabel]:
    """Every region of ``init_slices`` slices drawn at random from the pool."""
    rng = np.random.default_rng(derived_seed(session.config.seed, "initial-slices"))
    chosen = sorted(rng.choice(len(session.pool), size=session.config.init_slices, replace=False).tolist())
    return [label for i in chosen for label in session.annotator.answer_slice(session.pool.keys[i])]


def _query(session: Session, model: SegmentationNet, cycle: int) -> tuple[list[dict], list[RegionLabel]]:
    """Select the cycle's regions and answer them."""
    selected = select_for_cycle(
        session.pool,
        session.state.labelled,
        session.strategy,
        model,
        session.query,
        cycle_seed(session.config.seed, cycle),
        pool_answers(session),
    )
    labels = [session.annotator.answer(region) for region, _ in selected]
    selection = [
        {**asdict(region), "score": score, "answer": label.answer.value, **_answer_record(session, label)}
        for (region, score), label in zip(selected, labels)
    ]
    return selection, labels


def _answer_record(session: Session, label: RegionLabel) -> dict:
    """What a cycle file keeps of an answer: its clicks (an outline's pixel count instead), and its effort."""
    points = {"outline_pixels": len(label.points)} if label.outlined else {"points": [list(p) for p in label.points]}
    return {**points, "effort_seconds": session.effort.seconds(label)}


def pool_answers(session: Session) -> PartAnswers:
    """The answers so far as the strategies see them (:func:`answers_of`)."""
    config = session.config
    seed = derived_seed(config.seed, "background-sample")
    return answers_of(session.pool, session.state, session.efforts, config.background_sample, seed)


def answers_of(
    pool: Pool,
    state: AnnotationState,
    efforts: Mapping[RegionId, float],
    background_sample: int | None = None,
    background_seed: int = 0,
) -> PartAnswers:
    """A pool's answers as a strategy sees them: each answered region's effort seconds, and the label maps the
    model trains on (:meth:`AnnotationState.label_map_on_grid`, without pseudo-labels)."""
    seconds = np.full((len(pool), state.grid.regions), np.nan)
    row = {key: i for i, key in enumerate(pool.keys)}
    for region, value in efforts.items():
        seconds[row[(region.case, region.slice)], region.region] = value

    def label_maps(size: int) -> np.ndarray:
        return np.stack([state.label_map_on_grid(key, size, background_sample, background_seed) for key in pool.keys])

    return PartAnswers(seconds, label_maps)


def select_for_cycle(
    pool: Pool,
    labelled: AbstractSet[RegionId],
    strategy: Strategy,
    model: SegmentationNet | None,
    options: QueryOptions,
    seed: int,
    answers: PartAnswers | None = None,
) -> list[tuple[RegionId, float]]:
    """The regions a cycle asks about, best first, with their scores: the pool as one part of the one query
    (:func:`~covidal.activelearning.query.query_regions`), its ``labelled`` regions closed.

    Args:
        seed: the cycle's seed (:func:`~covidal.activelearning.query.cycle_seed` of the run's seed and cycle).
        answers: the answers with their effort, for strategies that learn from them (None: none).
    """
    regions = options.grid.regions
    open_regions = np.array(
        [
            [RegionId(record.case_id, record.slice_id, region) not in labelled for region in range(regions)]
            for record in pool.records
        ]
    )
    stack = SliceStack(tuple(record.image.shape for record in pool.records), lambda: pool.images)
    queried = query_regions([PoolPart(stack, open_regions, answers)], strategy, model, options, seed)
    return [
        (RegionId(pool.records[q.slice].case_id, pool.records[q.slice].slice_id, q.region), q.score) for q in queried
    ]


def _retrain(
    session: Session, previous: SegmentationNet | None, cycle: int, pseudo: PseudoLabels | None = None
) -> tuple[SegmentationNet, list[float]]:
    """Train on every labelled slice: from ``previous`` (warm start) or from a fresh initialisation. With the
    strategy's ``pseudo`` labels of the pool, every slice with an answer or a pseudo-label trains, answers winning
    where both exist (:func:`training_label_maps`, as a served project's training job)."""
    config = session.config
    if previous is None or not config.warm_start:
        # The same initial weights every cycle, so scratch cycles differ only in their labels.
        torch.manual_seed(derived_seed(config.seed, "initial-weights"))
        model = build_model(config.model).to(session.device)
    else:
        model = previous
    keys = session.state.labelled_slices()
    background_seed = derived_seed(config.seed, "background-sample")
    label_maps = np.stack(
        [
            session.state.label_map_on_grid(key, config.image_size, config.background_sample, background_seed)
            for key in keys
        ]
    )
    rows, label_maps = training_label_maps(session.pool.index_of(keys), label_maps, pseudo)
    data = TrainingSlices(
        images=session.pool.images[rows],
        point_labels=torch.from_numpy(label_maps),
        masks=None,
    )
    loss_generator = torch.Generator().manual_seed(derived_seed(config.seed, "loss", cycle))
    trainer = StepTrainer(
        model,
        build_loss(config.loss, generator=loss_generator),
        data,
        config.batch_size,
        config.learning_rate,
        derived_seed(config.seed, "batches", cycle),
        session.device,
        loss_generator=loss_generator,
        augmentation=BatchAugmentation(config.augment, config.seed, stream=cycle),
    )
    losses: list[float] = []
    trainer.run(config.steps_per_cycle, lambda report: losses.append(report.loss))
    return model, losses


def _save_cycle(
    session: Session,
    cycle: int,
    model: SegmentationNet,
    selection: list[dict],
    labels: list[RegionLabel],
    losses: list[float],
    record: CycleRecord,
    pseudo: PseudoLabels | None,
) -> None:
    config = session.config
    seeds = {name: derived_seed(config.seed, name, cycle) for name in ("loss", "batches")}
    seeds.update(cycle=cycle_seed(config.seed, cycle), annotator=session.annotator.seed, run=config.seed)
    atomic_write_json(
        session.run_dir / f"cycle_{cycle:02d}.json",
        {
            **asdict(record),
            "seeds": seeds,
            "new_labels": {answer.value: sum(label.answer is answer for label in labels) for answer in Answer},
            "pseudo_labels": None if pseudo is None else pseudo.record(),
            "selection": selection,
            "train_loss": {
                "first": losses[0],
                "last": losses[-1],
                "mean_last_10pct": float(np.mean(losses[-max(1, len(losses) // 10) :])),
            },
        },
    )
    session.state.save(session.run_dir / "annotations.json")
    save_checkpoint(session.run_dir / MODEL_FILE, model, config.train_config(), cycle, None, session.image_kind)
