"""Entry point of one rank of a fine-tuning job: ``python -m skysense.cli.finetune_worker``.

Started by :func:`skysense.finetuning.launch.run_job` (torchrun, N local processes) with the
``job.json`` it wrote in the checkpoints folder, or by an external launcher with the same
arguments on every rank.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from skysense.cli.process_env import set_process_defaults

set_process_defaults()  # a rank's entry point: before torch is imported

from skysense.core.errors import SkySenseError
from skysense.finetuning.job import FinetuneJob
from skysense.finetuning.loop import finetune_rank
from skysense.training.launch import WORKER_EXIT


def main(argv: list[str] | None = None) -> int:
    """Fine-tune as one rank; returns the exit status (``WORKER_EXIT`` on a SkySenseError)."""
    parser = argparse.ArgumentParser(prog="skysense.cli.finetune_worker", description=__doc__)
    parser.add_argument("--job", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--export", type=Path, default=None)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--stop-after", type=int, default=None)
    parser.add_argument(
        "--local_rank", "--local-rank", type=int, default=None, help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    rank = os.environ.get("RANK", "0")
    try:
        job = FinetuneJob.model_validate_json(args.job.read_text())
        finetune_rank(
            job, args.out, resume=args.resume, export_dir=args.export, stop_after=args.stop_after
        )
    except SkySenseError as exc:
        sys.stderr.write(f"rank {rank}: {type(exc).__name__}: {exc}\n")
        (args.out / f"failed-rank{rank}.txt").write_text(str(exc))
        return WORKER_EXIT
    return 0


if __name__ == "__main__":
    sys.exit(main())
