"""Entry point of one rank of a training job: ``python -m skysense.cli.train_worker``.

Started by :func:`skysense.training.launch.run_local` (torchrun, N local processes) with the
resolved params it wrote beside the checkpoints, or by an external launcher (``deepspeed
--hostfile``, multi-node ``torchrun``, the Kubernetes Job in ``infra/k8s/``) with
``--params P --chips D --out O``. It reads the params file (this is an edge: the library below
takes the :class:`~skysense.training.job.TrainingJob` built from it) and trains as one rank.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from skysense.cli.process_env import set_process_defaults

set_process_defaults()  # a rank's entry point: before torch is imported

from skysense.config import load_config, training_job
from skysense.core.errors import TrainingError
from skysense.training.launch import WORKER_EXIT
from skysense.training.loop import train


def main(argv: list[str] | None = None) -> int:
    """Train as one rank; returns the process exit status (``WORKER_EXIT`` on a TrainingError)."""
    parser = argparse.ArgumentParser(prog="skysense.cli.train_worker", description=__doc__)
    parser.add_argument("--params", type=Path, default=None)
    parser.add_argument("--set", action="append", default=[], dest="overrides")
    parser.add_argument("--chips", type=Path, default=None)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--export", type=Path, default=None)
    parser.add_argument("--resume", action="store_true")
    # The deepspeed launcher appends --local_rank=N (LOCAL_RANK is in the environment too).
    parser.add_argument(
        "--local_rank", "--local-rank", type=int, default=None, help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    job = training_job(load_config(args.params, args.overrides))
    rank = os.environ.get("RANK", "0")
    try:
        train(
            job,
            args.chips,
            args.out,
            resume=args.resume,
            show_progress=rank == "0",
            export_dir=args.export,
        )
    except TrainingError as exc:
        sys.stderr.write(f"rank {rank}: TrainingError: {exc}\n")
        (args.out / f"failed-rank{rank}.txt").write_text(str(exc))
        return WORKER_EXIT
    return 0


if __name__ == "__main__":
    sys.exit(main())
