"""Class maps from a task model: argmax of blended class probabilities, styled for GIS viewers.

A task model (``skysense finetune``) is served through the same sliding-window machinery as
embeddings (:func:`skysense.inference.predict.predict_scene`): its per-window output is the
``K`` class probabilities, blended across overlapping windows like embeddings are, and
:class:`ClassMapHead` turns the blend into class ids. The map is uint8 with nodata 255, a colour
table (``write_colormap``: QGIS and GDAL show the classes in their colours), the class names in
the band's ``classes`` tag (comma-separated, by id) and one ``class_<id>`` tag per class
(GeoTIFF keeps GDAL category names only in an ``.aux.xml`` sidecar, which this platform never
reads or writes). Optional probabilities go to a second GeoTIFF, one float32 band per class.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

MAX_CLASSES = 255  # 255 is nodata


def _rgb(colour: Sequence[Any]) -> tuple[int, int, int]:
    """One ``[r, g, b]`` entry of a task model's ``colours`` as an int triple."""
    if len(colour) != 3:
        raise ValueError(
            f"a class colour is [r, g, b], got {list(colour)!r} in config.json colours"
        )
    r, g, b = (int(v) for v in colour)
    return r, g, b


@dataclass
class ClassMapHead:
    """Argmax over ``K`` blended probabilities; ``classes`` (names) and ``colours`` (RGB) by id."""

    classes: list[str]
    colours: list[tuple[int, int, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not 0 < len(self.classes) <= MAX_CLASSES:
            raise ValueError(
                f"a uint8 class map holds 1..{MAX_CLASSES} classes, got {len(self.classes)}"
            )

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> ClassMapHead:
        """The head of a task model export's ``config.json`` (``classes``, ``colours``)."""
        return cls(
            classes=[str(c) for c in config["classes"]],
            colours=[_rgb(c) for c in config.get("colours") or []],
        )

    def classify(self, proba: np.ndarray) -> np.ndarray:
        """``K x H x W`` probabilities -> ``H x W`` uint8 class ids."""
        return proba.argmax(axis=0).astype(np.uint8)


def style_class_band(dst: Any, classes: Sequence[str], colours: Sequence[Sequence[int]]) -> None:
    """Class names (tags) and colour table of band 1 of an open uint8 dataset."""
    dst.set_band_description(1, "class")
    if classes:
        dst.update_tags(1, classes=",".join(classes))
        dst.update_tags(1, **{f"class_{i}": name for i, name in enumerate(classes)})
    if colours:
        table = {i: (0, 0, 0, 0) for i in range(256)}
        for i, rgb in enumerate(colours):
            table[i] = (int(rgb[0]), int(rgb[1]), int(rgb[2]), 255)
        dst.write_colormap(1, table)
