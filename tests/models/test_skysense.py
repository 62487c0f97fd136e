"""SkySense encoder: shapes for every modality subset, masking, gradients, errors."""

from __future__ import annotations

import itertools

import pytest
import torch

from skysense.core.errors import InputShapeError, PresetError
from skysense.models import PRESETS, create_model

SUBSETS = [c for r in range(1, 5) for c in itertools.combinations(("hr", "s2", "s1", "dem"), r)]


@pytest.mark.parametrize("modalities", SUBSETS, ids=["+".join(s) for s in SUBSETS])
def test_shapes_every_subset(tiny, modalities, make_batch):
    batch = make_batch(modalities=modalities)
    with torch.no_grad():
        out = tiny(batch)
    w, d = tiny.spec.hr_width, tiny.spec.fusion_dim
    assert out["fused"].shape == (2, d, 4, 4)
    assert out["embedding"].shape == (2, tiny.embed_dim, 4, 4)
    assert tiny.embed(batch).shape == (2, 2 * d, 4, 4)
    for m in modalities:
        if m in ("s2", "s1"):
            assert out[m].shape == (2, batch[m].shape[1], w, 4, 4)
        else:
            assert out[m].shape == (2, w, 4, 4)
    assert torch.isfinite(out["embedding"]).all()


@pytest.mark.parametrize("t2,t1,s", [(1, 1, 4), (5, 3, 4), (2, 4, 8)])
def test_variable_series_lengths_and_sizes(tiny, t2, t1, s, make_batch):
    with torch.no_grad():
        out = tiny(make_batch(t2=t2, t1=t1, s=s))
    assert out["s2"].shape[1] == t2 and out["s1"].shape[1] == t1
    assert out["fused"].shape[-2:] == (s, s)


def test_absent_modality_is_masked_not_zero_filled(tiny, make_batch):
    """A sample flagged has_s1=False gives the same output as the sample without S1 at all."""
    full = make_batch(b=2)
    full["has_s1"] = torch.tensor([True, False])
    full["s1"][1] = 123.0  # garbage where absent must not matter
    without = {k: v for k, v in full.items() if not k.startswith(("s1", "has_s1"))}
    with torch.no_grad():
        a = tiny(full)["embedding"][1]
        b = tiny(without)["embedding"][1]
    assert torch.allclose(a, b, atol=1e-5)
    # invalid dates are masked too
    full2 = make_batch(b=1)
    full2["s2_valid"][0, 1:] = False
    full2["s2"][0, 1:] = -50.0
    one = dict(
        full2,
        s2=full2["s2"][:, :1],
        s2_doy=full2["s2_doy"][:, :1],
        s2_valid=full2["s2_valid"][:, :1],
    )
    with torch.no_grad():
        assert torch.allclose(tiny(full2)["embedding"], tiny(one)["embedding"], atol=1e-5)


def test_gradients_reach_every_parameter_and_not_prototypes(make_batch):
    torch.manual_seed(0)
    model = create_model("skysense-tiny", sentinel_px=4)
    out = model(make_batch(b=2), update_prototypes=True)
    loss = out["embedding"].square().mean() + sum(
        out[m].square().mean() for m in ("hr", "s2", "s1", "dem")
    )
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert missing == []
    assert not model.geo_context.prototypes.requires_grad
    assert "geo_context.prototypes" in dict(model.named_buffers())


def test_prototype_update_moves_only_batch_regions(make_batch):
    torch.manual_seed(0)
    model = create_model("skysense-tiny", sentinel_px=4)
    batch = make_batch(b=2)
    batch["region"] = torch.tensor([3, 3])
    before = model.geo_context.prototypes.clone()
    with torch.no_grad():
        model(batch, update_prototypes=True)
    after = model.geo_context.prototypes
    assert not torch.allclose(before[3], after[3])
    assert torch.equal(before[:3], after[:3]) and torch.equal(before[4:], after[4:])
    assert torch.allclose(after[3].norm(dim=-1), torch.ones(after.shape[1]), atol=1e-5)


def test_region_from_lat_lon(tiny, make_batch):
    batch = make_batch(b=2)
    del batch["region"]
    batch["lat"], batch["lon"] = torch.tensor([46.5, 45.0]), torch.tensor([7.0, 2.0])
    with torch.no_grad():
        assert tiny(batch)["embedding"].shape[0] == 2


