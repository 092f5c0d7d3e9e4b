"""VAAL (variational adversarial active learning) on region crops: a VAE learns a latent space of answered and
open regions, a discriminator learns to tell them apart, and the open regions it finds least like the answered
ones are asked."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from covidal.activelearning.seeds import derived_seed
from covidal.activelearning.strategies.strategy import PoolLevelStrategy, PoolScratch
from covidal.regions.grid import RegionGrid

LATENT = 16
BATCH = 32  # crops of each kind (answered, open) per step
LEARNING_RATE = 5e-4


class Vaal(PoolLevelStrategy):
    """Every cycle a VAE and a discriminator are trained from a seeded initialisation for ``steps`` Adam steps
    on the CPU, on each region's crop of the network input resized to ``crop x crop``: answered regions are
    "labelled", open ones "unlabelled". The VAE reconstructs both and tries to make the discriminator call every
    latent code labelled; the discriminator learns which is which (Sinha et al. 2019). Score of an open region =
    1 - the discriminator's probability that its latent mean is labelled. Needs no model.

    Args:
        steps: training steps per cycle.
        crop: crop side, a multiple of 4, >= 8.
    """

    def __init__(self, steps: int, crop: int) -> None:
        if crop % 4:
            raise ValueError(f"the VAAL crop side must be a multiple of 4, got {crop}")
        self.steps, self.crop = steps, crop

    def pool_scores(self, scores: list[np.ndarray], pool: PoolScratch) -> list[np.ndarray]:
        """Raises: ValueError when no region of the pool is answered yet."""
        notes = [pool.parts[index] for index in sorted(pool.parts)]
        if not notes:
            return scores
        crops = [region_crops(stack.network_input(), context.grid, self.crop) for stack, context in notes]
        answered = [context.part_answers().answered for _, context in notes]
        opened = [context.open_mask() for _, context in notes]
        labelled = torch.cat([c[a] for c, a in zip(crops, answered, strict=True)])
        unlabelled = torch.cat([c[o] for c, o in zip(crops, opened, strict=True)])
        if not len(labelled):
            raise ValueError("VAAL learns what answered regions look like, and none is answered yet")
        with torch.random.fork_rng():
            torch.manual_seed(derived_seed(pool.seed, "vaal"))
            vae, discriminator = train_vaal(labelled, unlabelled, self.steps, self.crop)
            with torch.no_grad():
                unlike = 1.0 - torch.sigmoid(discriminator(vae.encode(unlabelled)[0])).squeeze(1).double().numpy()
        out, start = [], 0
        for part_scores, open_ in zip(scores, opened, strict=True):
            final = np.array(part_scores, dtype=np.float64)
            final[open_] = unlike[start : start + open_.sum()]
            start += open_.sum()
            out.append(final)
        return out


def region_crops(images: Tensor, grid: RegionGrid, crop: int) -> Tensor:
    """float32 ``[N, R, 1, crop, crop]``: each region of ``images`` ``[N, 1, S, S]`` resized (bilinear) to
    ``crop x crop``, regions in row-major order on the network grid."""
    side = grid.side
    resized = nn.functional.interpolate(images.float().cpu(), size=(side * crop, side * crop), mode="bilinear")
    blocks = resized.reshape(len(images), 1, side, crop, side, crop).permute(0, 2, 4, 1, 3, 5)
    return blocks.reshape(len(images), grid.regions, 1, crop, crop)


class RegionVAE(nn.Module):
    """A small convolutional VAE of ``[B, 1, crop, crop]`` crops with a :data:`LATENT`-dimensional code."""

    def __init__(self, crop: int) -> None:
        super().__init__()
        cells = (crop // 4) ** 2 * 32
        self.crop = crop
        self.encoder = nn.Sequential(
            nn.Conv2d(1, 16, 4, 2, 1), nn.ReLU(), nn.Conv2d(16, 32, 4, 2, 1), nn.ReLU(), nn.Flatten()
        )
        self.to_code = nn.Linear(cells, 2 * LATENT)
        self.from_code = nn.Linear(LATENT, cells)
        self.decoder = nn.Sequential(
            nn.ReLU(), nn.ConvTranspose2d(32, 16, 4, 2, 1), nn.ReLU(), nn.ConvTranspose2d(16, 1, 4, 2, 1)
        )

    def encode(self, crops: Tensor) -> tuple[Tensor, Tensor]:
        """``(mean, log variance)`` ``[B, LATENT]`` each."""
        mean, log_var = self.to_code(self.encoder(crops)).chunk(2, dim=1)
        return mean, log_var

    def decode(self, code: Tensor) -> Tensor:
        return self.decoder(self.from_code(code).reshape(len(code), 32, self.crop // 4, self.crop // 4))


def train_vaal(labelled: Tensor, unlabelled: Tensor, steps: int, crop: int) -> tuple[RegionVAE, nn.Module]:
    """The VAE and discriminator after ``steps`` steps (global torch seed set by the caller)."""
    vae = RegionVAE(crop)
    discriminator = nn.Sequential(nn.Linear(LATENT, 64), nn.ReLU(), nn.Linear(64, 1))
    vae_optimiser = torch.optim.Adam(vae.parameters(), lr=LEARNING_RATE)
    discriminator_optimiser = torch.optim.Adam(discriminator.parameters(), lr=LEARNING_RATE)
    bce = nn.functional.binary_cross_entropy_with_logits
    for _ in range(steps):
        both = torch.cat([sample(labelled), sample(unlabelled)])
        is_labelled = torch.cat([torch.ones(min(BATCH, len(labelled))), torch.zeros(min(BATCH, len(unlabelled)))])
        mean, log_var = vae.encode(both)
        code = mean + torch.randn_like(mean) * (0.5 * log_var).exp()
        reconstruction = nn.functional.mse_loss(vae.decode(code), both)
        divergence = -0.5 * torch.mean(1 + log_var - mean**2 - log_var.exp())
        fool = bce(discriminator(mean).squeeze(1), torch.ones_like(is_labelled))
        vae_optimiser.zero_grad()
        (reconstruction + divergence + fool).backward()
        vae_optimiser.step()
        discriminator_optimiser.zero_grad()
        bce(discriminator(mean.detach()).squeeze(1), is_labelled).backward()
        discriminator_optimiser.step()
    vae.eval()
    return vae, discriminator


def sample(crops: Tensor) -> Tensor:
    """At most :data:`BATCH` crops drawn without replacement (global torch generator)."""
    return crops[torch.randperm(len(crops))[:BATCH]]
