"""The paper's pre-training objective (``train.objective: paper``).

SkySense (arXiv 2312.10115) trains a student against its EMA teacher with Multi-Granularity
Contrastive Learning built on self-distillation, and aligns the modalities:

* views: two global views (teacher and student) and ``train.augment.local_crops`` local views
  (student only), :mod:`skysense.models.multicrop`; each teacher global view is paired with every
  other view;
* pixel level: every pixel of every date of a student view against the teacher's feature at the
  same place and date (the teacher map sampled at the student's pixel centres; pixels outside the
  teacher's crop and dates absent from either view take no part);
* object level: per date, Sinkhorn-Knopp clusters of the teacher's features over those pixels;
  each cluster's mean in the student and in the teacher (same soft assignment) is a pair;
* image level: per date, the mean of the student's map against the mean of the teacher's;
* each level is :func:`~skysense.models.distillation.distillation_loss` through the stream's DINO
  head (teacher centred and sharpened), summed over the HR, Sentinel-2, Sentinel-1 and fused
  streams (the DEM stream only with ``train.paper.dem_in_loss``, not in the paper);
* cross-modal alignment: the image-level embeddings (head bottlenecks, dates pooled) of HR,
  Sentinel-2 and Sentinel-1 of the same sample are positives, other samples negatives (symmetric
  InfoNCE over every pair of modalities), on each global view.

``docs/objective.md`` sets this beside the paper, term by term, with what departs from it.
"""

from __future__ import annotations

from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from skysense.models.augment import ViewGeometry, sample_at
from skysense.models.distillation import (
    Centering,
    DistillationHead,
    TeacherHealth,
    distillation_loss,
    teacher_probabilities,
    update_centres,
)
from skysense.models.losses import cross_modal_loss
from skysense.models.multicrop import MultiCropAugment, View
from skysense.models.presets import SkySenseSpec
from skysense.models.pretraining import (
    MODAL_STREAMS,
    STREAMS,
    SkySensePretrainer,
    _Views,
    build_student,
    stack_views,
    stream_widths,
)
from skysense.models.settings import AugmentConfig, PaperObjectiveConfig
from skysense.models.sinkhorn import sinkhorn_knopp
from skysense.models.skysense import SkySense

LEVELS = ("pixel", "object", "image")


def pixel_centres(b: int, side: int, device: torch.device) -> Tensor:
    """Normalised centres of a ``side x side`` view's pixels, row-major: ``B x side^2 x 2``."""
    c = (torch.arange(side, device=device, dtype=torch.float32) + 0.5) / side * 2 - 1
    yy, xx = torch.meshgrid(c, c, indexing="ij")
    return torch.stack([xx, yy], -1).reshape(1, -1, 2).expand(b, -1, -1)


def to_original(geo: ViewGeometry, p: Tensor) -> Tensor:
    """View coordinates ``B x K x 2`` -> the chip's normalised coordinates."""
    return geo.centre[:, None, :] + geo.half[:, None, None] * geo.flip[:, None, :] * p


def cluster_assignments(feats: Tensor, mask: Tensor, clusters: int, iters: int = 3) -> Tensor:
    """Soft Sinkhorn-Knopp clusters of each map's pixels: ``... x K x D`` -> ``... x K x C``.

    Seeds are pixels spread over the map; one refinement (assign, re-centre, assign). Rows out of
    ``mask`` (``... x K``) get no mass; each cluster's column sums to 1 over its pixels (or 0).
    """
    k = feats.shape[-2]
    c = min(clusters, k)
    x = F.normalize(feats.detach().float(), dim=-1)
    seeds = x[..., torch.linspace(0, k - 1, c, device=x.device).long(), :]
    m = mask.to(x.dtype)[..., None]
    for _ in range(2):
        q = sinkhorn_knopp(x @ seeds.transpose(-1, -2), 0.05, iters) * m
        seeds = F.normalize(q.transpose(-1, -2) @ x, dim=-1)
    return q / q.sum(-2, keepdim=True).clamp_min(1e-12)


def _encode(encoder: nn.Module, views: list[View], **kwargs: Any) -> list[_Views]:
    """Encode views of one size as one batch; the outputs per view."""
    batch = views[0].batch if len(views) == 1 else stack_views(*(v.batch for v in views))
    return _Views(encoder(batch, **kwargs)).chunk(len(views))


