"""Suggestive annotation: the regions a bootstrapped committee disagrees on most, then the few of them that best
cover the pool."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from covidal.activelearning.scoring import mc_region_pass
from covidal.activelearning.seeds import derived_seed
from covidal.activelearning.strategies.density import trunk_features, unit_rows
from covidal.activelearning.strategies.strategy import PoolLevelStrategy, PoolScratch, ScoringContext, SliceStack
from covidal.data.points import IGNORE_INDEX
from covidal.models.slices.network import SegmentationNet
from covidal.uncertainty.mc_dropout import MCSamples
from covidal.uncertainty.measures import bald

MAX_PIXELS = 20_000  # answered pixels the heads are fitted on (a seeded sample): enough for a 1x1 head
HEAD_LEARNING_RATE = 0.05


class Suggestive(PoolLevelStrategy):
    """Suggestive annotation at region level (Yang et al. 2017).

    Every cycle, ``committee`` copies of the model's 1x1 head are fitted, each for ``head_steps`` Adam steps
    from the model's own head, on a Poisson bootstrap resample of the answered pixels (class-balanced) over
    the model's trunk features. Their disagreement on the open regions (BALD of the committee, the context's
    reduction) gives the top K; from those, greedy max-cover picks the cycle's k: each step takes the region
    whose descriptor (trunk features averaged over it) most raises ``sum_j max_i cos(d_i, d_j)`` over the open
    regions j of the pool. Scores order the picks first (in pick order), the other K next, then the rest,
    each by disagreement, so the one selection rule takes them in that order.

    Args:
        top_k: K (at least the cycle's k is used).
        committee: heads, >= 2.
        head_steps: Adam steps per head.
    """

    def __init__(self, top_k: int, committee: int, head_steps: int) -> None:
        self.top_k, self.committee, self.head_steps = top_k, committee, head_steps

    def region_scores(self, stack: SliceStack, context: ScoringContext) -> np.ndarray:
        """Raises: ValueError without a model (the committee's heads are the model's)."""
        if context.model is None:
            raise ValueError("suggestive annotation ranks by a committee of the model's heads: train a model first")
        return super().region_scores(stack, context)

    def pool_scores(self, scores: list[np.ndarray], pool: PoolScratch) -> list[np.ndarray]:
        """Raises: ValueError when no pixel of the pool is answered, or a slice is smaller than the grid."""
        notes = [pool.parts[index] for index in sorted(pool.parts)]
        if not notes:
            return scores
        model = notes[0][1].model
        heads = fit_heads(model, notes, self.committee, self.head_steps, derived_seed(pool.seed, "suggestive"))
        sampler = committee_sampler(heads)
        disagreement, descriptors, open_masks = [], [], []
        for stack, context in notes:
            images = stack.network_input()
            result = mc_region_pass(
                model,
                images,
                torch.zeros(1, len(stack), 1),  # the committee's heads replace the dropout masks
                stack.shapes,
                context.grid,
                bald,
                context.reduction,
                context.batch_size,
                np.flatnonzero(context.open_slices).tolist(),
                trunk_features,
                sampler,
            )
            disagreement.append(result.scores)
            descriptors.append(unit_rows(np.nan_to_num(result.means)))
            open_masks.append(context.open_mask())
        flat_open = np.concatenate([d[o] for d, o in zip(disagreement, open_masks, strict=True)])
        flat_descriptors = np.concatenate([d[o] for d, o in zip(descriptors, open_masks, strict=True)])
        order = suggestive_order(flat_open, flat_descriptors, max(self.top_k, pool.count), pool.count)
        flat_scores = tier_scores(flat_open, order, pool.count, max(self.top_k, pool.count))
        out, start = [], 0
        for part_scores, open_ in zip(disagreement, open_masks, strict=True):
            final = np.array(part_scores)
            final[open_] = flat_scores[start : start + open_.sum()]
            start += open_.sum()
            out.append(final)
        return out


def suggestive_order(disagreement: np.ndarray, descriptors: np.ndarray, top_k: int, k: int) -> np.ndarray:
    """Indices into the M open regions: the greedy max-cover picks (at most k, in pick order) among the
    ``top_k`` most disagreed-on, then those candidates not picked (by disagreement).

    Args:
        disagreement: ``[M]``.
        descriptors: ``[M, F]`` unit descriptors of the open regions.
    """
    candidates = np.argsort(-disagreement, kind="stable")[:top_k]
    similarity = np.clip(descriptors[candidates] @ descriptors.T, 0.0, None)  # [K, M]
    covered = np.zeros(len(descriptors))
    picks: list[int] = []
    for _ in range(min(k, len(candidates))):
        gains = (np.maximum(similarity, covered) - covered).sum(axis=1)
        gains[picks] = -np.inf
        best = int(np.argmax(gains))  # ties: the more disagreed-on candidate
        picks.append(best)
        covered = np.maximum(covered, similarity[best])
    rest = [i for i in range(len(candidates)) if i not in set(picks)]
    return candidates[picks + rest]


def tier_scores(disagreement: np.ndarray, order: np.ndarray, k: int, top_k: int) -> np.ndarray:
    """``[M]`` scores: the first ``k`` of ``order`` in (2, 3] by their place, the rest of the top K in [1, 1.5],
    the others in [0, 0.5], those two by disagreement."""
    top = max(float(disagreement.max()), 1e-300) if len(disagreement) else 1.0
    scores = 0.5 * np.clip(disagreement, 0.0, None) / top
    picked = order[: min(k, len(order))]
    scores[order[len(picked) : top_k]] += 1.0
    scores[picked] = 2.0 + (len(picked) - np.arange(len(picked))) / len(picked)
    return scores


def fit_heads(model: SegmentationNet, notes, committee: int, steps: int, seed: int) -> tuple[Tensor, Tensor]:
    """``(weights [M, C, F], biases [M, C])`` of ``committee`` heads fitted on bootstrap resamples of the answered
    pixels of every noted part (see :class:`Suggestive`).

    Raises:
        ValueError: no answered pixel.
    """
    features, labels = answered_pixels(model, notes, seed)
    generator = torch.Generator().manual_seed(seed)
    counts = torch.bincount(labels, minlength=model.classifier.out_channels).double()
    balance = (1.0 / counts.clamp_min(1.0))[labels]
    weights, biases = [], []
    for _ in range(committee):
        resample = torch.poisson(torch.ones(len(labels), dtype=torch.float64), generator) * balance
        weight = model.classifier.weight[:, :, 0, 0].detach().double().clone().requires_grad_(True)
        bias = model.classifier.bias.detach().double().clone().requires_grad_(True)
        optimiser = torch.optim.Adam([weight, bias], lr=HEAD_LEARNING_RATE)
        for _ in range(steps):
            optimiser.zero_grad()
            pixel_loss = torch.nn.functional.cross_entropy(features @ weight.T + bias, labels, reduction="none")
            ((pixel_loss * resample).sum() / resample.sum().clamp_min(1e-12)).backward()
            optimiser.step()
        weights.append(weight.detach())
        biases.append(bias.detach())
    return torch.stack(weights), torch.stack(biases)


@torch.no_grad()
def answered_pixels(model: SegmentationNet, notes, seed: int) -> tuple[Tensor, Tensor]:
    """float64 ``[P, F]`` trunk features and int64 ``[P]`` classes of (a seeded sample of at most
    :data:`MAX_PIXELS` of) the answered pixels of the noted parts, on the network grid."""
    model.eval()
    device = model.classifier.weight.device
    features, labels = [], []
    for stack, context in notes:
        answers = context.part_answers()
        rows = np.flatnonzero(answers.answered.any(axis=1))
        if not len(rows):
            continue
        images = stack.network_input()
        maps = torch.from_numpy(answers.label_maps(images.shape[-1])[rows])
        for start in range(0, len(rows), context.batch_size):
            batch = rows[start : start + context.batch_size]
            trunk = model.features(images[batch].to(device)).double().cpu()  # [B, F, S, S]
            known = maps[start : start + len(batch)] != IGNORE_INDEX
            features.append(trunk.permute(0, 2, 3, 1)[known])
            labels.append(maps[start : start + len(batch)][known])
    if not features or not sum(len(f) for f in features):
        raise ValueError("suggestive annotation fits its committee on answered pixels, and none is answered yet")
    features, labels = torch.cat(features), torch.cat(labels)
    if len(labels) > MAX_PIXELS:
        keep = torch.from_numpy(np.random.default_rng(seed).choice(len(labels), MAX_PIXELS, replace=False))
        features, labels = features[keep], labels[keep]
    return features, labels


def committee_sampler(heads: tuple[Tensor, Tensor]):
    """A :data:`~covidal.activelearning.scoring.Sampler` whose M "samples" are the committee's heads on the model's
    trunk features (the masks it is given are ignored)."""
    weights, biases = heads

    @torch.no_grad()
    def sample(model: SegmentationNet, images: Tensor, masks: Tensor) -> MCSamples:
        model.eval()
        features = model.features(images).double()
        logits = torch.einsum("mcf,bfhw->mbchw", weights.to(features.device), features)
        logits = logits + biases.to(features.device)[:, None, :, None, None]
        return MCSamples(probs=logits.softmax(dim=2), masks=masks, features=features)

    return sample
