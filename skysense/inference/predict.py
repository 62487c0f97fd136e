"""Sliding-window inference over a scene of any size, written as a Cloud-Optimised GeoTIFF.

The output is produced block by block (blocks = the GeoTIFF's 256 px tiles): for each block the
windows that cover it are embedded (a cache keeps those shared with the next block of the row;
those shared with the next row of blocks are recomputed), blended with
:func:`~skysense.inference.windows.blend_weights`, masked where the S2 input was
nodata on every date, and written. Memory depends on the window, block and embedding sizes, not
on the scene size. With a probe head (``.npz``: ``weight`` K x D, ``bias`` K, optional
``mean``/``std`` D, ``classes``) the output is a class map (uint8, nodata 255) instead; with a
task model the windows' class probabilities are blended and a :class:`~skysense.inference.
class_map.ClassMapHead` writes the class map with its colour table (and, on request, the
probabilities as a second COG).

The blocks go to a hidden tiled GeoTIFF beside the output, which is then copied into a COG with
overviews (:func:`skysense.core.cog.write_cog`: ``average`` for embeddings, ``mode`` for class
maps by default), checked with ``rio_cogeo.cog_validate`` and only then moved into place. With a
:class:`~skysense.inference.stac_item.ModelIdentity` a STAC item (``<stem>.json``) is written
beside it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio._err import CPLE_BaseError
from rich.progress import Progress

from skysense.core.cog import check_cog, write_cog
from skysense.core.errors import RasterWriteError
from skysense.inference.class_map import ClassMapHead, style_class_band
from skysense.inference.outputs import (
    PredictOutputError,
    partial_path,
    refuse_input_as_output,
    replacing,
)
from skysense.inference.scene import PredictInputError, Scene
from skysense.inference.stac_item import (
    InputRaster,
    ModelIdentity,
    item_path,
    prediction_item,
    write_item,
)
from skysense.inference.windows import WindowGrid, blend_weights, output_blocks

EmbedFn = Callable[[dict[str, np.ndarray]], np.ndarray]
CLASS_NODATA = 255


@dataclass
class PredictionSummary:
    """What was written."""

    output: Path
    width: int
    height: int
    bands: int
    windows: int
    windows_computed: int
    seconds: float
    km2: float
    cog_seconds: float = 0.0
    item: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in self.__dict__.items()}


@dataclass
class ProbeHead:
    """A linear head on per-pixel embeddings: class = argmax(W @ ((e - mean) / std) + b)."""

    weight: np.ndarray
    bias: np.ndarray
    mean: np.ndarray | None = None
    std: np.ndarray | None = None
    classes: list[str] | None = None

    def __post_init__(self) -> None:
        if (self.mean is None) != (self.std is None):
            raise ValueError(
                "a probe head normalises with both mean and std or neither; "
                "re-save the head (skysense evaluate) with both"
            )

    @classmethod
    def load(cls, path: str | Path) -> ProbeHead:
        """Read a head saved by ``skysense evaluate`` (``seg_head.npz``)."""
        data = np.load(path, allow_pickle=False)
        return cls(
            weight=data["weight"].astype(np.float32),
            bias=data["bias"].astype(np.float32),
            mean=data["mean"].astype(np.float32) if "mean" in data else None,
            std=data["std"].astype(np.float32) if "std" in data else None,
            classes=[str(c) for c in data["classes"]] if "classes" in data else None,
        )

    def classify(self, emb: np.ndarray) -> np.ndarray:
        """``D x H x W`` embeddings -> ``H x W`` uint8 class ids."""
        d, h, w = emb.shape
        x = emb.reshape(d, -1).T
        if self.mean is not None and self.std is not None:  # both or neither (__post_init__)
            x = (x - self.mean) / np.maximum(self.std, 1e-6)
        logits = x @ self.weight.T + self.bias
        return logits.argmax(axis=1).astype(np.uint8).reshape(h, w)


def _stack(items: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {k: np.concatenate([it[k] for it in items], axis=0) for k in items[0]}


def predict_scene(
    scene: Scene,
    embed: EmbedFn,
    output: str | Path,
    *,
    window: int = 64,
    overlap: int = 16,
    batch_size: int = 4,
    output_dtype: str = "float32",
    head: ProbeHead | ClassMapHead | None = None,
    block: int = 256,
    progress: bool = True,
    probabilities: str | Path | None = None,
    overview_resampling: str | None = None,
    model: ModelIdentity | None = None,
    item_id: str | None = None,
) -> PredictionSummary:
    """Embed ``scene`` window by window and write the blended result to ``output`` (GeoTIFF).

    Args:
        scene: the opened inputs (grid of the first S2 raster).
        embed: ``arrays -> B x D x window x window`` (e.g.
            :func:`skysense.registry.model_loading.encoder_embedder`).
        output: GeoTIFF path; tiled (``block`` px), deflate-compressed, same CRS and transform.
            Written to a hidden temporary file beside it and moved into place when complete
            (an existing output is replaced only then); never one of the scene's inputs.
        window: window side, 10 m pixels.
        overlap: pixels shared by neighbouring windows.
        batch_size: windows per call of ``embed``.
        output_dtype: ``float32`` for embeddings (``float16`` is refused: rasterio 1.4 cannot
            write it); class maps are uint8.
        head: probe head (on embeddings) or class-map head (on a task model's probabilities);
            when given the output is a class map.
        probabilities: with a head, also write the blended per-class values (a task model's
            probabilities) to this GeoTIFF, one float32 band per class (nodata NaN).
        block: output block and tile side (multiple of 16).
        progress: show a progress bar (stderr).
        overview_resampling: resampling of the COG overviews; default ``average`` for
            embeddings, ``mode`` for class maps.
        model: the model that made the prediction; when given, a STAC item is written beside
            ``output`` (``<stem>.json``).
        item_id: the item's id (default: the output's stem).

    Raises:
        OutputIsInputError: ``output`` is one of the scene's input files.
        PredictOutputError: the output cannot be written (the file is named).
    """
    if head is None and output_dtype != "float32":
        raise PredictInputError(
            f"predict.output_dtype={output_dtype!r}: rasterio {rasterio.__version__} cannot write "
            "Float16 GeoTIFFs; set predict.output_dtype=float32"
        )
    start = time.perf_counter()
    grid = WindowGrid(scene.height, scene.width, window, overlap)
    weights = blend_weights(window, overlap)
    blocks = output_blocks(scene.height, scene.width, block)
    cache: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
    computed = 0
    output = Path(output)
    refuse_input_as_output(output, scene.input_paths())
    if probabilities is not None:
        if head is None:
            raise PredictInputError(
                "--probabilities needs a class map: pass a task model (or --head)"
            )
        probabilities = Path(probabilities)
        refuse_input_as_output(probabilities, [*scene.input_paths(), output])
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PredictOutputError(
            f"{output}: cannot create its folder ({exc.strerror}); "
            "choose a writable --output location"
        ) from None
    dst = None
    proba_dst = None

    def compute(origins: list[tuple[int, int]]) -> None:
        nonlocal computed, dst
        for i in range(0, len(origins), batch_size):
            part = origins[i : i + batch_size]
            arrays = [scene.read_window(r, c, window) for r, c in part]
            emb = embed(_stack(arrays))
            for (r, c), e, a in zip(part, emb, arrays):
                valid = np.isfinite(a["s2"][0]).all(axis=1).any(axis=0)  # any date with all bands
                cache[(r, c)] = (e.astype(np.float32, copy=False), valid)
            computed += len(part)

    resampling = overview_resampling or ("mode" if head is not None else "average")
    cog_seconds = 0.0
    proba_out = Path(probabilities) if probabilities is not None else None
    with ExitStack() as extra:  # the probabilities' COG: moved into place after the class map's
        proba_partial = extra.enter_context(replacing(proba_out)) if proba_out else None
        with replacing(output) as partial:
            # the tiled GeoTIFFs the blocks go to, then copied into the COGs
            staging = partial_path(output)
            proba_staging = partial_path(proba_out) if proba_out else None
            try:
                with (
                    rasterio.Env(GDAL_CACHEMAX=64),
                    Progress(disable=not progress, transient=True) as bar,
                    ExitStack() as opened,
                ):
                    task = bar.add_task(f"predict {output.name}", total=len(blocks))
                    for r0, r1, c0, c1 in blocks:
                        origins = grid.covering(r0, r1, c0, c1)
                        compute([o for o in origins if o not in cache])
                        depth = cache[origins[0]][0].shape[0]  # every block has a window
                        acc = np.zeros((depth, r1 - r0, c1 - c0), dtype=np.float32)
                        wsum = np.zeros((r1 - r0, c1 - c0), dtype=np.float32)
                        valid_any = np.zeros((r1 - r0, c1 - c0), dtype=bool)
                        for r, c in origins:
                            emb, valid = cache[(r, c)]
                            # intersection of the window with the block, in both frames
                            ir0, ir1 = max(r, r0), min(r + window, r1, scene.height)
                            ic0, ic1 = max(c, c0), min(c + window, c1, scene.width)
                            wr, wc = slice(ir0 - r, ir1 - r), slice(ic0 - c, ic1 - c)
                            br, bc = slice(ir0 - r0, ir1 - r0), slice(ic0 - c0, ic1 - c0)
                            w = weights[wr, wc]
                            acc[:, br, bc] += emb[:, wr, wc] * w
                            wsum[br, bc] += w
                            valid_any[br, bc] |= valid[wr, wc]
                        blended = acc / np.maximum(wsum, 1e-12)
                        if dst is None:
                            with _output_errors(output, "create"):
                                dst = _open_output(
                                    staging, scene, head, blended.shape[0], output_dtype, block
                                )
                            opened.callback(_close_output, dst, output)
                            if proba_staging is not None and proba_out is not None:
                                with _output_errors(proba_out, "create"):
                                    proba_dst = _open_output(
                                        proba_staging,
                                        scene,
                                        None,
                                        blended.shape[0],
                                        "float32",
                                        block,
                                    )
                                classes = getattr(head, "classes", None) or []
                                for i, name in enumerate(classes[: blended.shape[0]]):
                                    proba_dst.set_band_description(i + 1, f"p_{name}")
                                opened.callback(_close_output, proba_dst, proba_out)
                        win = rasterio.windows.Window(c0, r0, c1 - c0, r1 - r0)
                        if head is not None:
                            data = head.classify(blended)[None]
                            data[:, ~valid_any] = CLASS_NODATA
                            if proba_dst is not None and proba_out is not None:
                                values = blended.copy()
                                values[:, ~valid_any] = np.nan
                                with _output_errors(proba_out, "write"):
                                    proba_dst.write(values, window=win)
                        else:
                            blended[:, ~valid_any] = np.nan
                            data = blended.astype(output_dtype)
                        with _output_errors(output, "write"):
                            dst.write(data, window=win)
                        # keep only the windows the next block of this row shares (one column)
                        for key in [k for k in cache if k[1] + window <= c1 or c1 >= scene.width]:
                            del cache[key]
                        bar.advance(task)
                cog_start = time.perf_counter()
                try:
                    write_cog(staging, partial, overview_resampling=resampling, blocksize=block)
                    check_cog(partial)
                except RasterWriteError as exc:
                    raise PredictOutputError(f"{output}: {exc}") from None
                if proba_staging is not None and proba_partial is not None:
                    try:
                        write_cog(
                            proba_staging,
                            proba_partial,
                            overview_resampling="average",
                            blocksize=block,
                        )
                        check_cog(proba_partial)
                    except RasterWriteError as exc:
                        raise PredictOutputError(f"{proba_out}: {exc}") from None
                cog_seconds = time.perf_counter() - cog_start
            finally:
                staging.unlink(missing_ok=True)
                if proba_staging is not None:
                    proba_staging.unlink(missing_ok=True)
    item = None
    if model is not None:
        item = item_path(output)
        write_item(
            prediction_item(
                output,
                item_id or output.stem,
                model,
                scene_inputs(scene),
                kind="classes" if head is not None else "embedding",
                classes=head.classes if head is not None else None,
            ),
            item,
        )
    px_km2 = abs(scene.ref.transform.a * scene.ref.transform.e) / 1e6
    return PredictionSummary(
        output=output,
        width=scene.width,
        height=scene.height,
        bands=1 if head is not None else int(acc.shape[0]) if acc is not None else 0,
        windows=len(grid),
        windows_computed=computed,
        seconds=time.perf_counter() - start,
        km2=scene.width * scene.height * px_km2,
        cog_seconds=cog_seconds,
        item=item,
    )


def scene_inputs(scene: Scene) -> list[InputRaster]:
    """Every raster of ``scene`` with its modality and date, for the STAC item."""
    return [
        InputRaster(modality, lay.raster.path, lay.raster.date)
        for modality, layers in scene.layers.items()
        for lay in layers
    ]


@contextmanager
def _output_errors(output: Path, action: str) -> Iterator[None]:
    """GDAL/OS errors while writing the output -> :class:`PredictOutputError` naming it."""
    try:
        yield
    except (OSError, rasterio.errors.RasterioError, CPLE_BaseError) as exc:
        raise PredictOutputError(
            f"{output}: cannot {action} the prediction GeoTIFF ({exc}); check that its folder "
            "is writable and has free space"
        ) from None


def _close_output(dst: rasterio.io.DatasetWriter, output: Path) -> None:
    """Close (flush) the output dataset; errors name ``output``."""
    with _output_errors(output, "finish"):
        dst.close()


def _open_output(
    output: Path,
    scene: Scene,
    head: ProbeHead | ClassMapHead | None,
    bands: int,
    output_dtype: str,
    block: int,
) -> rasterio.io.DatasetWriter:
    """Create the tiled, compressed output GeoTIFF on the scene's grid."""
    profile = {
        "driver": "GTiff",
        "width": scene.width,
        "height": scene.height,
        "crs": scene.ref.crs,
        "transform": scene.ref.transform,
        "tiled": True,
        "blockxsize": block,
        "blockysize": block,
        "compress": "deflate",
        "zlevel": 1,  # a staging file, read once by the COG copy
        "BIGTIFF": "IF_SAFER",
    }
    if head is not None:
        profile.update(count=1, dtype="uint8", nodata=CLASS_NODATA)
    else:
        profile.update(
            count=bands, dtype=output_dtype, nodata=float("nan"), predictor=3, interleave="pixel"
        )
    dst = rasterio.open(output, "w", **profile)
    if head is not None:
        style_class_band(dst, head.classes or [], getattr(head, "colours", None) or [])
    else:
        for i in range(bands):
            dst.set_band_description(i + 1, f"embedding_{i:03d}")
    return dst
