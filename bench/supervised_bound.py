"""Sanity of the downstream task: the encoder trained *with labels* on the pre-training places,
probed on held-out places like the pre-trained one, beside the random-init twin and the raw
spectra.

    python bench/supervised_bound.py                               # data.sample places, 200 steps
    python bench/supervised_bound.py --places 12 --steps 300
    python bench/supervised_bound.py --steps 40 --freeze hr_backbone,s2_backbone,s1_backbone

The labels are the pre-training places' label rasters (the catalog's ``labels``): by default
every position of the encoder's embedding map is supervised with the class of its pixel (a
linear head on each position, cross-entropy, unlabelled pixels ignored); ``--no-dense`` gives
each chip the dominant class of its footprint instead, on the mean-pooled embedding (AdamW,
warm-up + cosine, grad clip; batch ``micro_batch x nproc``). No
self-supervised objective is expected to beat this with the same data and steps, so it is the
test of the *world*: a task that can measure pre-training must let the supervised bound beat
the random-init twin (same preset, same inputs, same probes, random weights) by at least 15
points (``--target``); if it does not, the task cannot measure pre-training. The raw-spectra
baseline (date x band means of each chip, no encoder) says what the inputs already give.

Prints the table of ``bench/gain_protocol.py`` (k labelled samples per class, mean +- spread over
the draws; linear, k-NN, segmentation), the trained head's own accuracy on the held-out chips
(the decision learnt on the pre-training places, applied to new ones, no probe), and whether the
bound clears the twin at 5 labels per class and with all labels.

Measured: see the README ("Does pre-training help?") for the current figures and their sizes.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import gain_protocol as protocol

from skysense.config import apply_overrides, config_from_dict, training_job
from skysense.data.synthetic.landcover import CLASS_NAMES


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The bench's options (places, steps, augmentation, target, overrides)."""
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--set", action="append", default=[], dest="overrides", help="dotted config k=v")
    p.add_argument("--places", type=int, default=None, help="pre-training places")
    p.add_argument("--heldout", type=int, default=None, help="held-out places")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--freeze", default="", help="comma-separated encoder children kept at init")
    p.add_argument(
        "--augment",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="train on one random view per chip (train.augment: crops, flips, spectral jitter, "
        "date subsets, modality dropout), as pre-training sees them",
    )
    p.add_argument(
        "--dense",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="supervise every position of the embedding map with the label raster (default); "
        "--no-dense: one dominant-class label per chip on the pooled embedding",
    )
    p.add_argument("--target", type=float, default=0.15, help="required gain over the twin")
    p.add_argument("--no-seg", action="store_true", help="skip the segmentation probes")
    p.add_argument("--work", type=Path, default=Path("/tmp/skysense-pretrain-gain"))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", type=Path, default=None)
    return p.parse_args(argv)


def chip_labels(chips: Path, catalog_path: Path, rows: list[dict]) -> np.ndarray:
    """Dominant class of each chip (``rows``: ChipDataset rows) in its place's label raster."""
    import pyarrow.parquet as pq
    import rasterio
    from rasterio.windows import from_bounds

    from skysense.data.catalog import load_catalog

    catalog = load_catalog(catalog_path)
    manifest = {r["sample_id"]: r for r in pq.read_table(chips / "manifest.parquet").to_pylist()}
    out = []
    for row in rows:
        m = manifest[row["sample_id"]]
        loc = catalog.location(m["location"])
        with rasterio.open(catalog.resolve(loc.labels)) as src:
            win = from_bounds(m["minx"], m["miny"], m["maxx"], m["maxy"], src.transform)
            lab = src.read(1, window=win.round_offsets().round_lengths())
        counts = np.bincount(lab[lab != 255].ravel(), minlength=256)
        out.append(int(counts.argmax()))
    return np.asarray(out)


