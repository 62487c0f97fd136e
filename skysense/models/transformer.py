"""Pre-norm transformer layer shared by the Sentinel ViTs and the fusion transformer.

Parameter names follow the mmseg/mmcv layout of the SkySense release (``ln1``, ``attn.attn.
in_proj_weight``, ``attn.attn.out_proj``, ``ln2``, ``ffn.layers.0.0``, ``ffn.layers.1``) so its
checkpoints map key for key.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint


def drop_path_rates(max_rate: float, n: int) -> list[float]:
    """Stochastic depth rates rising linearly from 0 to ``max_rate`` over ``n`` blocks."""
    if n <= 1:
        return [0.0] * n
    return [max_rate * i / (n - 1) for i in range(n)]


class DropPath(nn.Module):
    """Stochastic depth: drop the whole residual branch of a sample with probability ``p``."""

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        """``x`` with whole samples zeroed (rescaled by ``1/(1-p)``) while training."""
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep


class PackedAttention(nn.Module):
    """Multi-head self-attention with packed ``in_proj`` weights (the ``nn.MultiheadAttention``
    layout), computed with ``scaled_dot_product_attention``.
    """

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * dim))
        self.out_proj = nn.Linear(dim, dim)
        nn.init.trunc_normal_(self.in_proj_weight, std=0.02)
        nn.init.trunc_normal_(self.out_proj.weight, std=0.02)
        nn.init.zeros_(self.out_proj.bias)

    def forward(
        self, x: Tensor, key_padding_mask: Tensor | None = None, first_only: bool = False
    ) -> Tensor:
        """Attend over tokens ``x`` (N x L x D); ``key_padding_mask`` (N x L) is True where a
        token must be ignored. ``first_only``: only token 0 queries (output N x 1 x D).
        """
        n, length, dim = x.shape
        mask = None
        if key_padding_mask is not None:
            mask = (~key_padding_mask)[:, None, None, :]
        if first_only:
            q = F.linear(x[:, :1], self.in_proj_weight[:dim], self.in_proj_bias[:dim])
            kv = F.linear(x, self.in_proj_weight[dim:], self.in_proj_bias[dim:])
            q = q.view(n, 1, self.heads, dim // self.heads).transpose(1, 2)
            k, v = (
                kv.view(n, length, 2, self.heads, dim // self.heads)
                .permute(2, 0, 3, 1, 4)
                .unbind(0)
            )
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
            return self.out_proj(out.transpose(1, 2).reshape(n, 1, dim))
        qkv = F.linear(x, self.in_proj_weight, self.in_proj_bias)
        qkv = qkv.view(n, length, 3, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.out_proj(out.transpose(1, 2).reshape(n, length, dim))


class _AttnWrapper(nn.Module):
    """Holds the attention as ``.attn`` (mmcv ``MultiheadAttention`` wraps it the same way)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.attn = PackedAttention(dim, heads)

    def forward(
        self, x: Tensor, key_padding_mask: Tensor | None = None, first_only: bool = False
    ) -> Tensor:
        return self.attn(x, key_padding_mask, first_only)


class FeedForward(nn.Module):
    """Two linear layers with GELU (mmcv ``FFN`` layout: ``layers.0.0`` and ``layers.1``)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Sequential(nn.Linear(dim, hidden), nn.GELU()), nn.Linear(hidden, dim)
        )
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        """``... x dim`` -> ``... x dim``."""
        return self.layers(x)


class TransformerLayer(nn.Module):
    """Pre-norm transformer encoder layer: ``x + attn(ln1(x))`` then ``x + ffn(ln2(x))``."""

    def __init__(
        self, dim: int, heads: int, hidden: int, drop_path: float = 0.0, eps: float = 1e-6
    ) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(dim, eps=eps)
        self.attn = _AttnWrapper(dim, heads)
        self.ln2 = nn.LayerNorm(dim, eps=eps)
        self.ffn = FeedForward(dim, hidden)
        self.drop_path = DropPath(drop_path)
        self.grad_checkpointing = False

    def _inner(
        self, x: Tensor, key_padding_mask: Tensor | None, first_only: bool = False
    ) -> Tensor:
        if first_only:
            x = x[:, :1] + self.drop_path(self.attn(self.ln1(x), key_padding_mask, first_only=True))
        else:
            x = x + self.drop_path(self.attn(self.ln1(x), key_padding_mask))
        return x + self.drop_path(self.ffn(self.ln2(x)))

    def forward(
        self, x: Tensor, key_padding_mask: Tensor | None = None, first_only: bool = False
    ) -> Tensor:
        """Tokens N x L x D in and out; ``first_only``: only token 0 is updated and returned
        (N x 1 x D), the others serve as keys and values (a last layer read out at its cls).
        """
        if self.grad_checkpointing and torch.is_grad_enabled() and x.requires_grad:
            return checkpoint(self._inner, x, key_padding_mask, first_only, use_reentrant=False)
        return self._inner(x, key_padding_mask, first_only)
