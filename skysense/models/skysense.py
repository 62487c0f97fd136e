"""The SkySense encoder: HR Swin V2, Sentinel-2 and Sentinel-1 ViTs, per-pixel fusion and
geo-context prototypes; and ``create_model``, the one constructor of presets.
"""

from __future__ import annotations

from typing import Any, TypedDict

import torch
from torch import Tensor, nn

from skysense.core.errors import InputShapeError
from skysense.models.fusion import DateEncoding, DemEncoder, FusionTransformer, UpHead
from skysense.models.geo_context import GeoContextPrototypes
from skysense.models.inputs import check_batch, presence, regions
from skysense.models.presets import SkySenseSpec, resolve_spec
from skysense.models.swin_v2 import SwinBlockV2, SwinTransformerV2
from skysense.models.transformer import TransformerLayer
from skysense.models.vit import SentinelViT

MODALITY_INDEX = {"hr": 0, "s2": 1, "s1": 2, "dem": 3}


class _VitArgs(TypedDict):
    """The :class:`SentinelViT` arguments the S2 and S1 backbones share."""

    dim: int
    depth: int
    heads: int
    mlp_ratio: float
    img_px: int
    patch: int
    drop_path: float


class SkySense(nn.Module):
    """Factorized multi-modal encoder; any subset of modalities works.

    Per Sentinel pixel the fusion sequence is ``[cls, HR, S2 dates, S1 dates, DEM]``: modalities
    absent from the batch are left out, and absent per sample (``has_*`` False) or invalid dates
    (``*_valid`` False) are masked out of the attention (never zero-filled tokens).

    Attributes:
        spec: the preset's sizes (``spec.to_dict()`` for export).
        embed_dim: width of :meth:`embed` (fused feature + geo-context read-out).
    """

    def __init__(self, spec: SkySenseSpec) -> None:
        super().__init__()
        self.spec = spec
        width = spec.hr_width
        self.hr_backbone = SwinTransformerV2(
            spec.hr_in_chans,
            spec.hr_embed_dim,
            spec.hr_depths,
            spec.hr_heads,
            window=spec.hr_window,
            patch=spec.patch_size,
            extra_norm_every=spec.hr_extra_norm_every,
            cpb_hidden=spec.hr_cpb_hidden,
            drop_path=spec.drop_path,
            out_norms=(len(spec.hr_depths) - 1,),
        )
        vit_args = _VitArgs(
            dim=spec.vit_dim,
            depth=spec.vit_depth,
            heads=spec.vit_heads,
            mlp_ratio=spec.vit_mlp_ratio,
            img_px=spec.sentinel_px,
            patch=spec.patch_size,
            drop_path=spec.drop_path,
        )
        self.s2_backbone = SentinelViT(spec.s2_in_chans, **vit_args)
        self.s1_backbone = SentinelViT(spec.s1_in_chans, **vit_args)
        self.s2_head = UpHead(spec.vit_dim, width, spec.patch_size)
        self.s1_head = UpHead(spec.vit_dim, width, spec.patch_size)
        self.dem_encoder = DemEncoder(spec.dem_hidden, width) if spec.dem else None
        self.date_encoding = DateEncoding(
            spec.calendar_days, width, spec.date_init, spec.date_smoothing_days
        )
        self.modality_embed: nn.Parameter | None = None
        if spec.modality_embed:
            self.modality_embed = nn.Parameter(torch.zeros(len(MODALITY_INDEX), width))
            nn.init.trunc_normal_(self.modality_embed, std=0.02)
        self.fusion = FusionTransformer(
            width,
            spec.fusion_dim,
            spec.fusion_depth,
            spec.fusion_heads,
            spec.fusion_ffn,
            drop_path=spec.drop_path,
        )
        self.geo_context: GeoContextPrototypes | None = None
        if spec.geo_context:
            self.geo_context = GeoContextPrototypes(
                spec.n_regions, spec.n_prototypes, spec.fusion_dim, temperature=spec.geo_temperature
            )

    #: Run every branch on every forward, even when no sample of the batch has its modality
    #: (a zero-weighted pass on a dummy input). ZeRO-3 needs it: each rank must gather and
    #: reduce the same parameters in the same order, or the collectives hang.
    run_all_branches: bool = False

    #: Take the same path whatever the batch holds, with no branch on tensor values: every
    #: branch runs on every sample and date, and what is absent or invalid is zeroed and masked
    #: out of the fusion (as the default path leaves it). Same embeddings; the graph an exporter
    #: traces (ONNX, torch.export), which cannot branch on data. Region ids are not range-checked.
    dense: bool = False

    def _idle_pass(self, key: str, device: torch.device, dtype: torch.dtype) -> Tensor:
        """A zero scalar that depends on every parameter of branch ``key`` (run on a dummy
        input).
        """
        spec = self.spec
        s = spec.sentinel_px
        if key == "hr":
            maps = self.hr_backbone(
                torch.zeros(1, spec.hr_in_chans, spec.hr_px, spec.hr_px, device=device, dtype=dtype)
            )
            total = sum(m.sum() for m in maps)
        elif key in ("s2", "s1"):
            chans = spec.s2_in_chans if key == "s2" else spec.s1_in_chans
            backbone, head = (
                (self.s2_backbone, self.s2_head)
                if key == "s2"
                else (self.s1_backbone, self.s1_head)
            )
            total = head(backbone(torch.zeros(1, chans, s, s, device=device, dtype=dtype))).sum()
        elif key == "dem" and self.dem_encoder is not None:
            total = self.dem_encoder(torch.zeros(1, 1, s, s, device=device, dtype=dtype)).sum()
        else:
            return torch.zeros((), device=device, dtype=dtype)
        return total * 0.0

    def _modality_vector(self, key: str) -> Tensor | float:
        """The learned vector of modality ``key`` added to its fusion tokens (0 when disabled)."""
        if self.modality_embed is None:
            return 0.0
        return self.modality_embed[MODALITY_INDEX[key]]

    @property
    def embed_dim(self) -> int:
        """Channels of :meth:`embed`: ``2 * fusion_dim`` (2048 for huge)."""
        return self.spec.embed_dim

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute every transformer block in the backward pass (saves activation memory)."""
        for m in self.modules():
            if isinstance(m, (TransformerLayer, SwinBlockV2)):
                m.grad_checkpointing = enable

    def _hr(self, hr: Tensor, has: Tensor) -> list[Tensor]:
        """HR stage maps, computed only for the samples that have HR (zeros elsewhere)."""
        if self.dense:
            keep = has.to(hr.dtype)[:, None, None, None]
            return [m * keep for m in self.hr_backbone(hr)]
        if bool(has.all()):
            return self.hr_backbone(hr)
        if not bool(has.any()):
            n = hr.shape[0]
            side = hr.shape[-1] // self.spec.patch_size
            idle = self._idle_pass("hr", hr.device, hr.dtype) if self.run_all_branches else 0.0
            return [
                hr.new_zeros(n, dim, side >> i, side >> i) + idle
                for i, dim in enumerate(self.hr_backbone.out_dims)
            ]
        maps = self.hr_backbone(hr[has])
        out = []
        for m in maps:
            full = m.new_zeros((hr.shape[0],) + tuple(m.shape[1:]))
            out.append(full.index_put((has,), m))
        return out

    def _sentinel(
        self, key: str, batch: dict, b: int, s: int, has: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Per-date features on the Sentinel grid ``B x T x W x s x s``, usable mask ``B x T``
        and fusion tokens ``B*s*s x T x W``.
        """
        x = batch[key]
        t = x.shape[1]
        valid = batch.get(f"{key}_valid")
        valid = (
            torch.ones(b, t, dtype=torch.bool, device=x.device)
            if valid is None
            else valid.to(torch.bool)
        )
        usable = valid & has[:, None]
        backbone, head = (
            (self.s2_backbone, self.s2_head) if key == "s2" else (self.s1_backbone, self.s1_head)
        )
        width = self.spec.hr_width
        if self.dense:  # every date encoded; unusable ones are masked out in the fusion
            feats = head(backbone(x.reshape(b * t, *x.shape[2:]))).reshape(b, t, width, s, s)
            feats = feats * usable[:, :, None, None, None].to(feats.dtype)
        else:
            feats = x.new_zeros(b, t, width, s, s)
        if not self.dense and bool(usable.any()):
            feats = feats.index_put((usable,), head(backbone(x[usable])))
        elif not self.dense and self.run_all_branches:
            feats = feats + self._idle_pass(key, x.device, x.dtype)
        enc = self.date_encoding(batch[f"{key}_doy"].to(x.device)) + self._modality_vector(key)
        tokens = (feats + enc[..., None, None]).permute(0, 3, 4, 1, 2).reshape(b * s * s, t, width)
        return feats, usable, tokens

    def forward(self, batch: dict[str, Any], update_prototypes: bool = False) -> dict[str, Any]:
        """Encode a batch (``docs/interfaces.md``).

        Args:
            batch: modalities, dates, validity and presence flags, ``region`` (or lat/lon;
                without either the geo-context read-out is zeros and ``geo_context`` False).
            update_prototypes: EMA-update the geo-context prototypes (pre-training only).

        Returns:
            ``hr`` B x W x s x s and ``hr_pyramid`` (4 stage maps, the last normalised);
            ``s2``/``s1`` B x T x W x s x s
            with ``s2_mask``/``s1_mask`` B x T (date used); ``dem`` B x W x s x s; ``fused``
            B x fusion_dim x s x s; ``geo`` (prototype read-out, same shape); ``embedding``
            B x embed_dim x s x s; ``present`` B x 4 bool (hr, s2, s1, dem used per sample).

        Raises:
            InputShapeError: shapes or band counts that do not fit the preset, or a sample with
                no usable modality.
        """
        layout = check_batch(batch, self.spec)
        b, s = layout.batch, layout.sentinel_px
        device = self.date_encoding.weight.device
        width = self.spec.hr_width
        out: dict[str, Any] = {}
        tokens: list[Tensor] = []
        pads: list[Tensor] = []
        present = torch.zeros(b, len(MODALITY_INDEX), dtype=torch.bool, device=device)
        if "hr" in layout.modalities:
            has = presence(batch, "hr", b, device)
            pyramid = self._hr(batch["hr"], has)
            hr = pyramid[-1]
            out["hr"], out["hr_pyramid"] = hr, pyramid
            tokens.append(
                (hr + _spatial(self._modality_vector("hr")))
                .permute(0, 2, 3, 1)
                .reshape(b * s * s, 1, width)
            )
            pads.append((~has).repeat_interleave(s * s)[:, None])
            present[:, 0] = has
        for key in ("s2", "s1"):
            if key not in layout.modalities:
                continue
            has = presence(batch, key, b, device)
            feats, usable, tok = self._sentinel(key, batch, b, s, has)
            out[key], out[f"{key}_mask"] = feats, usable
            tokens.append(tok)
            pads.append(
                (~usable)[:, None, :].expand(b, s * s, usable.shape[1]).reshape(b * s * s, -1)
            )
            present[:, MODALITY_INDEX[key]] = usable.any(dim=1)
        if "dem" in layout.modalities:
            has = presence(batch, "dem", b, device)
            if self.dem_encoder is None:  # check_batch refuses 'dem' when the preset has none
                raise InputShapeError(
                    f"batch has 'dem' but preset {self.spec.name!r} has no DEM encoder; drop the "
                    "key or set model.overrides.dem=true"
                )
            dem = self.dem_encoder(batch["dem"])
            out["dem"] = dem
            tokens.append(
                (dem + _spatial(self._modality_vector("dem")))
                .permute(0, 2, 3, 1)
                .reshape(b * s * s, 1, width)
            )
            pads.append((~has).repeat_interleave(s * s)[:, None])
            present[:, 3] = has
        empty = ~present.any(dim=1)
        if not self.dense and bool(empty.any()):
            idx = empty.nonzero().flatten().tolist()
            raise InputShapeError(
                f"samples {idx} of the batch have no usable modality (every has_* False or no "
                "valid date); "
                "drop them before encoding"
            )
        fused_in = torch.cat(tokens, dim=1)
        if self.run_all_branches:
            dtype = fused_in.dtype
            for key in ("hr", "s2", "s1", "dem"):
                if key not in layout.modalities:
                    fused_in = fused_in + self._idle_pass(key, device, dtype)
        fused = self.fusion(fused_in, torch.cat(pads, dim=1))
        fused = fused.view(b, s, s, -1).permute(0, 3, 1, 2)
        region = regions(batch, self.spec.n_regions, device) if self.geo_context else None
        if region is None or self.geo_context is None:
            # no location: the geo-context read-out is skipped (zeros keep the embedding width;
            # ``geo_context`` False says so), and no prototype moves
            geo = torch.zeros_like(fused)
        else:
            if not self.dense:
                self.geo_context.check_regions(region)
            geo = self.geo_context(fused, region, update=update_prototypes)
        out.update(
            fused=fused,
            geo=geo,
            embedding=torch.cat([fused, geo], dim=1),
            present=present,
            geo_context=region is not None,
        )
        return out

    def embed(self, batch: dict[str, Any]) -> Tensor:
        """Per-pixel embedding ``B x embed_dim x s x s`` (evaluation, registry, predict).

        A model built without the DEM encoder (``dem: false``, e.g. the official release) reads
        no elevation: ``dem``/``has_dem`` of the batch are left out here (``forward`` refuses
        them, so that training never silently drops an input it was configured to use).
        """
        if not self.spec.dem and "dem" in batch:
            batch = {k: v for k, v in batch.items() if k not in ("dem", "has_dem")}
        return self.forward(batch)["embedding"]


def _spatial(vector: Tensor | float) -> Tensor | float:
    """A ``W`` vector broadcast over ``W x s x s`` maps (a float stays a float)."""
    return vector[:, None, None] if isinstance(vector, Tensor) else vector


def create_model(name: str = "skysense-tiny", **overrides: Any) -> SkySense:
    """Build the SkySense encoder of preset ``name`` (``PRESETS``) with field ``overrides``.

    Builds on the current default device: under ``with torch.device("meta"):`` no memory is
    used (the huge preset has about 2.1 B parameters with its prototype bank).

    Raises:
        PresetError: unknown preset or an override that does not fit.
    """
    return SkySense(resolve_spec(name, **overrides))
