"""One-process DeepSpeed training for ZeRO stages 0-3: loss, checkpoints, exact resume, export,
the NaN guard. Runs in the test process (gloo, world size 1) on the fixture pre-trainer.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from skysense.core.errors import TrainingError
from skysense.models.export_format import ExportError
from skysense.training.checkpoints import list_tags, read_latest
from skysense.training.engine import Runtime, deepspeed_config, resolve_runtime
from skysense.training.export import consolidated_state_dict, encoder_prefix, export_checkpoint
from skysense.training.loop import train

sys.path.insert(0, str(Path(__file__).parent))
from fixture_pretrainer import TinyEncoder, TinyPretrainer, config_with, stack_samples, tiny_samples

from skysense.config import training_job

CPU = Runtime(device="cpu", backend="gloo", precision="fp32")


def _cfg(stage: int, steps: int = 6, **extra: object):
    sets = [
        f"train.zero_stage={stage}",
        f"train.steps={steps}",
        "train.checkpoint_every=3",
        "train.keep_checkpoints=1",
        "train.warmup_steps=1",
        "train.lr=0.02",
        "train.micro_batch=4",
    ] + [f"train.{k}={v}" for k, v in extra.items()]
    return config_with(sets)


def _run(cfg, out: Path, resume: bool = False, on_step=None, pretrainer=None):
    torch.manual_seed(0)
    return train(
        training_job(cfg),
        None,
        out,
        resume=resume,
        pretrainer=pretrainer or TinyPretrainer(),
        dataset=tiny_samples(),
        collate=stack_samples,
        on_step=on_step,
        track=False,
        show_progress=False,
    )


def test_runtime_and_deepspeed_config_come_from_params() -> None:
    cfg = config_with(["train.zero_stage=3", "train.grad_accum=2", "train.offload_optimizer=true"])
    runtime = resolve_runtime(cfg.train)
    assert (runtime.device, runtime.backend) == ("cpu", "gloo")  # no GPU on the test machine
    ds = deepspeed_config(cfg.train, runtime, world_size=2)
    assert ds["zero_optimization"]["stage"] == 3
    assert ds["zero_optimization"]["offload_optimizer"]["device"] == "cpu"
    assert ds["optimizer"]["params"]["torch_adam"] is False  # offload needs DeepSpeed's CPU Adam
    assert ds["train_batch_size"] == 4 * 2 * 2
    assert ds["gradient_clipping"] == 1.0 and ds["bf16"]["enabled"] is False
    bf16 = config_with(["train.precision=bf16"])
    assert deepspeed_config(bf16.train, resolve_runtime(bf16.train), 1)["bf16"]["enabled"] is True
    with pytest.raises(TrainingError, match="fp16"):
        resolve_runtime(config_with(["train.precision=fp16"]).train)
    with pytest.raises(TrainingError, match="device=cuda"):
        resolve_runtime(config_with(["train.device=cuda"]).train)
    with pytest.raises(TrainingError, match="offload_optimizer"):
        deepspeed_config(
            config_with(["train.zero_stage=0", "train.offload_optimizer=true"]).train, CPU, 1
        )


class _Crash(Exception):
    pass


def _crash_at(step_to_crash: int):
    def hook(step: int, metrics: dict[str, float]) -> None:
        if step == step_to_crash:
            raise _Crash

    return hook


@pytest.mark.parametrize("stage", [0, 1, 2, 3])
def test_stage_trains_checkpoints_resumes_exactly_and_exports(stage: int, tmp_path: Path) -> None:
    full = _run(_cfg(stage), tmp_path / "full")
    assert full.steps == 6
    assert full.losses[-1] < 0.6 * full.losses[0]
    assert list_tags(tmp_path / "full") == ["step-00000006"]  # keep_checkpoints=1
    assert read_latest(tmp_path / "full") == "step-00000006"

    # export: the EMA teacher (default) only, fp32, equal outputs to the engine's teacher
    weights = load_file(str(tmp_path / "full" / "export" / "model.safetensors"))
    assert weights and all(not k.startswith(("teacher", "student", "head")) for k in weights)
    encoder = TinyEncoder()
    encoder.load_state_dict(weights, strict=True)
    batch = stack_samples(tiny_samples(4, seed=9))
    engine = full.engine
    engine.module.eval()
    with torch.no_grad():
        expected = engine.module.teacher(batch)
        student_out = engine.module.student(batch)
        got = encoder.eval()(batch)
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=0)
    assert (
        student_out - expected
    ).abs().max() > 1e-4  # the teacher lags the student: not the same weights
    # train.export_encoder: student writes the optimised weights instead
    export_checkpoint(
        tmp_path / "full" / "step-00000006",
        tmp_path / "student-export",
        pretrainer=engine.module,
        preset=_cfg(stage).model.preset,
        overrides=_cfg(stage).model.overrides,
        chips_dir=None,
        step=6,
        encoder="student",
    )
    encoder.load_state_dict(
        load_file(str(tmp_path / "student-export" / "model.safetensors")), strict=True
    )
    with torch.no_grad():
        torch.testing.assert_close(encoder(batch), student_out, atol=1e-6, rtol=0)
    assert (
        json.loads((tmp_path / "student-export" / "config.json").read_text())["encoder"]
        == "student"
    )
    with pytest.raises(ExportError, match="export_encoder"):
        encoder_prefix(engine.module, "ema")

    # crash after the step-3 checkpoint, resume: same final weights as the uninterrupted run
    crashed = tmp_path / "crashed"
    with pytest.raises(_Crash):
        _run(_cfg(stage, keep_checkpoints=2), crashed, on_step=_crash_at(5))
    assert read_latest(crashed) == "step-00000003"
    resumed = _run(_cfg(stage, keep_checkpoints=2), crashed, resume=True)
    assert resumed.steps == 6 and len(resumed.losses) == 3
    torch.testing.assert_close(resumed.losses, full.losses[3:], atol=1e-6, rtol=0)
    a = consolidated_state_dict(tmp_path / "full" / "step-00000006")
    b = consolidated_state_dict(crashed / "step-00000006")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(b[key], a[key], atol=1e-6, rtol=0, msg=key)


def test_fresh_run_refuses_a_folder_with_checkpoints(tmp_path: Path) -> None:
    _run(_cfg(2, steps=3), tmp_path)
    with pytest.raises(TrainingError, match="--resume"):
        _run(_cfg(2, steps=3), tmp_path)


class _NanAfter(TinyPretrainer):
    def __init__(self, calls: int) -> None:
        super().__init__()
        self.calls, self.limit = 0, calls

    def forward(self, batch):  # type: ignore[override]
        out = super().forward(batch)
        self.calls += 1
        if self.calls > self.limit:
            out["loss"] = out["loss"] * float("nan")
        return out


def test_nan_loss_stops_with_training_error_and_keeps_last_good_checkpoint(tmp_path: Path) -> None:
    cfg = _cfg(2, steps=8, keep_checkpoints=3)
    torch.manual_seed(0)
    with pytest.raises(TrainingError, match="non-finite loss at step 5"):
        _run(cfg, tmp_path, pretrainer=_NanAfter(calls=4))
    assert read_latest(tmp_path) == "step-00000003"
    assert list_tags(tmp_path) == ["step-00000003"]
    assert not list(tmp_path.glob(".tmp-*"))
    state = consolidated_state_dict(tmp_path / "step-00000003")
    assert all(torch.isfinite(v).all() for v in state.values())


def test_ema_teacher_agrees_across_stage2_and_stage3_with_and_without_persistence(
    tmp_path: Path,
) -> None:
    runs = {
        "s2": _run(_cfg(2, steps=4), tmp_path / "s2"),
        "s3": _run(_cfg(3, steps=4), tmp_path / "s3"),  # small params persist whole
        "s3-split": _run(_cfg(3, steps=4, zero3_persistence_threshold=0), tmp_path / "s3-split"),
    }
    for name in ("s3", "s3-split"):
        torch.testing.assert_close(runs[name].losses, runs["s2"].losses, atol=1e-5, rtol=1e-5)
    states = {k: consolidated_state_dict(r.checkpoint) for k, r in runs.items()}
    teacher = [k for k in states["s2"] if k.startswith("teacher.")]
    assert teacher
    for key in teacher:
        for name in ("s3", "s3-split"):
            torch.testing.assert_close(
                states[name][key], states["s2"][key], atol=1e-6, rtol=1e-5, msg=key
            )
    student_key = "student." + teacher[0][len("teacher.") :]
    assert not torch.equal(
        states["s2"][teacher[0]], states["s2"][student_key]
    )  # it lags the student


def test_loader_workers_give_the_same_order_and_resume_exactly(tmp_path: Path) -> None:
    full = _run(_cfg(2), tmp_path / "inline")
    crashed = tmp_path / "workers"
    with pytest.raises(_Crash):
        _run(_cfg(2, num_workers=1, keep_checkpoints=2), crashed, on_step=_crash_at(5))
    resumed = _run(_cfg(2, num_workers=1, keep_checkpoints=2), crashed, resume=True)
    torch.testing.assert_close(resumed.losses, full.losses[3:], atol=1e-6, rtol=0)
    a = consolidated_state_dict(tmp_path / "inline" / "step-00000006")
    b = consolidated_state_dict(crashed / "step-00000006")
    for key in a:
        torch.testing.assert_close(b[key], a[key], atol=1e-6, rtol=0, msg=key)


def test_training_reads_only_the_configured_modalities(tmp_path: Path) -> None:
    """``model.modalities`` limits what pre-training reads from the chips (as evaluation does)."""
    from chips_fixture import write_tiny_chips

    from skysense.training.loop import chip_dataset

    chips = write_tiny_chips(tmp_path / "chips", n=2)
    every = chip_dataset(training_job(config_with([])), chips, TinyPretrainer())[0]
    assert {"hr", "s2", "s1", "dem"} <= set(every)
    some = chip_dataset(
        training_job(config_with(["model.modalities=[s2, s1]"])), chips, TinyPretrainer()
    )[0]
    assert {"s2", "s1", "s2_doy", "s1_valid"} <= set(some) and not {"hr", "dem"} & set(some)
