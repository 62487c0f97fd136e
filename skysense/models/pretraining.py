"""Teacher-student pre-training of SkySense: two augmented views, an EMA teacher, projection
heads, and the multi-granularity + cross-modal losses as one ``nn.Module``.

DeepSpeed: the pretrainer's ``forward(batch)`` returns the loss dict; pass
:meth:`SkySensePretrainer.trainable_parameters` (student encoder + student heads) to the
optimizer. The EMA teacher has ``requires_grad=False``; with ``register_teacher=False`` it is
kept out of ``parameters()``/``state_dict()`` (so ZeRO-3 does not partition it) and still follows
``.to()``; save it with :meth:`teacher_state_dict`. The geo-context prototypes are buffers
updated by EMA under ``torch.no_grad()`` inside the student's forward.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any, cast

import torch
from torch import Tensor, nn

from skysense.models.augment import TwoViewAugment, ViewGeometry, sample_at, sample_points
from skysense.models.ema import ema_update
from skysense.models.losses import (
    cross_modal_loss,
    image_contrastive_loss,
    object_contrastive_loss,
    pixel_contrastive_loss,
    weighted_total,
)
from skysense.models.presets import SkySenseSpec
from skysense.models.settings import AugmentConfig, LossWeights
from skysense.models.skysense import SkySense, create_model

STREAMS = ("hr", "s2", "s1", "dem", "fused")
MODAL_STREAMS = ("hr", "s2", "s1", "dem")


class ProjectionHead(nn.Module):
    """Per-feature MLP ``D -> hidden -> proj`` (GELU) for the contrastive losses."""

    def __init__(self, dim: int, hidden: int, out: int) -> None:
        super().__init__()
        self.in_dim = dim
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, out))

    def forward(self, x: Tensor) -> Tensor:
        """``... x dim`` -> ``... x out``."""
        return self.net(x)


class _Views:
    """The per-date maps (B x T x C x s x s), date masks (B x T) and time-pooled maps of every
    stream of one encoder output.
    """

    def __init__(self, out: dict[str, Any]) -> None:
        self.maps: dict[str, Tensor] = {}
        self.masks: dict[str, Tensor] = {}
        self.pooled: dict[str, Tensor] = {}
        present = out["present"]
        for i, name in enumerate(MODAL_STREAMS):
            if name not in out:
                continue
            if name in ("s2", "s1"):
                maps, mask = out[name], out[f"{name}_mask"]
                w = mask.to(maps.dtype)[..., None, None, None]
                self.pooled[name] = (maps * w).sum(1) / w.sum(1).clamp_min(1.0)
            else:
                maps, mask = out[name][:, None], present[:, i : i + 1]
                self.pooled[name] = out[name]
            self.maps[name], self.masks[name] = maps, mask
        self.maps["fused"] = out["fused"][:, None]
        self.masks["fused"] = present.any(1, keepdim=True)
        self.pooled["fused"] = out["fused"]

    def chunk(self, n: int) -> list[_Views]:
        """``n`` equal parts along the batch (views encoded as one batch, in order)."""
        size = next(iter(self.maps.values())).shape[0] // n
        parts = []
        for i in range(n):
            sl = slice(i * size, (i + 1) * size)
            part = _Views.__new__(_Views)
            part.maps = {k: v[sl] for k, v in self.maps.items()}
            part.masks = {k: v[sl] for k, v in self.masks.items()}
            part.pooled = {k: v[sl] for k, v in self.pooled.items()}
            parts.append(part)
        return parts

    def split(self, b: int) -> tuple[_Views, _Views]:
        """The first ``b`` samples and the rest (the two views encoded as one batch)."""
        halves = (_Views.__new__(_Views), _Views.__new__(_Views))
        for i, half in enumerate(halves):
            sl = slice(0, b) if i == 0 else slice(b, None)
            half.maps = {k: v[sl] for k, v in self.maps.items()}
            half.masks = {k: v[sl] for k, v in self.masks.items()}
            half.pooled = {k: v[sl] for k, v in self.pooled.items()}
        return halves


def stack_views(a: dict[str, Any], b: dict[str, Any], *more: dict[str, Any]) -> dict[str, Any]:
    """Views of a batch as one batch (tensors with a batch dimension concatenated, in order)."""
    views = (a, b) + more
    n = next(a[k] for k in ("s2", "s1", "dem", "hr") if k in a).shape[0]
    out: dict[str, Any] = {}
    for key, value in a.items():
        if isinstance(value, Tensor) and value.ndim >= 1 and value.shape[0] == n:
            out[key] = torch.cat([v[key] for v in views])
        elif isinstance(value, list) and len(value) == n:
            out[key] = [x for v in views for x in v[key]]
        else:
            out[key] = value
    return out


def build_student(spec_or_model: str | SkySenseSpec | SkySense) -> SkySense:
    """The student encoder: a built :class:`SkySense`, or one built from a spec or preset name."""
    if isinstance(spec_or_model, SkySense):
        return spec_or_model
    if isinstance(spec_or_model, SkySenseSpec):
        return SkySense(spec_or_model)
    return create_model(spec_or_model)


def stream_widths(spec: SkySenseSpec) -> dict[str, int]:
    """Feature width of every stream a pre-training head reads."""
    return {
        "hr": spec.hr_width,
        "s2": spec.hr_width,
        "s1": spec.hr_width,
        "dem": spec.hr_width,
        "fused": spec.fusion_dim,
    }


class SkySensePretrainer(nn.Module):
    """Student encoder, EMA teacher and projection heads; ``forward(batch)`` -> loss dict.

    Args:
        spec_or_model: a preset name, a :class:`SkySenseSpec`, or a built :class:`SkySense`.
        loss_weights: ``train.loss_weights`` (pixel, object, image, fused, cross_modal).
        augment: ``train.augment`` settings (see :class:`TwoViewAugment`).
        temperature: InfoNCE temperature.
        points: corresponding points sampled per sample for pixel/object/cross-modal losses.
        clusters: Sinkhorn-Knopp clusters per sample for the object-level loss.
        register_teacher: keep the teacher a registered submodule (False: outside the module
            tree, for ZeRO-3).
        heads: the student's heads per stream (default: the InfoNCE projection heads); the
            teacher gets a copy.
    """

    def __init__(
        self,
        spec_or_model: str | SkySenseSpec | SkySense,
        loss_weights: Any = None,
        augment: Any = None,
        temperature: float = 0.1,
        points: int = 32,
        clusters: int = 4,
        register_teacher: bool = True,
        heads: nn.ModuleDict | None = None,
    ) -> None:
        super().__init__()

        student = build_student(spec_or_model)
        spec = student.spec
        self.student = student
        self.heads = (
            heads
            if heads is not None
            else nn.ModuleDict(
                {
                    n: ProjectionHead(d, spec.proj_hidden, spec.proj_dim)
                    for n, d in stream_widths(spec).items()
                }
            )
        )
        teacher = nn.ModuleDict(
            {"encoder": copy.deepcopy(student), "heads": copy.deepcopy(self.heads)}
        )
        for p in teacher.parameters():
            p.requires_grad_(False)
        self.register_teacher = register_teacher
        if register_teacher:
            self.teacher = teacher
        else:
            self._detached_teacher = [teacher]  # a list hides it from nn.Module registration
        self.loss_weights = loss_weights if loss_weights is not None else LossWeights()
        self.augmenter = TwoViewAugment(augment if augment is not None else AugmentConfig())
        self.temperature = temperature
        self.points = points
        self.clusters = clusters

    # ----------------------------------------------------------------------------- teacher
    @property
    def teacher_module(self) -> nn.ModuleDict:
        """The EMA teacher: ``{'encoder': SkySense, 'heads': ModuleDict}``."""
        return self.teacher if self.register_teacher else self._detached_teacher[0]

    def _apply(self, fn, recurse: bool = True):  # keeps a detached teacher on the same device/dtype
        super()._apply(fn, recurse)
        if not self.register_teacher:
            self._detached_teacher[0]._apply(fn, recurse)
        return self

    def teacher_state_dict(self) -> dict[str, Tensor]:
        """The teacher's weights (also when it is detached from the module tree)."""
        return self.teacher_module.state_dict()

    def trainable_parameters(self) -> Iterator[nn.Parameter]:
        """Student encoder and student heads: what the optimizer (DeepSpeed engine) trains."""
        for module in (self.student, self.heads):
            for p in module.parameters():
                if p.requires_grad:
                    yield p

    def ema_modules(self) -> list[tuple[nn.Module, nn.Module]]:
        """``(student_side, teacher_side)`` pairs: ``student`` -> ``teacher.encoder``, ``heads`` ->
        ``teacher.heads`` (also when the teacher is detached from the module tree).
        """
        teacher = self.teacher_module
        return [(self.student, teacher["encoder"]), (self.heads, teacher["heads"])]

    @torch.no_grad()
    def update_teacher(self, momentum: float) -> None:
        """EMA step ``teacher = momentum * teacher + (1 - momentum) * student`` for weights;
        buffers (geo-context prototypes) are copied. Whole tensors: under ZeRO-3, where each rank
        holds a partition, :func:`skysense.training.teacher.update_teacher` applies the same rule
        to the partitions.
        """
        ema_update(self.ema_modules(), momentum)

    # ----------------------------------------------------------------------------- losses
    def _project(self, name: str, x: Tensor, heads: nn.ModuleDict) -> Tensor:
        return heads[name](x)

    def _stream_losses(
        self,
        name: str,
        s_views: _Views,
        t_views: _Views,
        pts_s: Tensor,
        pts_t: Tensor,
        overlap: Tensor,
        teacher_heads: nn.ModuleDict,
    ) -> dict[str, Tensor]:
        """Pixel, object and image losses of one stream, student view ``a`` vs teacher view
        ``b``.
        """
        date_mask = s_views.masks[name] & t_views.masks[name] & overlap[:, None]  # B x T
        s_pts = self._project(
            name, sample_at(s_views.maps[name], pts_s), self.heads
        )  # B x T x K x P
        with torch.no_grad():
            t_pts = self._project(name, sample_at(t_views.maps[name], pts_t), teacher_heads)
        k = pts_s.shape[1]
        pixel = pixel_contrastive_loss(
            s_pts, t_pts, date_mask[:, :, None].expand(-1, -1, k), self.temperature
        )
        s_any = s_views.masks[name].any(1)
        t_any = t_views.masks[name].any(1)
        s_obj = self._project(name, sample_at(s_views.pooled[name], pts_s), self.heads)
        with torch.no_grad():
            t_obj = self._project(name, sample_at(t_views.pooled[name], pts_t), teacher_heads)
        obj = object_contrastive_loss(
            s_obj, t_obj, s_any & t_any & overlap, self.clusters, self.temperature
        )
        s_img = self._project(name, s_views.pooled[name].mean((-2, -1)), self.heads)
        with torch.no_grad():
            t_img = self._project(name, t_views.pooled[name].mean((-2, -1)), teacher_heads)
        image = image_contrastive_loss(s_img, t_img, s_any & t_any, self.temperature)
        return {"pixel": pixel, "object": obj, "image": image}

    def forward(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        """One pre-training step's losses on ``batch`` (two views made inside).

        Returns:
            ``loss`` (weighted total, with graph) and detached components: ``loss_pixel``,
            ``loss_object``, ``loss_image`` (mean over modality streams), ``loss_fused``
            (mean of the three on the fused feature), ``loss_cross_modal``, and per stream
            ``pixel_<stream>``, ``object_<stream>``, ``image_<stream>``.
        """
        view_a, geo_a = self.augmenter(batch)
        view_b, geo_b = self.augmenter(batch)
        b = geo_a.half.shape[0]
        both = stack_views(view_a, view_b)
        student_a, student_b = _Views(self.student(both, update_prototypes=self.training)).split(b)
        teacher = self.teacher_module
        with torch.no_grad():
            teacher_a, teacher_b = _Views(teacher["encoder"](both)).split(b)
        teacher_heads = cast(nn.ModuleDict, teacher["heads"])  # built as one in __init__
        return self.losses(student_a, student_b, teacher_a, teacher_b, geo_a, geo_b, teacher_heads)

    def losses(
        self,
        student_a: _Views,
        student_b: _Views,
        teacher_a: _Views,
        teacher_b: _Views,
        geo_a: ViewGeometry,
        geo_b: ViewGeometry,
        teacher_heads: nn.ModuleDict,
    ) -> dict[str, Tensor]:
        """Every loss from the encoder outputs of both views (symmetric student/teacher)."""
        pts_a, pts_b, overlap = sample_points(geo_a, geo_b, self.points)
        per_stream: dict[str, dict[str, Tensor]] = {}
        for name in STREAMS:
            if name not in student_a.maps:
                continue
            ab = self._stream_losses(
                name, student_a, teacher_b, pts_a, pts_b, overlap, teacher_heads
            )
            ba = self._stream_losses(
                name, student_b, teacher_a, pts_b, pts_a, overlap, teacher_heads
            )
            per_stream[name] = {k: 0.5 * (ab[k] + ba[k]) for k in ab}
        modal = [n for n in MODAL_STREAMS if n in per_stream]
        comp: dict[str, Tensor] = {}
        for kind in ("pixel", "object", "image"):
            comp[kind] = torch.stack([per_stream[n][kind] for n in modal]).mean()
        fused = per_stream["fused"]
        comp["fused"] = (fused["pixel"] + fused["object"] + fused["image"]) / 3.0
        cross_feats, cross_masks = {}, {}
        for name in ("hr", "s2", "s1"):
            if name in student_a.pooled:
                cross_feats[name] = self._project(
                    name, sample_at(student_a.pooled[name], pts_a), self.heads
                )
                cross_masks[name] = student_a.masks[name].any(1)
        comp["cross_modal"] = (
            cross_modal_loss(cross_feats, cross_masks, self.temperature)
            if len(cross_feats) > 1
            else comp["pixel"] * 0.0
        )
        total = weighted_total(comp, self.loss_weights)
        if getattr(self.student, "run_all_branches", False):
            # ZeRO-3: heads of streams absent from this batch still join the graph (zero weight).
            for name, head in self.heads.items():
                if name not in per_stream:
                    in_dim = cast(int, head.in_dim)  # every projection head keeps its width
                    total = total + 0.0 * head(total.new_zeros(1, in_dim)).sum()
        out = {"loss": total}
        out.update({f"loss_{k}": v.detach() for k, v in comp.items()})
        for name, parts in per_stream.items():
            out.update({f"{k}_{name}": v.detach() for k, v in parts.items()})
        return out
