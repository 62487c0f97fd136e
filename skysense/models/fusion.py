"""Multi-modal fusion: Sentinel heads onto the Sentinel pixel grid, the date-specific positional
encoding, and the per-pixel fusion transformer whose cls output is the fused feature.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from skysense.models.transformer import TransformerLayer, drop_path_rates


class UpHead(nn.Module):
    """Lift a ViT map to the Sentinel pixel grid: 1x1 conv to ``scale^2 * width``, PixelShuffle.

    ``N x D x s/4 x s/4`` -> ``N x width x s x s`` (``decoder.0`` is the conv, as released).
    """

    def __init__(self, in_dim: int, width: int, scale: int = 4) -> None:
        super().__init__()
        conv = nn.Conv2d(in_dim, scale * scale * width, kernel_size=1)
        self.decoder = nn.Sequential(conv, nn.PixelShuffle(scale))
        nn.init.kaiming_normal_(conv.weight, mode="fan_in", nonlinearity="linear")
        if conv.bias is not None:  # Conv2d's default bias=True
            nn.init.zeros_(conv.bias)

    def forward(self, x: Tensor) -> Tensor:
        """``N x D x s/4 x s/4`` -> ``N x width x s x s``."""
        return self.decoder(x)


class DateEncoding(nn.Module):
    """Learned ``days x width`` table indexed by day of year (1..366; 366 shares day 365)."""

    def __init__(self, days: int, width: int) -> None:
        super().__init__()
        self.days = days
        self.weight = nn.Parameter(torch.zeros(days, width))
        nn.init.trunc_normal_(self.weight, std=0.02)

    def forward(self, doy: Tensor) -> Tensor:
        """Day of year (any shape, int) -> encodings (same shape + width)."""
        index = (doy.long() - 1).clamp(0, self.days - 1)
        return self.weight[index]


class FusionTransformer(nn.Module):
    """Per-pixel transformer over ``[cls, HR, S2 dates, S1 dates, DEM]`` tokens.

    Tokens (width = HR stage-4 width) are projected (``porj_linear`` in the release, here
    ``input_proj``) to ``dim``, a cls token is prepended, and the cls output is returned.
    """

    def __init__(
        self, in_dim: int, dim: int, depth: int, heads: int, ffn: int, drop_path: float = 0.0
    ) -> None:
        super().__init__()
        self.input_proj = nn.Linear(in_dim, dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        rates = drop_path_rates(drop_path, depth)
        self.layers = nn.ModuleList(
            TransformerLayer(dim, heads, ffn, drop_path=rates[i], eps=1e-5) for i in range(depth)
        )
        nn.init.trunc_normal_(self.input_proj.weight, std=0.02)
        nn.init.zeros_(self.input_proj.bias)
        nn.init.trunc_normal_(self.cls_token, std=0.02)

    def forward(self, tokens: Tensor, padding: Tensor) -> Tensor:
        """``tokens`` N x L x in_dim, ``padding`` N x L (True = absent) -> cls output N x dim."""
        x = self.input_proj(tokens)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        mask = torch.cat([padding.new_zeros(padding.shape[0], 1), padding], dim=1)
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            # only the cls output is read: the last layer updates the cls token alone
            x = layer(x, mask, first_only=i == last)
        return x[:, 0]


class DemEncoder(nn.Module):
    """Small conv encoder lifting elevation (``N x 1 x s x s``, normalised) to the fusion width.

    Not in the paper: the users' data carries a DEM, which joins the fusion as one more token.
    """

    def __init__(self, hidden: int, width: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, hidden, kernel_size=3, padding=1),
            nn.GELU(),
            nn.Conv2d(hidden, width, kernel_size=1),
        )

    def forward(self, dem: Tensor) -> Tensor:
        """``N x 1 x s x s`` elevation -> ``N x width x s x s``."""
        return self.net(dem)