def pixel_labels(chips: Path, catalog_path: Path, rows: list[dict], side: int) -> np.ndarray:
    """Class of every 10 m pixel of each chip (``rows``: ChipDataset rows), ``N x side x side``
    uint8, from its place's label raster (255: unlabelled).
    """
    import pyarrow.parquet as pq
    import rasterio
    from rasterio.enums import Resampling
    from rasterio.windows import from_bounds

    from skysense.data.catalog import load_catalog

    catalog = load_catalog(catalog_path)
    manifest = {r["sample_id"]: r for r in pq.read_table(chips / "manifest.parquet").to_pylist()}
    out = np.full((len(rows), side, side), 255, dtype=np.uint8)
    for i, row in enumerate(rows):
        m = manifest[row["sample_id"]]
        loc = catalog.location(m["location"])
        with rasterio.open(catalog.resolve(loc.labels)) as src:
            win = from_bounds(m["minx"], m["miny"], m["maxx"], m["maxy"], src.transform)
            out[i] = src.read(
                1,
                window=win,
                out_shape=(side, side),
                resampling=Resampling.mode,
                boundless=True,
                fill_value=255,
            )
    return out


def train_supervised(
    cfg: Any,
    chips: Path,
    sample: Path,
    steps: int,
    freeze: str = "",
    augment: bool = False,
    dense: bool = True,
) -> tuple[torch.nn.Module, torch.nn.Linear, list[float], float]:
    """The encoder and a linear head trained with the pre-training places' labels; returns
    ``(encoder, head, losses, seconds)``.

    ``dense`` (the default): cross-entropy of every position of the encoder's embedding map
    against the label raster resampled to that map (the most supervision the labels give);
    otherwise one label per chip (its dominant class) on the mean-pooled embedding. With
    ``augment`` each step sees one random view per chip (chip labels only: a crop moves pixels).
    """
    from skysense.data.dataset import collate_samples
    from skysense.models import create_model
    from skysense.models.augment import TwoViewAugment
    from skysense.training.loop import chip_dataset, seed_everything
    from skysense.training.schedule import WarmupCosineSchedule

    t = cfg.train
    seed_everything(t.seed)
    model = create_model(cfg.model.preset, **cfg.model.overrides)
    dataset = chip_dataset(training_job(cfg), chips, SimpleNamespace(student=model))
    if dense and augment:
        raise SystemExit("--augment needs --no-dense: a random crop moves the pixels' labels")
    if dense:
        side = int(model(collate_samples([dataset[0]]))["embedding"].shape[-1])
        labels = torch.from_numpy(
            pixel_labels(chips, sample / "catalog.yaml", dataset.rows, side).astype(np.int64)
        )
    else:
        labels = torch.from_numpy(chip_labels(chips, sample / "catalog.yaml", dataset.rows))
    for name in filter(None, freeze.split(",")):
        for p in getattr(model, name).parameters():
            p.requires_grad_(False)
    head = torch.nn.Linear(model.embed_dim, len(CLASS_NAMES))
    params = [p for p in model.parameters() if p.requires_grad] + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=t.lr, weight_decay=t.weight_decay)
    sched = WarmupCosineSchedule(
        opt, lr=t.lr, min_lr=t.min_lr, warmup_steps=t.warmup_steps, total_steps=steps
    )
    rng = np.random.default_rng(t.seed)
    views = TwoViewAugment(t.augment) if augment else None
    gen = torch.Generator().manual_seed(t.seed)
    batch_size = min(t.micro_batch * t.nproc, len(dataset))
    losses, start = [], time.perf_counter()
    model.train()
    for _ in range(steps):
        idx = rng.choice(len(dataset), batch_size, replace=False)
        batch = collate_samples([dataset[int(i)] for i in idx])
        if views is not None:
            batch = views(batch, generator=gen)[0]
        emb = model(batch)["embedding"]
        if dense:
            logits = head(emb.permute(0, 2, 3, 1))  # B x h x w x K
            loss = torch.nn.functional.cross_entropy(
                logits.permute(0, 3, 1, 2), labels[idx], ignore_index=255
            )
        else:
            loss = torch.nn.functional.cross_entropy(head(emb.mean((2, 3))), labels[idx])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, t.grad_clip or 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        sched.step()
        losses.append(float(loss.detach()))
    return model.eval(), head, losses, time.perf_counter() - start


