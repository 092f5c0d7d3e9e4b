"""An exponential moving average (EMA) of a network's weights, the model that predicts when a run keeps one.

After optimiser step ``t`` (counted from 1) every floating parameter becomes
``average = d_t * average + (1 - d_t) * weight`` with ``d_t = min(decay, (1 + t) / (10 + t))``: the warm-up
keeps the random initial weights from dominating a short run (at decay 0.99 and 75 steps, a plain average
would still give the initialisation 0.99^75 = 47% of the weight; with the warm-up, d_75 = 0.89). Buffers
(e.g. normalisation statistics) are copied from the network, not averaged. Decay 0 makes the average the
weights themselves.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

WARM_UP_STEPS = 10


def warmed_up_decay(decay: float, step: int) -> float:
    """The decay applied after optimiser step ``step`` (from 1): ``min(decay, (1 + step) / (10 + step))``."""
    return min(decay, (1 + step) / (WARM_UP_STEPS + step))


class WeightAverage:
    """The EMA of ``network``'s weights, held in a copy of it (eval mode, no gradients).

    Args:
        network: the trained network; its current weights start the average.
        decay: in [0, 1).
    """

    def __init__(self, network: nn.Module, decay: float) -> None:
        self.decay = decay
        self.module = copy.deepcopy(network).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, network: nn.Module, step: int) -> None:
        """Fold ``network``'s weights after optimiser step ``step`` into the average; copy its buffers."""
        weight = 1.0 - warmed_up_decay(self.decay, step)
        for average, current in zip(self.module.parameters(), network.parameters(), strict=True):
            average.lerp_(current.detach(), weight)
        for average, current in zip(self.module.buffers(), network.buffers(), strict=True):
            average.copy_(current)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The averaged weights and copied buffers (CPU tensors)."""
        return {key: value.detach().cpu() for key, value in self.module.state_dict().items()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.module.load_state_dict(state)
