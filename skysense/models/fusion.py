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
    """Learned ``days x width`` table indexed by day of year (1..366; 366 shares day 365).

    Args:
        days: rows (``calendar_days``).
        width: encoding width.
        init: ``"normal"`` (truncated normal, std 0.02) or ``"annual"``: row ``d`` holds
            ``sin`` and ``cos`` of ``2 pi k d / days`` for harmonics ``k`` from 1 (the year) to
            about 12 (a month), geometrically spaced and rounded to whole harmonics, each pair
            with its own random phase, the row scaled to unit mean square: nearby days start
            close, and 31 December is next to 1 January.
        smoothing_days: read the table through a circular Gaussian of this standard deviation
            (days; 0: plain lookup). Training then moves every row near a date it sees, which
            is what lets a model trained on some acquisition days encode others.
    """

    def __init__(
        self, days: int, width: int, init: str = "normal", smoothing_days: float = 0.0
    ) -> None:
        super().__init__()
        self.days = days
        self.weight = nn.Parameter(torch.zeros(days, width))
        if init == "annual":
            with torch.no_grad():
                self.weight.copy_(annual_table(days, width))
        else:
            nn.init.trunc_normal_(self.weight, std=0.02)
        self.smoothing: Tensor | None
        self.register_buffer(
            "smoothing",
            circular_gaussian(days, smoothing_days) if smoothing_days > 0 else None,
            persistent=False,
        )

    def table(self) -> Tensor:
        """The ``days x width`` encodings as read (smoothed when ``smoothing_days`` > 0)."""
        return self.weight if self.smoothing is None else self.smoothing @ self.weight

    def forward(self, doy: Tensor) -> Tensor:
        """Day of year (any shape, int) -> encodings (same shape + width)."""
        index = (doy.long() - 1).clamp(0, self.days - 1)
        return self.table()[index]


def annual_table(days: int, width: int) -> Tensor:
    """``days x width`` sines and cosines of the annual cycle's whole harmonics (1 to about
    ``days / 30``, geometric), random phases from a fixed generator, unit mean square per row.
    """
    pairs = max(1, width // 2)
    top = max(1.0, days / 30.0)
    # whole harmonics, so that the table wraps from 31 December to 1 January
    harmonics = torch.logspace(0.0, float(torch.log10(torch.tensor(top))), pairs).round()
    phase = torch.rand(pairs, generator=torch.Generator().manual_seed(0)) * 2 * torch.pi
    angle = 2 * torch.pi * torch.arange(days, dtype=torch.float64)[:, None] / days
    arg = angle * harmonics[None, :].double() + phase[None, :].double()
    table = torch.cat([torch.sin(arg), torch.cos(arg)], dim=1)[:, :width]
    if table.shape[1] < width:  # an odd width: one zero column
        table = torch.cat([table, table.new_zeros(days, width - table.shape[1])], dim=1)
    return (table * 2**0.5).float()  # each sin/cos pair has mean square 1/2


def circular_gaussian(days: int, sigma: float) -> Tensor:
    """``days x days`` row-stochastic matrix: a Gaussian of ``sigma`` days on the circular year."""
    d = torch.arange(days, dtype=torch.float64)
    gap = (d[:, None] - d[None, :]).abs()
    gap = torch.minimum(gap, days - gap)
    w = torch.exp(-0.5 * (gap / sigma) ** 2)
    return (w / w.sum(dim=1, keepdim=True)).float()


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
