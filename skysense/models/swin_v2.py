"""HR branch: Swin Transformer V2 (post-norm blocks, scaled cosine attention, log-spaced
continuous relative position bias), as in the SkySense release (mmcls layout of names).

Input ``B x C x H x W`` HR pixels (H, W divisible by 32); output one feature map per stage,
``B x (C_i) x H/(4*2^i) x W/(4*2^i)``; the last one lies on the Sentinel grid (32x coarser).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from skysense.models.transformer import DropPath, FeedForward, drop_path_rates


def _log_spaced_coords(window: int) -> Tensor:
    """Relative coordinates of a window, scaled to [-8, 8] and log-spaced: (2w-1)^2 x 2."""
    span = torch.arange(-(window - 1), window, dtype=torch.float32, device="cpu")
    table = torch.stack(torch.meshgrid(span, span, indexing="ij"), dim=-1)  # 2w-1, 2w-1, 2
    table = table / max(window - 1, 1) * 8.0
    table = torch.sign(table) * torch.log2(table.abs() + 1.0) / math.log2(8.0)
    return table.reshape(-1, 2)


def _relative_index(window: int) -> Tensor:
    """Index into the (2w-1)^2 bias table for every pair of tokens of a window: w^2 x w^2."""
    coords = torch.stack(
        torch.meshgrid(
            torch.arange(window, device="cpu"), torch.arange(window, device="cpu"), indexing="ij"
        )
    ).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window - 1)
    return rel[..., 0] * (2 * window - 1) + rel[..., 1]


class WindowAttentionV2(nn.Module):
    """Scaled cosine window attention with a learnable per-head logit scale and a continuous
    relative position bias from a small MLP (``cpb_mlp``).
    """

    relative_coords_table: Tensor  # buffers registered in set_window
    relative_position_index: Tensor

    def __init__(self, dim: int, heads: int, window: int, cpb_hidden: int = 512) -> None:
        super().__init__()
        self.heads = heads
        self.window = window
        self.logit_scale = nn.Parameter(torch.log(10 * torch.ones(heads, 1, 1)))
        self.cpb_mlp = nn.Sequential(
            nn.Linear(2, cpb_hidden),
            nn.ReLU(inplace=True),
            nn.Linear(cpb_hidden, heads, bias=False),
        )
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.q_bias = nn.Parameter(torch.zeros(dim))
        self.v_bias = nn.Parameter(torch.zeros(dim))
        self.proj = nn.Linear(dim, dim)
        self.set_window(window)

    def set_window(self, window: int) -> None:
        """(Re)build the coordinate buffers for a window side (not saved: always rebuilt)."""
        self.window = window
        device = self.q_bias.device
        if device.type == "meta":
            device = torch.device("cpu")
        self.register_buffer(
            "relative_coords_table", _log_spaced_coords(window).to(device), persistent=False
        )
        self.register_buffer(
            "relative_position_index", _relative_index(window).to(device), persistent=False
        )
        self._bias_cache: dict[str, tuple] = {}

    def position_bias(self, dtype: torch.dtype) -> Tensor:
        """``16 * sigmoid(cpb_mlp(coords))`` gathered for every token pair: heads x w^2 x w^2.

        Computed once per call (once per block and forward); without autograd (teacher,
        evaluation) it is cached until the MLP's weights change (in-place EMA updates and
        ``load_state_dict`` bump their version, ``.to()`` replaces their storage).
        """
        params = tuple(self.cpb_mlp.parameters())
        track = torch.is_grad_enabled() and any(p.requires_grad for p in params)
        # no cache while a graph is traced (torch.export / ONNX): traced tensors have no storage
        track = track or torch.compiler.is_compiling() or torch.compiler.is_exporting()
        key = None
        if not track:
            key = (
                self.window,
                dtype,
                self.relative_coords_table.device,
                torch.is_inference_mode_enabled(),
                tuple((p.data_ptr(), p._version) for p in params),
            )
            cached = self._bias_cache.get("bias")
            if cached is not None and cached[0] == key:
                return cached[1]
        n = self.window * self.window
        table = self.cpb_mlp(self.relative_coords_table.to(dtype))  # (2w-1)^2 x heads
        rpb = (
            table[self.relative_position_index.reshape(-1)].view(n, n, self.heads).permute(2, 0, 1)
        )
        bias = 16 * torch.sigmoid(rpb)
        if key is not None:
            self._bias_cache["bias"] = (key, bias)
        return bias

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """``x``: windows x w^2 x D (image-major: all windows of image 0 first); ``mask``:
        n_windows x w^2 x w^2 additive (0 / -100), the same for every image.

        The bias is broadcast, never expanded per window: without a mask it is
        ``1 x heads x n x n``; with one, windows and heads share a dimension
        (``B x n_windows*heads x n x n`` against ``1 x n_windows*heads x n x n``), which lets
        ``scaled_dot_product_attention`` use its fused kernel when no gradient reaches the bias
        (its math fallback would add masking passes; the explicit softmax is used then).
        """
        nw_b, n, dim = x.shape
        hd = dim // self.heads
        bias = torch.cat([self.q_bias, torch.zeros_like(self.v_bias), self.v_bias])
        qkv = F.linear(x, self.qkv.weight, bias)
        scale = torch.clamp(self.logit_scale, max=math.log(100.0)).exp()  # heads x 1 x 1
        rpb = self.position_bias(x.dtype)  # heads x n x n
        if mask is None:
            q, k, v = qkv.view(nw_b, n, 3, self.heads, hd).permute(2, 0, 3, 1, 4).unbind(0)
            attn_bias = rpb.unsqueeze(0)
        else:
            n_windows = mask.shape[0]
            b = nw_b // n_windows
            qkv = qkv.view(b, n_windows, n, 3, self.heads, hd).permute(3, 0, 1, 4, 2, 5)
            q, k, v = qkv.reshape(3, b, n_windows * self.heads, n, hd).unbind(0)
            scale = (
                scale.view(1, 1, self.heads, 1, 1)
                .expand(1, n_windows, -1, -1, -1)
                .reshape(1, -1, 1, 1)
            )
            attn_bias = (rpb.unsqueeze(0) + mask.to(x.dtype).unsqueeze(1)).reshape(
                1, n_windows * self.heads, n, n
            )
        q = F.normalize(q, dim=-1) * scale
        k = F.normalize(k, dim=-1)
        if attn_bias.requires_grad:  # the fused kernel gives no gradient to the bias
            out = torch.softmax(q @ k.transpose(-2, -1) + attn_bias, dim=-1) @ v
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_bias, scale=1.0)
        out = out.reshape(nw_b, self.heads, n, hd).transpose(1, 2).reshape(nw_b, n, dim)
        return self.proj(out)


class ShiftWindowAttention(nn.Module):
    """Window partition (with cyclic shift on odd blocks) around :class:`WindowAttentionV2`."""

    def __init__(self, dim: int, heads: int, window: int, shift: bool, cpb_hidden: int) -> None:
        super().__init__()
        self.window = window
        self.shift = shift
        self.w_msa = WindowAttentionV2(dim, heads, window, cpb_hidden)

    def forward(self, x: Tensor, hw: tuple[int, int]) -> Tensor:
        """(Shifted) window attention over ``B x h*w x C`` tokens on the grid ``hw``."""
        b, length, c = x.shape
        h, w = hw
        window = min(self.window, h, w)
        if window != self.w_msa.window:
            self.w_msa.set_window(window)
        shift = window // 2 if (self.shift and min(h, w) > window) else 0
        x = x.view(b, h, w, c)
        pad_h, pad_w = (-h) % window, (-w) % window
        if pad_h or pad_w:
            x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))
        hp, wp = h + pad_h, w + pad_w
        mask = None
        if shift:
            x = torch.roll(x, shifts=(-shift, -shift), dims=(1, 2))
            mask = self._shift_mask(hp, wp, window, shift, x.device)
        windows = x.view(b, hp // window, window, wp // window, window, c).permute(0, 1, 3, 2, 4, 5)
        windows = windows.reshape(-1, window * window, c)
        out = self.w_msa(windows, mask)
        out = out.view(b, hp // window, wp // window, window, window, c).permute(0, 1, 3, 2, 4, 5)
        out = out.reshape(b, hp, wp, c)
        if shift:
            out = torch.roll(out, shifts=(shift, shift), dims=(1, 2))
        return out[:, :h, :w, :].reshape(b, length, c)

    @staticmethod
    def _shift_mask(hp: int, wp: int, window: int, shift: int, device: torch.device) -> Tensor:
        """Additive mask (0 / -100) keeping shifted windows from mixing regions that are not
        neighbours: n_windows x w^2 x w^2, cached per (hp, wp, window, shift, device).
        """
        key = (hp, wp, window, shift, str(device))
        mask = _SHIFT_MASKS.get(key)
        if mask is None:
            with torch.inference_mode(False):  # a normal tensor, usable under autograd later
                mask = _build_shift_mask(hp, wp, window, shift, device)
            if not (torch.compiler.is_compiling() or torch.compiler.is_exporting()):
                _SHIFT_MASKS[key] = mask  # never cache a traced (storage-less) tensor
        return mask


_SHIFT_MASKS: dict[tuple, Tensor] = {}


def _build_shift_mask(hp: int, wp: int, window: int, shift: int, device: torch.device) -> Tensor:
    img = torch.zeros(1, hp, wp, 1, device=device)
    cnt = 0
    for hs in (slice(0, -window), slice(-window, -shift), slice(-shift, None)):
        for ws in (slice(0, -window), slice(-window, -shift), slice(-shift, None)):
            img[:, hs, ws, :] = cnt
            cnt += 1
    win = img.view(1, hp // window, window, wp // window, window, 1).permute(0, 1, 3, 2, 4, 5)
    win = win.reshape(-1, window * window)
    diff = win[:, None, :] - win[:, :, None]
    return torch.where(
        diff != 0, torch.tensor(-100.0, device=device), torch.tensor(0.0, device=device)
    )


class SwinBlockV2(nn.Module):
    """Res-post-norm block: ``x + norm1(attn(x))`` then ``x + norm2(ffn(x))`` (+ ``norm3``)."""

    def __init__(
        self,
        dim: int,
        heads: int,
        window: int,
        shift: bool,
        extra_norm: bool,
        cpb_hidden: int,
        drop_path: float,
    ) -> None:
        super().__init__()
        self.attn = ShiftWindowAttention(dim, heads, window, shift, cpb_hidden)
        self.norm1 = nn.LayerNorm(dim)
        self.ffn = FeedForward(dim, 4 * dim)
        self.norm2 = nn.LayerNorm(dim)
        self.norm3 = nn.LayerNorm(dim) if extra_norm else None
        self.drop_path = DropPath(drop_path)
        self.grad_checkpointing = False

    def _inner(self, x: Tensor, hw: tuple[int, int]) -> Tensor:
        x = x + self.drop_path(self.norm1(self.attn(x, hw)))
        x = x + self.drop_path(self.norm2(self.ffn(x)))
        if self.norm3 is not None:
            x = self.norm3(x)
        return x

    def forward(self, x: Tensor, hw: tuple[int, int]) -> Tensor:
        """One block over ``B x h*w x C`` tokens (activation-checkpointed when enabled)."""
        if self.grad_checkpointing and torch.is_grad_enabled() and x.requires_grad:
            return checkpoint(self._inner, x, hw, use_reentrant=False)
        return self._inner(x, hw)


class PatchMerging(nn.Module):
    """2x2 neighbourhood merge (``nn.Unfold`` channel order), linear 4C -> 2C, post-norm."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)
        self.norm = nn.LayerNorm(2 * dim)

    def forward(self, x: Tensor, hw: tuple[int, int]) -> tuple[Tensor, tuple[int, int]]:
        """``B x h*w x C`` -> ``B x ceil(h/2)*ceil(w/2) x 2C`` and the new grid."""
        b, _, c = x.shape
        h, w = hw
        grid = x.view(b, h, w, c)
        if h % 2 or w % 2:
            grid = F.pad(grid, (0, 0, 0, w % 2, 0, h % 2))
        out_hw = ((h + 1) // 2, (w + 1) // 2)
        # channel order of nn.Unfold(2, stride=2): c * 4 + dy * 2 + dx
        merged = grid.view(b, out_hw[0], 2, out_hw[1], 2, c).permute(0, 1, 3, 5, 2, 4)
        merged = merged.reshape(b, out_hw[0] * out_hw[1], 4 * c)
        return self.norm(self.reduction(merged)), out_hw


class SwinStage(nn.Module):
    """Optional patch merging (stages 2-4), then the blocks."""

    def __init__(
        self,
        in_dim: int,
        depth: int,
        heads: int,
        window: int,
        downsample: bool,
        extra_norm_every: int,
        cpb_hidden: int,
        drop_paths: list[float],
    ) -> None:
        super().__init__()
        self.downsample = PatchMerging(in_dim) if downsample else None
        self.out_channels = 2 * in_dim if downsample else in_dim
        self.blocks = nn.ModuleList(
            SwinBlockV2(
                self.out_channels,
                heads,
                window,
                shift=bool(i % 2),
                extra_norm=bool(extra_norm_every) and (i + 1) % extra_norm_every == 0,
                cpb_hidden=cpb_hidden,
                drop_path=drop_paths[i],
            )
            for i in range(depth)
        )

    def forward(self, x: Tensor, hw: tuple[int, int]) -> tuple[Tensor, tuple[int, int]]:
        """Merge (when downsampling), then the blocks; returns the tokens and their grid."""
        if self.downsample is not None:
            x, hw = self.downsample(x, hw)
        for block in self.blocks:
            x = block(x, hw)
        return x, hw


class PatchEmbed(nn.Module):
    """Non-overlapping patch projection (``projection``) with an optional LayerNorm (``norm``)."""

    def __init__(self, in_chans: int, dim: int, patch: int, norm: bool) -> None:
        super().__init__()
        self.projection = nn.Conv2d(in_chans, dim, kernel_size=patch, stride=patch)
        self.norm = nn.LayerNorm(dim) if norm else None

    def forward(self, x: Tensor) -> tuple[Tensor, tuple[int, int]]:
        """``B x C x H x W`` -> ``B x h*w x D`` tokens and their grid ``(h, w)``."""
        x = self.projection(x)
        hw = (x.shape[2], x.shape[3])
        x = x.flatten(2).transpose(1, 2)
        if self.norm is not None:
            x = self.norm(x)
        return x, hw


class SwinTransformerV2(nn.Module):
    """Swin Transformer V2 backbone; ``norm{i}`` normalises the output of stage ``i`` for the
    stages in ``out_norms`` (default: all; SkySense uses only stage 4, the others pass raw).
    """

    def __init__(
        self,
        in_chans: int,
        embed_dim: int,
        depths: tuple[int, ...],
        heads: tuple[int, ...],
        window: int = 8,
        patch: int = 4,
        extra_norm_every: int = 0,
        cpb_hidden: int = 512,
        drop_path: float = 0.0,
        out_norms: tuple[int, ...] | None = None,
    ) -> None:
        super().__init__()
        self.patch_embed = PatchEmbed(in_chans, embed_dim, patch, norm=True)
        rates = drop_path_rates(drop_path, sum(depths))
        self.stages = nn.ModuleList()
        dims = [embed_dim]
        start = 0
        for i, (depth, n_heads) in enumerate(zip(depths, heads)):
            stage = SwinStage(
                dims[-1],
                depth,
                n_heads,
                window,
                downsample=i > 0,
                extra_norm_every=extra_norm_every,
                cpb_hidden=cpb_hidden,
                drop_paths=rates[start : start + depth],
            )
            start += depth
            self.stages.append(stage)
            dims.append(stage.out_channels)
        self.out_dims = dims[1:]
        self.out_norms = tuple(out_norms) if out_norms is not None else tuple(range(len(depths)))
        for i, dim in enumerate(self.out_dims):
            self.add_module(f"norm{i}", nn.LayerNorm(dim) if i in self.out_norms else nn.Identity())
        self.apply(_init_linear)

    def forward(self, x: Tensor) -> list[Tensor]:
        """HR pixels ``B x C x H x W`` -> per-stage maps ``B x C_i x H_i x W_i``."""
        tokens, hw = self.patch_embed(x)
        outs = []
        for i, stage in enumerate(self.stages):
            tokens, hw = stage(tokens, hw)
            out = getattr(self, f"norm{i}")(tokens)
            outs.append(out.transpose(1, 2).reshape(out.shape[0], -1, *hw))
        return outs


def _init_linear(m: nn.Module) -> None:
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
