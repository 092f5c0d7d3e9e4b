"""One typed configuration per simulated active-learning run, saved with its learning curve."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from covidal.activelearning.query import QueryOptions
from covidal.activelearning.scoring import DEFAULT_REDUCTION, Reduction
from covidal.activelearning.selection import DEFAULT_MAX_PER_SLICE, SelectionRule
from covidal.activelearning.strategies import StrategyName, StrategyParams
from covidal.annotation.annotator import AnswerProtocol
from covidal.data.window import HUWindow
from covidal.losses.registry import LossConfig, LossName
from covidal.models.slices.build import ModelConfig
from covidal.regions.grid import DEFAULT_REGIONS, RegionGrid
from covidal.training.augment_kind import Augment
from covidal.training.train_config import DeviceChoice, TrainConfig
from covidal.validation import check_choice, check_int

# Region answers carry no mask, so a loss that needs full masks cannot learn from them.
SIMULATION_LOSSES = (LossName.POINT, LossName.CB_FLIP, LossName.CB_FLIP_ROT)


@dataclass
class SimulationConfig:
    """Everything that determines a simulated region-based active-learning run.

    Attributes:
        strategy: how regions are ranked.
        strategy_params: the strategies' parameters (each strategy reads its own).
        protocol: how the simulated annotator answers a region with infection: one click (``point``, 3 s) or its
            full outline (``mask``, 3 s per polygon vertex; an empty region costs a 3 s tag either way).
        regions: K regions per slice (a perfect square).
        reduction: how a region's pixel scores become its score (default top-mean).
        init_slices: slices labelled in full (all K regions) before the first cycle.
        cycles: query-and-retrain cycles after the initial training.
        per_cycle: regions asked per cycle.
        max_per_slice: at most this many of a cycle's regions from one slice, or None for no cap
            (:class:`~covidal.activelearning.selection.SelectionRule`).
        mc_samples: T, Monte-Carlo dropout samples per slice when scoring.
        steps_per_cycle: optimiser steps of each (re)training. Steps, not epochs,
            so that the first cycles, with few labelled slices, still train enough.
        warm_start: each cycle starts from the previous cycle's model (else from a fresh initialisation).
        background_sample: a background-tagged region contributes this many of its
            pixels (seeded sample) as background; None = all of them.
        loss: training loss; one that learns from points (see ``SIMULATION_LOSSES``).
        augment: random augmentation of each cycle's training batches (:class:`Augment`; ``none`` by default, as
            in every experiment recorded before it existed).
        model: network and head dropout.
        batch_size, learning_rate, image_size, device, window, mask_class: as in :class:`TrainConfig`.
        seed: seeds the initial slices, the annotator's clicks, the initialisation,
            the batches and the dropout masks; each is derived from it under its own name.

    Raises:
        ValueError: on any out-of-range option.
    """

    strategy: StrategyName = StrategyName.ENTROPY
    strategy_params: StrategyParams = field(default_factory=StrategyParams)
    protocol: AnswerProtocol = AnswerProtocol.POINT
    regions: int = DEFAULT_REGIONS
    reduction: Reduction = DEFAULT_REDUCTION
    init_slices: int = 2
    cycles: int = 10
    per_cycle: int = 10
    max_per_slice: int | None = DEFAULT_MAX_PER_SLICE
    mc_samples: int = 20
    steps_per_cycle: int = 300
    warm_start: bool = True
    background_sample: int | None = None
    loss: LossConfig = field(default_factory=lambda: LossConfig(name=LossName.CB_FLIP_ROT))
    augment: Augment = Augment.NONE
    model: ModelConfig = field(default_factory=ModelConfig)
    batch_size: int = 8
    learning_rate: float = 1e-3
    image_size: int = 352
    device: DeviceChoice = DeviceChoice.AUTO
    window: HUWindow = field(default_factory=HUWindow)
    mask_class: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        self.strategy = check_choice("selection strategy", self.strategy, StrategyName)
        self.protocol = check_choice("answer protocol", self.protocol, AnswerProtocol)
        if not isinstance(self.strategy_params, StrategyParams):
            raise ValueError(f"strategy_params must be StrategyParams, got {type(self.strategy_params).__name__}")
        self.reduction = check_choice("region reduction", self.reduction, Reduction)
        self.augment = check_choice("augment", self.augment, Augment)
        self.device = check_choice("device", self.device, DeviceChoice)
        RegionGrid(self.regions)  # raises ValueError unless a perfect square
        if self.loss.name not in SIMULATION_LOSSES:
            names = ", ".join(SIMULATION_LOSSES)
            raise ValueError(
                f"loss {self.loss.name.value!r} needs full masks; a simulation trains on region answers: {names}"
            )
        self.selection_rule()  # validates per_cycle and max_per_slice
        for name in ("init_slices", "mc_samples", "steps_per_cycle"):
            check_int(name, getattr(self, name), minimum=1)
        check_int("cycles", self.cycles, minimum=0)
        if self.background_sample is not None:
            check_int("background_sample", self.background_sample, minimum=1)
        self.train_config()  # validates the shared training options

    def selection_rule(self) -> SelectionRule:
        """How each cycle picks its ``per_cycle`` regions."""
        return SelectionRule(self.per_cycle, self.max_per_slice)

    def query_options(self) -> QueryOptions:
        """How each cycle scores and selects (what a service project with these settings does too)."""
        return QueryOptions(RegionGrid(self.regions), self.selection_rule(), self.mc_samples, self.reduction)

    def train_config(self) -> TrainConfig:
        """The training options as a :class:`TrainConfig`, stored in each cycle's ``model.pt``.

        Its ``steps`` are a cycle's ``steps_per_cycle``.
        """
        return TrainConfig(
            loss=self.loss,
            model=self.model,
            steps=self.steps_per_cycle,
            batch_size=self.batch_size,
            learning_rate=self.learning_rate,
            image_size=self.image_size,
            val_fraction=0.0,
            seed=self.seed,
            device=self.device,
            window=self.window,
            mask_class=self.mask_class,
            augment=self.augment,
        )

    @property
    def run_name(self) -> str:
        """``strategy-loss-seedS``, plus ``-mask`` under the mask answer protocol, ``-scratch`` without warm start and ``-no-cap`` or ``-per-sliceN`` for a
        selection cap other than one region per slice: one curve.json entry per name."""
        suffix = "" if self.protocol is AnswerProtocol.POINT else f"-{self.protocol.value}"
        suffix += "" if self.warm_start else "-scratch"
        suffix += "" if self.augment is Augment.NONE else f"-{self.augment.value}"
        if self.max_per_slice != 1:
            suffix += "-no-cap" if self.max_per_slice is None else f"-per-slice{self.max_per_slice}"
        return f"{self.strategy.value}-{self.loss.name.value}-seed{self.seed}{suffix}"

    def to_dict(self) -> dict:
        data = asdict(self)
        data.update(
            strategy=self.strategy.value,
            strategy_params=self.strategy_params.to_dict(),
            protocol=self.protocol.value,
            reduction=self.reduction.value,
            device=self.device.value,
            loss=self.loss.to_dict(),
            model=self.model.to_dict(),
        )
        return data

    @classmethod
    def from_dict(cls, data: dict) -> SimulationConfig:
        """The config of ``to_dict``; a config saved before the one selection rule (``per_cycle`` slices times
        ``regions_per_slice`` regions) reads as ``per_cycle * regions_per_slice`` regions, that many per slice."""
        data = dict(data)
        if "regions_per_slice" in data:
            per_slice = data.pop("regions_per_slice")
            data.update(per_cycle=data["per_cycle"] * per_slice, max_per_slice=per_slice)
        data["strategy_params"] = StrategyParams.from_dict(data.get("strategy_params", {}))
        data["loss"] = LossConfig.from_dict(data["loss"])
        data["model"] = ModelConfig.from_dict(data["model"])
        data["window"] = HUWindow(**data["window"])
        return cls(**data)
