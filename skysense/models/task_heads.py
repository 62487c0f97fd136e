"""Task heads on the SkySense encoder: a UperNet-style segmentation head and a pooled classifier.

The segmentation head follows UperNet (Xiao et al., ECCV 2018), the head the official SkySense
release fine-tunes for semantic segmentation: a pyramid pooling module (PPM, pools of 1, 2, 3
and 6 cells) on the coarsest map, a feature pyramid network (FPN) with lateral 1x1 and output
3x3 convolutions over the finer maps, and a 3x3 fusion of every level brought to the finest
resolution. Its inputs here are the HR Swin stages 1-3 (8s, 4s, 2s pixels for an ``s`` px
Sentinel chip) and, at the Sentinel grid ``s``, the HR stage 4 concatenated with the fused
S2/S1 embedding. Without HR only the fused map feeds it (a PPM + 3x3 head). Logits are averaged
from the finest level onto the Sentinel grid, where the labels live.

GroupNorm, not BatchNorm: data-parallel ranks see different micro-batches, and running
statistics that differ per rank would make the saved module depend on which rank saved it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

PPM_SCALES = (1, 2, 3, 6)


def _groups(channels: int) -> int:
    for g in (32, 16, 8, 4, 2):
        if channels % g == 0:
            return g
    return 1


class ConvNormAct(nn.Sequential):
    """Conv2d, GroupNorm, GELU."""

    def __init__(self, cin: int, cout: int, kernel: int = 1) -> None:
        super().__init__(
            nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=False),
            nn.GroupNorm(_groups(cout), cout),
            nn.GELU(),
        )


class PyramidPooling(nn.Module):
    """PPM: adaptive average pools of ``scales`` cells, 1x1 projections, upsampled and
    concatenated with the input, then a 3x3 bottleneck to ``channels``.
    """

    def __init__(self, cin: int, channels: int, scales: Sequence[int] = PPM_SCALES) -> None:
        super().__init__()
        self.scales = tuple(scales)
        self.branches = nn.ModuleList(ConvNormAct(cin, channels) for _ in self.scales)
        self.bottleneck = ConvNormAct(cin + channels * len(self.scales), channels, 3)

    def forward(self, x: Tensor) -> Tensor:
        """``B x cin x h x w`` -> ``B x channels x h x w``."""
        size = x.shape[-2:]
        outs = [x]
        for scale, branch in zip(self.scales, self.branches):
            pooled = branch(F.adaptive_avg_pool2d(x, scale))
            outs.append(F.interpolate(pooled, size=size, mode="bilinear", align_corners=False))
        return self.bottleneck(torch.cat(outs, dim=1))


class UperNetHead(nn.Module):
    """UperNet head: PPM on the coarsest map, FPN over the finer ones, fused at the finest.

    Args:
        fine_channels: channels of the finer maps, finest first (HR stages 1-3); may be empty.
        top_channels: channels of the coarsest map (HR stage 4 + fused embedding, or fused only).
        n_classes: output classes.
        channels: the head's width.
        dropout: dropout before the classifier.
    """

    def __init__(
        self,
        fine_channels: Sequence[int],
        top_channels: int,
        n_classes: int,
        channels: int = 64,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.ppm = PyramidPooling(top_channels, channels)
        self.lateral = nn.ModuleList(ConvNormAct(c, channels) for c in fine_channels)
        self.fpn_out = nn.ModuleList(ConvNormAct(channels, channels, 3) for _ in fine_channels)
        self.fuse = ConvNormAct(channels * (len(fine_channels) + 1), channels, 3)
        self.dropout = nn.Dropout2d(dropout)
        self.classifier = nn.Conv2d(channels, n_classes, 1)

    def forward(self, fine: Sequence[Tensor], top: Tensor, out_size: int) -> Tensor:
        """Logits ``B x n_classes x out_size x out_size``.

        Args:
            fine: the finer maps, finest first (as ``fine_channels``).
            top: the coarsest map.
            out_size: side of the label grid (the Sentinel chip, pixels).
        """
        if len(fine) != len(self.lateral):
            raise ValueError(f"UperNetHead expects {len(self.lateral)} fine maps, got {len(fine)}")
        levels = [lat(f) for lat, f in zip(self.lateral, fine)] + [self.ppm(top)]
        for i in range(len(levels) - 2, -1, -1):  # top-down pathway
            levels[i] = levels[i] + F.interpolate(
                levels[i + 1], size=levels[i].shape[-2:], mode="bilinear", align_corners=False
            )
        outs = [conv(lv) for conv, lv in zip(self.fpn_out, levels[:-1])] + [levels[-1]]
        size = outs[0].shape[-2:]
        outs = [
            o if o.shape[-2:] == size else F.interpolate(o, size=size, mode="bilinear")
            for o in outs
        ]
        logits = self.classifier(self.dropout(self.fuse(torch.cat(outs, dim=1))))
        if logits.shape[-1] != out_size:
            logits = F.adaptive_avg_pool2d(logits, out_size)
        return logits


class PooledClassificationHead(nn.Module):
    """Scene classifier: mean (and standard deviation) over pixels, then an MLP (or linear).

    Args:
        in_channels: channels of the per-pixel feature map.
        n_classes: output classes (or labels, for multi-label scenes).
        hidden: MLP width; 0 for a single linear layer.
        dropout: dropout before the last layer.
    """

    def __init__(self, in_channels: int, n_classes: int, hidden: int = 128, dropout: float = 0.1):
        super().__init__()
        d = 2 * in_channels  # mean and std over pixels
        layers: list[nn.Module] = [nn.LayerNorm(d)]
        if hidden > 0:
            layers += [
                nn.Linear(d, hidden),
                nn.GELU(),
                nn.Dropout(dropout),
                nn.Linear(hidden, n_classes),
            ]
        else:
            layers += [nn.Dropout(dropout), nn.Linear(d, n_classes)]
        self.mlp = nn.Sequential(*layers)

    def forward(self, features: Tensor) -> Tensor:
        """``B x C x h x w`` -> logits ``B x n_classes``."""
        pooled = torch.cat([features.mean(dim=(2, 3)), features.std(dim=(2, 3), unbiased=False)], 1)
        return self.mlp(pooled)
