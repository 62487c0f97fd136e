"""Geo-context prototypes: per region of the globe a bank of prototypes of the fused feature,
assigned by Sinkhorn-Knopp and updated by EMA (no gradient), read out by attention.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from skysense.core.errors import InputShapeError
from skysense.models.sinkhorn import sinkhorn_knopp


class GeoContextPrototypes(nn.Module):
    """Bank ``n_regions x n_prototypes x dim`` held as a buffer (saved, never trained).

    Args:
        n_regions: regions of the globe (``skysense.data.regions.region_id`` grid).
        n_prototypes: prototypes per region.
        dim: width of the fused feature.
        temperature: softmax temperature of the read-out over cosine similarities.
        momentum: EMA momentum of the prototype update.
        sinkhorn_epsilon: entropic regularisation of the assignment.
        sinkhorn_iters: Sinkhorn-Knopp rounds.
    """

    prototypes: Tensor  # the buffer registered in __init__

    def __init__(
        self,
        n_regions: int,
        n_prototypes: int,
        dim: int,
        temperature: float = 0.1,
        momentum: float = 0.99,
        sinkhorn_epsilon: float = 0.05,
        sinkhorn_iters: int = 3,
    ) -> None:
        super().__init__()
        self.n_regions = n_regions
        self.n_prototypes = n_prototypes
        self.temperature = temperature
        self.momentum = momentum
        self.sinkhorn_epsilon = sinkhorn_epsilon
        self.sinkhorn_iters = sinkhorn_iters
        self.register_buffer(
            "prototypes", F.normalize(torch.randn(n_regions, n_prototypes, dim), dim=-1)
        )

    def check_regions(self, region: Tensor) -> None:
        """Raise :class:`InputShapeError` for region ids outside ``[0, n_regions)``."""
        if region.numel() and (int(region.min()) < 0 or int(region.max()) >= self.n_regions):
            raise InputShapeError(
                f"batch['region'] holds ids in [{int(region.min())}, {int(region.max())}] but the "
                "preset "
                f"has {self.n_regions} regions; compute it with "
                f"skysense.data.regions.region_id(lat, lon, {self.n_regions})"
            )

    def forward(self, fused: Tensor, region: Tensor, update: bool = False) -> Tensor:
        """Read the region's prototypes out by attention.

        Args:
            fused: fused features ``B x D x s x s``.
            region: region id per sample ``B`` (int64).
            update: also move the region's prototypes towards the features (EMA, no grad).

        Returns:
            Read-out ``B x D x s x s`` (gradients reach ``fused``, never the prototypes).
        """
        b, d, h, w = fused.shape
        feats = F.normalize(fused.flatten(2).transpose(1, 2), dim=-1)  # B x hw x D
        bank = self.prototypes[region].detach().to(fused.dtype)  # B x K x D
        attn = torch.softmax(
            feats @ F.normalize(bank, dim=-1).transpose(1, 2) / self.temperature, dim=-1
        )
        out = (attn @ bank).transpose(1, 2).reshape(b, d, h, w)
        if update:
            self.update(feats.detach(), region)
        return out

    @torch.no_grad()
    def update(self, feats: Tensor, region: Tensor) -> None:
        """EMA update of the prototypes of the regions in the batch.

        ``feats``: L2-normalised features ``B x P x D``; ``region``: ``B``. Pixels of one region
        are assigned to its prototypes by Sinkhorn-Knopp; each prototype moves towards the mean
        of its assigned features. Under ``torch.distributed`` every rank applies every rank's
        updates, so the banks stay identical.
        """
        b, _, d = feats.shape
        sums = feats.new_zeros(b, self.n_prototypes, d)
        mass = feats.new_zeros(b, self.n_prototypes)
        ids = torch.full((b,), -1, dtype=torch.long, device=feats.device)
        for slot, r in enumerate(torch.unique(region).tolist()):
            x = feats[region == r].reshape(-1, d).float()
            bank = F.normalize(self.prototypes[r].float(), dim=-1)
            q = sinkhorn_knopp(x @ bank.t(), self.sinkhorn_epsilon, self.sinkhorn_iters)  # P x K
            sums[slot] = (q.t() @ x).to(sums.dtype)
            mass[slot] = q.sum(0).to(mass.dtype)
            ids[slot] = r
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            world = dist.get_world_size()
            all_sums = [torch.empty_like(sums) for _ in range(world)]
            all_mass = [torch.empty_like(mass) for _ in range(world)]
            all_ids = [torch.empty_like(ids) for _ in range(world)]
            dist.all_gather(all_sums, sums)
            dist.all_gather(all_mass, mass)
            dist.all_gather(all_ids, ids)
            sums, mass, ids = torch.cat(all_sums), torch.cat(all_mass), torch.cat(all_ids)
        for slot in range(ids.shape[0]):
            r = int(ids[slot])
            if r < 0:
                continue
            has = mass[slot] > 0
            centre = F.normalize(sums[slot] / mass[slot].clamp_min(1e-12)[:, None], dim=-1)
            old = self.prototypes[r]
            new = F.normalize(
                self.momentum * old + (1 - self.momentum) * centre.to(old.dtype), dim=-1
            )
            self.prototypes[r] = torch.where(has[:, None], new, old)
