"""Wall and CPU seconds per named step of a validation run (``validation.json: timings_s``).

Steps are named ``profile_*`` (rasterio profiling: ``profile_rasters`` the per-location
profiling, ``profile_merge`` the concatenation of its tables, ``profile_derived_columns`` the
per-row thresholds the raster suite reads) or ``gx_*`` (great-expectations: ``gx_context``,
``gx_<table>`` suite construction and checkpoint run, ``gx_docs``). ``bench/validate_throughput.py``
turns them into its figures.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class StepClock:
    """Wall and CPU seconds (all threads of the process) per named step of a run."""

    def __init__(self) -> None:
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        """Time the enclosed block as ``name`` (``profile_*`` or ``gx_*``)."""
        w0, c0 = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            self.wall[name] = time.perf_counter() - w0
            self.cpu[name] = time.process_time() - c0

    def record(self, name: str, wall: float, cpu: float) -> None:
        """Record a step timed elsewhere (profiling done by other workers)."""
        self.wall[name], self.cpu[name] = wall, cpu

    def summary(self) -> dict[str, Any]:
        """Step wall times, the profiling and GX totals (``profiling_s``, ``gx_s``), and the same
        totals in CPU seconds (``cpu_*``; per step under ``cpu``: less sensitive to other
        processes on a shared machine).
        """
        out: dict[str, Any] = {k: round(v, 4) for k, v in self.wall.items()}
        for prefix, times in (("", self.wall), ("cpu_", self.cpu)):
            out[f"{prefix}profiling_s"] = round(
                sum(v for k, v in times.items() if k.startswith("profile_")), 4
            )
            out[f"{prefix}gx_s"] = round(sum(v for k, v in times.items() if k.startswith("gx_")), 4)
        out["cpu"] = {k: round(v, 4) for k, v in self.cpu.items()}
        return out