def test_grad_checkpointing_same_result(make_batch):
    torch.manual_seed(0)
    model = create_model("skysense-tiny", sentinel_px=4)
    batch = make_batch(b=1)
    ref = model(batch)["embedding"]
    ref.sum().backward()
    g_ref = model.fusion.input_proj.weight.grad.clone()
    model.zero_grad()
    model.set_grad_checkpointing(True)
    out = model(batch)["embedding"]
    out.sum().backward()
    assert torch.allclose(ref, out, atol=1e-5)
    assert torch.allclose(g_ref, model.fusion.input_proj.weight.grad, atol=1e-4)


@pytest.mark.parametrize(
    "mutate,needle",
    [
        (lambda b: b.update(s2=b["s2"][:, :, :9]), "10"),
        (lambda b: b.update(s1=b["s1"][:, :, :1]), "2"),
        (lambda b: b.update(hr=b["hr"][:, :3]), "4"),
        (lambda b: b.update(hr=b["hr"][:, :, :64, :64]), "32x"),
        (lambda b: b.update(s2_doy=b["s2_doy"][:, :1]), "s2_doy"),
        (lambda b: b.update(region=torch.tensor([0, 9999])), "region"),
        (lambda b: [b.pop(k) for k in list(b) if k != "region"], "none of the modalities"),
    ],
)
def test_bad_inputs_raise_input_shape_error(tiny, mutate, needle, make_batch):
    batch = make_batch(b=2)
    mutate(batch)
    with pytest.raises(InputShapeError, match=needle):
        tiny(batch)


def test_sample_without_any_modality_is_an_error(tiny, make_batch):
    batch = make_batch(b=2, modalities=("s2",))
    batch["has_s2"] = torch.tensor([True, False])
    with pytest.raises(InputShapeError, match=r"samples \[1\]"):
        tiny(batch)


def test_presets_and_override_errors():
    assert {"skysense-huge", "skysense-base", "skysense-tiny"} <= set(PRESETS)
    with pytest.raises(PresetError, match="known presets"):
        create_model("skysense-giant")
    with pytest.raises(PresetError, match="unknown key"):
        create_model("skysense-tiny", vit_width=3)
    with pytest.raises(PresetError, match="wrong type"):
        create_model("skysense-tiny", vit_dim="wide")
    with pytest.raises(PresetError, match="divisible"):
        create_model("skysense-tiny", vit_heads=7)
    with pytest.raises(PresetError, match="hr_px"):
        create_model("skysense-tiny", hr_px=100)
    m = create_model("skysense-tiny", sentinel_px=12)
    assert m.spec.hr_px == 384 and m.spec.to_dict()["hr_depths"] == [2, 2, 6, 2]


def test_tiny_size_and_tied_widths():
    spec = PRESETS["skysense-tiny"]
    model = create_model("skysense-tiny")
    n = sum(p.numel() for p in model.parameters()) + model.geo_context.prototypes.numel()
    assert n < 10_000_000
    assert spec.hr_px == 32 * spec.sentinel_px
    assert model.s2_head.decoder[0].out_channels == 16 * spec.hr_width
    assert model.fusion.input_proj.in_features == spec.hr_width
    assert model.date_encoding.weight.shape == (365, spec.hr_width)
    assert model.hr_backbone.stages[2].blocks[5].norm3 is not None
    assert model.hr_backbone.stages[2].blocks[4].norm3 is None


def test_swin_cached_position_bias_follows_weight_updates():
    """Without autograd the CPB bias is cached; an in-place (EMA-like) update must refresh it,
    and the fused-kernel path must match the autograd path.
    """
    torch.manual_seed(0)
    swin = create_model("skysense-tiny", sentinel_px=4).hr_backbone
    x = torch.randn(2, 4, 128, 128)
    cpb = swin.stages[0].blocks[1].attn.w_msa.cpb_mlp  # a shifted block (masked windows)
    with torch.no_grad():
        before = swin(x)[0]
        cpb[2].weight.add_(0.5)
        after = swin(x)[0]
    with_grad = swin(x)[0]
    assert (before - after).abs().max() > 1e-3
    assert torch.allclose(after, with_grad, atol=1e-4)


def test_swin_after_inference_mode_still_trains_inputs_of_a_frozen_encoder():
    """Caches filled under ``torch.inference_mode`` must not leak inference tensors into a
    later autograd forward (frozen encoder, gradient wanted for the input).
    """
    torch.manual_seed(0)
    swin = create_model("skysense-tiny", sentinel_px=4).hr_backbone
    x = torch.randn(1, 4, 128, 128)
    with torch.inference_mode():
        ref = swin(x)[-1]
    swin.requires_grad_(False)
    x.requires_grad_(True)
    out = swin(x)[-1]
    out.square().sum().backward()
    assert torch.allclose(out.detach(), ref, atol=1e-5)
    assert x.grad is not None and x.grad.abs().sum() > 0
