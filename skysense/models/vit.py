"""Sentinel branch: a pre-norm ViT with a cls token and a learned absolute position embedding
(no final norm), applied to every date of a time series (space first, then time).

Names follow the mmseg ``VisionTransformer`` of the SkySense release (``patch_embed.projection``,
``cls_token``, ``pos_embed``, ``layers.i``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from skysense.models.swin_v2 import PatchEmbed
from skysense.models.transformer import TransformerLayer, drop_path_rates


def resize_pos_embed(pos_embed: Tensor, new_grid: tuple[int, int]) -> Tensor:
    """Bicubic resize of a ``1 x (1 + g*g) x D`` position embedding (cls first) to a new grid."""
    cls_pos, grid_pos = pos_embed[:, :1], pos_embed[:, 1:]
    old = int(round(math.sqrt(grid_pos.shape[1])))
    if (old, old) == tuple(new_grid):
        return pos_embed
    dim = grid_pos.shape[-1]
    grid = grid_pos.reshape(1, old, old, dim).permute(0, 3, 1, 2)
    grid = F.interpolate(grid.float(), size=new_grid, mode="bicubic", align_corners=False).to(
        pos_embed.dtype
    )
    return torch.cat([cls_pos, grid.flatten(2).transpose(1, 2)], dim=1)


class SentinelViT(nn.Module):
    """ViT over one Sentinel date: ``N x C x s x s`` -> ``N x D x s/p x s/p`` (cls dropped)."""

    def __init__(
        self,
        in_chans: int,
        dim: int,
        depth: int,
        heads: int,
        mlp_ratio: float,
        img_px: int,
        patch: int = 4,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        self.patch = patch
        self.grid = img_px // patch
        self.patch_embed = PatchEmbed(in_chans, dim, patch, norm=False)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + self.grid * self.grid, dim))
        rates = drop_path_rates(drop_path, depth)
        self.layers = nn.ModuleList(
            TransformerLayer(dim, heads, int(dim * mlp_ratio), drop_path=rates[i], eps=1e-6)
            for i in range(depth)
        )
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)

    def forward(self, x: Tensor) -> Tensor:
        """Images ``N x C x s x s`` (s divisible by the patch) -> ``N x D x s/p x s/p``."""
        tokens, hw = self.patch_embed(x)
        pos = resize_pos_embed(self.pos_embed, hw)
        cls = self.cls_token.expand(tokens.shape[0], -1, -1)
        tokens = torch.cat([cls, tokens], dim=1) + pos
        for layer in self.layers:
            tokens = layer(tokens)
        grid = tokens[:, 1:]
        return grid.transpose(1, 2).reshape(grid.shape[0], -1, *hw)
