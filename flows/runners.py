"""Task runner for the fan-out over locations, chosen by ``pipeline.task_runner``.

- ``thread``: :class:`prefect.task_runners.ThreadPoolTaskRunner` (default; rasterio and numpy
  release the GIL on reads and array work);
- ``process``: :class:`prefect.task_runners.ProcessPoolTaskRunner`;
- ``dask``, or any runner when ``pipeline.dask_address`` is set: ``prefect_dask.DaskTaskRunner``
  on that scheduler (``tcp://host:8786``), or on a local cluster of ``max_workers`` workers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from prefect.task_runners import TaskRunner

    from skysense.config import PipelineConfig


def make_task_runner(pipeline: PipelineConfig) -> TaskRunner:
    """Build the task runner named by the pipeline settings.

    Args:
        pipeline: the ``pipeline`` section (``task_runner``, ``dask_address``, ``max_workers``).

    Returns:
        A fresh, not yet started Prefect task runner.
    """
    if pipeline.dask_address or pipeline.task_runner == "dask":
        from prefect_dask import DaskTaskRunner

        if pipeline.dask_address:
            return DaskTaskRunner(address=pipeline.dask_address)
        return DaskTaskRunner(
            cluster_kwargs={
                "n_workers": pipeline.max_workers,
                "threads_per_worker": 1,
                "processes": False,
                "dashboard_address": None,
            }
        )
    if pipeline.task_runner == "process":
        from prefect.task_runners import ProcessPoolTaskRunner

        return ProcessPoolTaskRunner(max_workers=pipeline.max_workers)
    from prefect.task_runners import ThreadPoolTaskRunner

    return ThreadPoolTaskRunner(max_workers=pipeline.max_workers)


def describe(pipeline: PipelineConfig) -> str:
    """One line naming the runner, for logs and artifacts."""
    if pipeline.dask_address:
        return f"dask ({pipeline.dask_address})"
    if pipeline.task_runner == "dask":
        return f"dask (local cluster, {pipeline.max_workers} workers)"
    return f"{pipeline.task_runner} pool ({pipeline.max_workers} workers)"
