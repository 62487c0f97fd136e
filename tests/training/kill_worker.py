"""Worker of the kill-and-resume test: one process that SIGKILLs itself after a given step."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from fixture_pretrainer import TinyPretrainer, config_with, stack_samples, tiny_samples

from skysense.config import training_job
from skysense.training.loop import train


def main() -> None:
    out, stage, kill_at, resume = (
        Path(sys.argv[1]),
        int(sys.argv[2]),
        int(sys.argv[3]),
        sys.argv[4] == "1",
    )
    cfg = config_with(
        [
            f"train.zero_stage={stage}",
            "train.steps=8",
            "train.checkpoint_every=3",
            "train.warmup_steps=2",
            "train.lr=0.02",
            "train.micro_batch=3",
        ],
    )

    def hook(step: int, metrics: dict) -> None:
        if step == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    torch.manual_seed(0)
    train(
        training_job(cfg),
        None,
        out,
        resume=resume,
        pretrainer=TinyPretrainer(),
        dataset=tiny_samples(11),
        collate=stack_samples,
        on_step=hook,
        track=False,
        show_progress=False,
    )


if __name__ == "__main__":
    main()
