"""The key names and shapes of the official SkySense release, written from its module
definitions (mmcls Swin V2 ``backbone_gep``, mmseg ViT ``backbone_s2``/``backbone_s1``, the
``decoder.0`` lifting heads, the fusion ``TransformerEncoder`` with ``porj_linear``, ``ctpe``),
for tests that build them on the meta device or as small random tensors; nothing is downloaded.

:func:`official_names` gives the combined form; :func:`split_release` the per-module files
(HR with a ``backbone.`` prefix, bare ViTs, the S2 file holding ``ctpe``, bare heads and fusion).
"""

from __future__ import annotations


def official_names(spec) -> dict[str, tuple[int, ...]]:
    """Names and shapes of the release, written from its mmcls/mmseg module layout."""
    sd: dict[str, tuple[int, ...]] = {}
    c = spec.hr_embed_dim
    sd["backbone_gep.patch_embed.projection.weight"] = (c, 3, 4, 4)  # the release is RGB
    sd["backbone_gep.patch_embed.projection.bias"] = (c,)
    sd["backbone_gep.patch_embed.norm.weight"] = sd["backbone_gep.patch_embed.norm.bias"] = (c,)
    sd["backbone_gep.mask_token"] = (1, 1, c)
    for i, (depth, heads) in enumerate(zip(spec.hr_depths, spec.hr_heads)):
        d = c * 2**i
        st = f"backbone_gep.stages.{i}"
        if i:
            sd[f"{st}.downsample.reduction.weight"] = (d, 2 * d)
            sd[f"{st}.downsample.norm.weight"] = sd[f"{st}.downsample.norm.bias"] = (d,)
        for j in range(depth):
            b = f"{st}.blocks.{j}"
            w = f"{b}.attn.w_msa"
            sd.update(
                {
                    f"{w}.logit_scale": (heads, 1, 1),
                    f"{w}.cpb_mlp.0.weight": (spec.hr_cpb_hidden, 2),
                    f"{w}.cpb_mlp.0.bias": (spec.hr_cpb_hidden,),
                    f"{w}.cpb_mlp.2.weight": (heads, spec.hr_cpb_hidden),
                    f"{w}.qkv.weight": (3 * d, d),
                    f"{w}.q_bias": (d,),
                    f"{w}.v_bias": (d,),
                    f"{w}.proj.weight": (d, d),
                    f"{w}.proj.bias": (d,),
                    f"{w}.relative_coords_table": (1, 15, 15, 2),
                    f"{w}.relative_position_index": (64, 64),
                    f"{b}.ffn.layers.0.0.weight": (4 * d, d),
                    f"{b}.ffn.layers.0.0.bias": (4 * d,),
                    f"{b}.ffn.layers.1.weight": (d, 4 * d),
                    f"{b}.ffn.layers.1.bias": (d,),
                }
            )
            for n in ("norm1", "norm2") + (("norm3",) if (j + 1) % 6 == 0 else ()):
                sd[f"{b}.{n}.weight"] = sd[f"{b}.{n}.bias"] = (d,)
        sd[f"backbone_gep.norm{i}.weight"] = sd[f"backbone_gep.norm{i}.bias"] = (c * 2**i,)
    v = spec.vit_dim
    for name, bands in (("backbone_s2", 10), ("backbone_s1", 2)):
        sd[f"{name}.patch_embed.projection.weight"] = (v, bands, 4, 4)
        sd[f"{name}.patch_embed.projection.bias"] = (v,)
        sd[f"{name}.cls_token"] = (1, 1, v)
        sd[f"{name}.pos_embed"] = (1, 1 + (64 // 4) ** 2, v)  # released at 64 px
        for k in range(spec.vit_depth):
            sd.update(release_layer(f"{name}.layers.{k}", v, int(v * 4)))
    width = spec.hr_width
    for name in ("head_s2", "head_s1"):
        sd[f"{name}.decoder.0.weight"] = (16 * width, v, 1, 1)
        sd[f"{name}.decoder.0.bias"] = (16 * width,)
    f = spec.fusion_dim
    sd["fusion.porj_linear.weight"], sd["fusion.porj_linear.bias"] = (f, width), (f,)
    sd["fusion.cls_token"] = (1, 1, f)
    for k in range(spec.fusion_depth):
        sd.update(release_layer(f"fusion.layers.{k}", f, spec.fusion_ffn))
    sd["ctpe"] = (1, 365, width)
    return sd


def release_layer(prefix: str, d: int, hidden: int) -> dict[str, tuple[int, ...]]:
    return {
        f"{prefix}.ln1.weight": (d,),
        f"{prefix}.ln1.bias": (d,),
        f"{prefix}.ln2.weight": (d,),
        f"{prefix}.ln2.bias": (d,),
        f"{prefix}.attn.attn.in_proj_weight": (3 * d, d),
        f"{prefix}.attn.attn.in_proj_bias": (3 * d,),
        f"{prefix}.attn.attn.out_proj.weight": (d, d),
        f"{prefix}.attn.attn.out_proj.bias": (d,),
        f"{prefix}.ffn.layers.0.0.weight": (hidden, d),
        f"{prefix}.ffn.layers.0.0.bias": (hidden,),
        f"{prefix}.ffn.layers.1.weight": (d, hidden),
        f"{prefix}.ffn.layers.1.bias": (d,),
    }


#: Combined prefix -> per-module file name and the prefix its keys carry inside that file.
MODULE_FILES = {
    "backbone_gep.": ("skysense_model_backbone_hr.pth", "backbone."),
    "backbone_s2.": ("skysense_model_backbone_s2.pth", ""),
    "backbone_s1.": ("skysense_model_backbone_s1.pth", ""),
    "head_s2.": ("skysense_model_head_s2.pth", ""),
    "head_s1.": ("skysense_model_head_s1.pth", ""),
    "fusion.": ("skysense_model_fusion.pth", ""),
}


def split_release(combined: dict) -> dict[str, dict]:
    """The per-module files of a combined release: file name -> state dict (``ctpe`` goes in
    the S2 file, as released; the ``head_gep*`` pre-training heads are in no module file).
    """
    files: dict[str, dict] = {name: {} for name, _ in MODULE_FILES.values()}
    for key, value in combined.items():
        if key.startswith("head_gep"):
            continue  # pre-training heads: in the combined file only
        if key == "ctpe":
            files["skysense_model_backbone_s2.pth"]["ctpe"] = value
            continue
        for prefix, (name, inner) in MODULE_FILES.items():
            if key.startswith(prefix):
                files[name][inner + key[len(prefix) :]] = value
                break
        else:
            raise KeyError(f"{key} belongs to no released module")
    return files
