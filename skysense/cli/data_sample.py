"""``skysense data sample``: write the bundled synthetic multi-modal sample."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from skysense.cli.common import JsonOpt, ParamsOpt, SetOpt, emit_json, fail, load, out, user_errors


def register(group: typer.Typer) -> None:
    """Add ``sample`` to the ``data`` group."""

    @group.command("sample")
    def sample(
        out_dir: Annotated[
            Path | None, typer.Option("--out", help="output folder (default: paths.sample)")
        ] = None,
        params: ParamsOpt = None,
        set_: SetOpt = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Write synthetic multi-modal scenes (GeoTIFF), catalog.yaml and downstream sets.

        Reads data.seed and data.sample.* from params.yaml; writes OUT/catalog.yaml, OUT/s2, s1,
        hr, dem, labels rasters and OUT/downstream (classification, segmentation).
        """
        import time

        from skysense.data.synthetic.sample import write_sample

        cfg = load(params, set_)
        target = out_dir if out_dir is not None else cfg.paths.sample
        start = time.perf_counter()
        try:
            catalog = write_sample(target, cfg.data.sample, cfg.data.seed)
        except user_errors() as exc:
            fail(str(exc))
        files = [p for p in Path(target).rglob("*") if p.is_file()]
        summary = {
            "catalog": str(catalog),
            "downstream": str(Path(target) / "downstream"),
            "locations": cfg.data.sample.locations + cfg.data.sample.heldout_locations,
            "files": len(files),
            "bytes": sum(p.stat().st_size for p in files),
            "seconds": round(time.perf_counter() - start, 2),
            "seed": cfg.data.seed,
        }
        if as_json:
            emit_json(summary)
        else:
            out.print(
                f"wrote {summary['locations']} locations, {summary['files']} files "
                f"({summary['bytes'] / 1e6:.1f} MB) in {summary['seconds']} s\n"
                f"catalog: {catalog}\ndownstream: {summary['downstream']}",
                highlight=False,
                markup=False,
            )