def head_accuracy(cfg: Any, model: torch.nn.Module, head: torch.nn.Linear, sample: Path, stats):
    """The trained head's accuracy on the held-out classification chips (no probe)."""
    from skysense.data.downstream import load_downstream
    from skysense.evaluation.features import embed_samples

    held = load_downstream(sample / "downstream", "classification", n_regions=model.spec.n_regions)
    y = np.array([int(s["label"]) for s in held])
    feats, _ = embed_samples(model, held, stats, list(cfg.model.modalities), cfg.eval.batch_size)
    with torch.no_grad():
        return float((head(torch.from_numpy(feats)).argmax(1).numpy() == y).mean())


def sanity(table: dict[str, Any], target: float, name: str = "supervised") -> list[str]:
    """Lines saying whether ``name`` beats the twin by ``target`` (linear probe, 5 labels per
    class and all labels); with a plain-date twin beside the configured one, the stronger twin
    (the smaller gain) decides.
    """
    out = []
    for k in ("5", "all"):
        row = table.get(k, {}).get("linear_acc", {})
        gain = protocol.weakest_gain(row, name)
        if gain is None:
            continue
        g = gain["mean"]
        twin = max(row[t]["mean"] for t in ("random", "random_plain") if t in row)
        raw = row.get("raw_spectra", {}).get("mean", float("nan"))
        verdict = "PASS" if g >= target else "FAIL"
        out.append(
            f"{verdict} k={k}: {name} - twin = {g:+.3f} (target {target:+.2f}); "
            f"{name} {row[name]['mean']:.3f}, twin {twin:.3f}, raw spectra "
            f"{raw:.3f}"
        )
    return out


def main(argv: list[str] | None = None) -> dict:
    """Train with labels, probe, print the table with PASS/FAIL and return it."""
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    overrides = [*protocol.place_overrides(args.places, args.heldout), *args.overrides]
    cfg = config_from_dict(apply_overrides({}, overrides), "<bench>")
    t0 = time.perf_counter()
    sample, chips = protocol.prepare_data(cfg, args.work)
    data_s = time.perf_counter() - t0
    stats = json.loads((chips / "stats.json").read_text())
    model, head, losses, train_s = train_supervised(
        cfg, chips, sample, args.steps, args.freeze, args.augment, args.dense
    )
    t0 = time.perf_counter()
    encoders = {"supervised": model, **protocol.twins(cfg)}
    res = protocol.evaluate_table(cfg, encoders, sample, stats, not args.no_seg)
    eval_s = time.perf_counter() - t0
    head_acc = head_accuracy(cfg, model, head, sample, stats)
    n = res["n"]
    print(
        f"settings: {' '.join(overrides) or '(defaults)'}; supervised {args.steps} steps, loss "
        f"{losses[0]:.2f} -> {np.mean(losses[-10:]):.2f}; "
        f"labels: {'every pixel' if args.dense else 'one per chip'}; "
        f"frozen: {args.freeze or 'nothing'}; "
        f"augmented views: {'yes' if args.augment else 'no'}"
    )
    print(
        f"held-out: {n['classification']} classification chips from {n['locations']} places, "
        f"{n.get('segmentation', 0)} segmentation chips; {cfg.eval.draws} draws per k"
    )
    text = protocol.print_table(res, ["supervised", "random", "random_plain", "raw_spectra"])
    print(f"trained head on the held-out chips (no probe): {head_acc:.4f}")
    verdicts = sanity(res["table"], args.target)
    print("\n".join(verdicts))
    print(f"seconds: data {data_s:.0f}, train {train_s:.0f}, eval {eval_s:.0f}")
    result = {
        "settings": overrides,
        "steps": args.steps,
        "freeze": args.freeze,
        "dense": args.dense,
        "table": res["table"],
        "n": n,
        "text": text,
        "sanity": verdicts,
        "head_accuracy": head_acc,
        "loss_first": losses[0],
        "loss_last10": float(np.mean(losses[-10:])),
        "seconds": {"data": data_s, "train": train_s, "eval": eval_s},
    }
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, default=str))
    return result


if __name__ == "__main__":
    main()
