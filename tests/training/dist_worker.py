"""Worker of the two-process tests (run under torchrun): for each ZeRO stage given, an
uninterrupted run, a run that crashes after its first checkpoint, and its resume. Rank 0 writes
``result-s{stage}.json`` into the output folder; every rank writes the indices it was served.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from fixture_pretrainer import TinyEncoder, TinyPretrainer, config_with, stack_samples, tiny_samples

from skysense.config import training_job
from skysense.training.loop import train


class _Crash(Exception):
    pass


class RecordingDataset(list):
    """Samples that remember which indices were read."""

    def __init__(self, items: list) -> None:
        super().__init__(items)
        self.read: list[int] = []

    def __getitem__(self, i):  # type: ignore[override]
        self.read.append(int(i))
        return super().__getitem__(i)


def run(stage: int, out: Path, resume: bool = False, crash_at: int | None = None) -> tuple:
    cfg = config_with(
        [
            f"train.zero_stage={stage}",
            "train.steps=6",
            "train.checkpoint_every=3",
            "train.keep_checkpoints=2",
            "train.warmup_steps=1",
            "train.lr=0.02",
            "train.micro_batch=2",
        ],
    )

    def hook(step: int, metrics: dict) -> None:
        if crash_at is not None and step == crash_at:
            raise _Crash

    torch.manual_seed(0)
    data = RecordingDataset(tiny_samples(10))
    result = train(
        training_job(cfg),
        None,
        out,
        resume=resume,
        pretrainer=TinyPretrainer(),
        dataset=data,
        collate=stack_samples,
        on_step=hook,
        track=False,
        show_progress=False,
    )
    return result, data.read


def main() -> None:
    out = Path(sys.argv[1])
    stages = [int(s) for s in sys.argv[2].split(",")]
    rank = int(os.environ["RANK"])
    for stage in stages:
        full, read = run(stage, out / f"full-s{stage}")
        (out / f"read-s{stage}-rank{rank}.json").write_text(json.dumps(read))
        batch = stack_samples(tiny_samples(4, seed=9))
        full.engine.module.eval()
        with torch.no_grad():
            engine_out = full.engine.module.teacher(
                batch
            )  # the exported encoder; every rank: ZeRO-3 gathers
        try:
            run(stage, out / f"crashed-s{stage}", crash_at=5)
        except _Crash:
            pass
        resumed, _ = run(stage, out / f"crashed-s{stage}", resume=True)
        if rank == 0:
            from safetensors.torch import load_file

            encoder = TinyEncoder()
            encoder.load_state_dict(
                load_file(str(out / f"full-s{stage}" / "export" / "model.safetensors"))
            )
            with torch.no_grad():
                export_err = (encoder.eval()(batch) - engine_out).abs().max().item()
            (out / f"result-s{stage}.json").write_text(
                json.dumps(
                    {
                        "losses": full.losses,
                        "resumed_losses": resumed.losses,
                        "export_err": export_err,
                    }
                )
            )


if __name__ == "__main__":
    main()