class PaperPretrainer(SkySensePretrainer):
    """Student, EMA teacher and DINO heads; ``forward(batch)`` -> loss dict (same keys as the
    legacy pre-trainer: ``loss``, ``loss_pixel``, ``loss_object``, ``loss_image``,
    ``loss_fused``, ``loss_cross_modal``, per stream ``<level>_<stream>``) plus, per stream, the
    teacher's health at pixel level (:class:`~skysense.models.distillation.TeacherHealth`, nats):
    ``teacher_entropy_<stream>`` (mean row entropy; ``ln K`` when it collapses to uniform) and
    ``teacher_usage_<stream>`` (entropy of the batch's mean distribution; near 0 when every
    pixel lands on one prototype).

    Args:
        spec_or_model: a preset name, a :class:`SkySenseSpec`, or a built :class:`SkySense`.
        augment: ``train.augment`` (global crops, local crops, HR photometric, ...).
        paper: ``train.paper`` (temperatures, centring, head width, clusters, cross-modal).
        register_teacher: as :class:`SkySensePretrainer` (False for ZeRO-3).
    """

    def __init__(
        self,
        spec_or_model: str | SkySenseSpec | SkySense,
        augment: Any = None,
        paper: Any = None,
        register_teacher: bool = True,
    ) -> None:
        cfg = paper if paper is not None else PaperObjectiveConfig()
        student = build_student(spec_or_model)
        spec = student.spec
        heads = nn.ModuleDict(
            {
                n: DistillationHead(d, spec.proj_hidden, spec.proj_dim, cfg.head_prototypes)
                for n, d in stream_widths(spec).items()
                if n != "dem" or cfg.dem_in_loss
            }
        )
        aug = augment if augment is not None else AugmentConfig()
        super().__init__(student, augment=aug, register_teacher=register_teacher, heads=heads)
        self.paper = cfg
        self.multicrop = MultiCropAugment(aug, spec.patch_size)
        self.centers = nn.ModuleDict(
            {
                f"{n}_{level}": Centering(cfg.head_prototypes, cfg.center_momentum)
                for n in STREAMS
                for level in LEVELS
            }
        )

    def _centre(self, key: str) -> Centering:
        return cast(Centering, self.centers[key])

    def _head(self, name: str) -> DistillationHead:
        return cast(DistillationHead, self.heads[name])

    def _streams(self, views: _Views) -> list[str]:
        names = [n for n in STREAMS if n in views.maps]
        return [n for n in names if n != "dem" or self.paper.dem_in_loss]

    def _student_logits(self, name: str, student: _Views) -> dict[str, Tensor]:
        """The student's pixel features and its pixel and image logits of one view (computed
        once, used against each teacher view).
        """
        maps = student.maps[name]  # B x T x C x h x w
        pix = maps.flatten(-2).transpose(-1, -2)  # B x T x K x C
        head = self.heads[name]
        return {"pix": pix, "pixel": head(pix), "image": head(maps.mean((-2, -1)))}

    @torch.no_grad()
    def _teacher_logits(self, name: str, teacher: _Views, t_head: nn.Module) -> dict[str, Tensor]:
        """The teacher's pixel logits as maps (``B x T x K x h x w``) and image logits."""
        maps = teacher.maps[name]
        b, t, _, h, w = maps.shape
        logits = t_head(maps.flatten(-2).transpose(-1, -2))  # B x T x hw x K
        return {
            "maps": maps,
            "pixel_maps": logits.transpose(-1, -2).reshape(b, t, -1, h, w),
            "image": t_head(maps.mean((-2, -1))),
        }

    def _pair(
        self,
        name: str,
        s: dict[str, Tensor],
        s_mask: Tensor,
        s_geo: ViewGeometry,
        t: dict[str, Tensor],
        t_mask: Tensor,
        t_geo: ViewGeometry,
        t_head: nn.Module,
        collect: dict[str, list[Tensor]],
        health: TeacherHealth,
    ) -> dict[str, Tensor]:
        """The three levels of stream ``name``: one student view against one teacher view
        (the pixel-level teacher rows also go to ``health``).
        """
        cfg = self.paper
        tau_t, tau_s = cfg.teacher_temperature, cfg.student_temperature
        s_pix = s["pix"]
        b, _, k, _ = s_pix.shape
        side = int(round(k**0.5))
        dates = s_mask & t_mask  # B x T
        p_teacher = t_geo.to_view(to_original(s_geo, pixel_centres(b, side, s_pix.device)))
        inside = (p_teacher.abs() <= 1).all(-1)  # B x K
        mask = dates[:, :, None] & inside[:, None, :]  # B x T x K
        out: dict[str, Tensor] = {}
        with torch.no_grad():
            t_logits = sample_at(t["pixel_maps"], p_teacher)  # B x T x K x P
            t_pix = sample_at(t["maps"], p_teacher)  # B x T x K x C
        centre = self._centre(f"{name}_pixel").center
        probs = teacher_probabilities(t_logits, centre, tau_t)
        out["pixel"] = distillation_loss(s["pixel"], probs, tau_s, mask)
        health.add(probs[mask])
        collect[f"{name}_pixel"].append(t_logits[mask])
        q = cluster_assignments(t_pix, mask, cfg.object_clusters, cfg.sinkhorn_iters)  # BxTxKxC
        has = (q.sum(-2) > 0) & dates[..., None]  # B x T x C
        qt = q.transpose(-1, -2)
        with torch.no_grad():
            t_obj = t_head(qt.to(t_pix.dtype) @ t_pix)
        probs = teacher_probabilities(t_obj, self._centre(f"{name}_object").center, tau_t)
        s_obj = self.heads[name](qt.to(s_pix.dtype) @ s_pix)
        out["object"] = distillation_loss(s_obj, probs, tau_s, has)
        collect[f"{name}_object"].append(t_obj[has])
        probs = teacher_probabilities(t["image"], self._centre(f"{name}_image").center, tau_t)
        out["image"] = distillation_loss(s["image"], probs, tau_s, dates)
        collect[f"{name}_image"].append(t["image"][dates])
        return out

    def _cross_modal(self, student: _Views) -> Tensor | None:
        feats: dict[str, Tensor] = {}
        masks: dict[str, Tensor] = {}
        for name in ("hr", "s2", "s1"):
            if name not in student.maps:
                continue
            maps, dmask = student.maps[name], student.masks[name]
            w = dmask.to(maps.dtype)[..., None]
            pooled = (maps.mean((-2, -1)) * w).sum(1) / w.sum(1).clamp_min(1.0)  # B x C
            feats[name] = self._head(name).embed(pooled)
            masks[name] = dmask.any(1)
        if len(feats) < 2:
            return None
        return cross_modal_loss(feats, masks, self.paper.cross_modal_temperature)

    def forward(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        """One pre-training step's losses on ``batch`` (multi-crop views made inside)."""
        views: list[View] = self.multicrop(batch)
        glob = [v for v in views if v.is_global]
        local = [v for v in views if not v.is_global]
        s_glob = _encode(self.student, glob, update_prototypes=self.training)
        s_local = _encode(self.student, local) if local else []
        teacher = self.teacher_module
        with torch.no_grad():
            t_glob = _encode(teacher["encoder"], glob)
        students = list(zip(s_glob + s_local, glob + local))
        collect: dict[str, list[Tensor]] = {k: [] for k in self.centers}
        per_stream: dict[str, dict[str, Tensor]] = {}
        health: dict[str, TeacherHealth] = {}
        for name in self._streams(s_glob[0]):
            sums: dict[str, list[Tensor]] = {level: [] for level in LEVELS}
            health[name] = TeacherHealth()
            t_head = cast(nn.ModuleDict, teacher["heads"])[name]
            s_out = [self._student_logits(name, sv) for sv, _ in students]
            t_out = [self._teacher_logits(name, tv, t_head) for tv in t_glob]
            for ti, (t_views, t_view) in enumerate(zip(t_glob, glob)):
                for si, (s_views, s_view) in enumerate(students):
                    if si == ti:
                        continue
                    parts = self._pair(
                        name,
                        s_out[si],
                        s_views.masks[name],
                        s_view.geometry,
                        t_out[ti],
                        t_views.masks[name],
                        t_view.geometry,
                        t_head,
                        collect,
                        health[name],
                    )
                    for level in LEVELS:
                        sums[level].append(parts[level])
            per_stream[name] = {level: torch.stack(v).mean() for level, v in sums.items()}
        if self.training:  # one collective for every centre, the same keys on every rank
            update_centres(
                [
                    (self._centre(key), torch.cat(rows) if rows else None)
                    for key, rows in collect.items()
                ]
            )
        modal = [n for n in MODAL_STREAMS if n in per_stream]
        comp: dict[str, Tensor] = {}
        for level in LEVELS:
            comp[level] = torch.stack([per_stream[n][level] for n in modal]).sum()
        fused = per_stream["fused"]
        comp["fused"] = fused["pixel"] + fused["object"] + fused["image"]
        cross = [x for x in (self._cross_modal(v) for v in s_glob) if x is not None]
        comp["cross_modal"] = torch.stack(cross).mean() if cross else comp["pixel"] * 0.0
        total = (
            comp["pixel"]
            + comp["object"]
            + comp["image"]
            + comp["fused"]
            + self.paper.cross_modal_weight * comp["cross_modal"]
        )
        if getattr(self.student, "run_all_branches", False):
            for name, head in self.heads.items():
                if name not in per_stream:
                    total = (
                        total
                        + 0.0 * head(total.new_zeros(1, cast(DistillationHead, head).in_dim)).sum()
                    )
        out = {"loss": total}
        out.update({f"loss_{k}": v.detach() for k, v in comp.items()})
        for name, parts in per_stream.items():
            out.update({f"{k}_{name}": v.detach() for k, v in parts.items()})
        for name, h in health.items():
            values = h.values()
            if values is not None:  # nats; ln K at uniform collapse (docs/objective.md)
                out[f"teacher_entropy_{name}"], out[f"teacher_usage_{name}"] = values
        return out
