"""Scene catalog: the YAML file that lists locations and, per modality, their acquisitions.

Example (relative paths resolve against the catalog file's folder)::

    version: 1
    name: my-area
    locations:
      - id: zurich-01
        split: pretrain            # pretrain | heldout
        labels: labels/zurich-01.tif   # optional land-cover raster on the 10 m grid
        modalities:
          s2:
            sensor: sentinel2
            acquisitions:
              - date: 2023-04-02
                file: s2/zurich-01_20230402.tif   # one multi-band file ...
                band_names: [B02, B03, B04, B05, B06, B07, B08, B8A, B11, B12]
                mask: s2/zurich-01_20230402_cloud.tif  # optional cloud mask, 1 = cloud
              - date: 2023-05-12
                bands: {B02: s2/B02.tif, B03: s2/B03.tif}  # ... or one file per band
          s1:
            sensor: sentinel1
            acquisitions:
              - {date: 2023-04-05, file: s1/zurich-01_20230405.tif, band_names: [VV, VH]}
          hr:
            sensor: hr
            acquisitions: [{date: 2023-06-01, file: hr/zurich-01.tif}]
          dem:
            sensor: dem
            acquisitions: [{file: dem/zurich-01.tif}]

Per acquisition, optionally: ``offset`` (Sentinel-2 DN offset, -1000 from processing baseline
04.00 on: reflectance = (DN + offset) / 10000; see :mod:`skysense.data.products.sentinel2`),
``processing_baseline`` (recorded, e.g. ``"04.00"``), ``mask_classes`` (mask values counted as
cloud, e.g. the Sentinel-2 SCL classes ``[3, 8, 9, 10]``; default: any non-zero value),
``input_units`` (wins over the modality's) and, instead of ``file``/``bands``, ``safe`` (a
Sentinel-2 ``.SAFE`` folder, read through its band files, SCL and metadata). A location may
state its extent, ``crs`` and ``bounds`` (metres in that CRS: a cell of ``skysense data stac``'s
grid); its grid then covers that extent only.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from skysense.core.atomic_files import write_text_atomic
from skysense.core.errors import CatalogError
from skysense.core.output_paths import is_safe_id, unsafe_id_message


class DatesAsText(yaml.SafeLoader):
    """YAML loader that keeps timestamps as text: an impossible unquoted date (``2023-13-45``)
    then fails schema validation with the location named, instead of crashing the YAML parser.
    The catalog reader and the validation inventory both read catalogs with it.
    """


def _timestamp_as_text(loader: yaml.SafeLoader, node: yaml.Node) -> str:
    """A ``!!timestamp`` node's text as written; a timestamp is always a scalar."""
    if not isinstance(node, yaml.ScalarNode):
        raise yaml.constructor.ConstructorError(
            None, None, f"expected a date, found a {type(node).__name__}", node.start_mark
        )
    return loader.construct_scalar(node)


DatesAsText.add_constructor("tag:yaml.org,2002:timestamp", _timestamp_as_text)


def _where(raw: dict, loc: tuple) -> str:
    """A pydantic error location with the location's id instead of its index."""
    parts = [str(x) for x in loc]
    if len(loc) >= 2 and loc[0] == "locations" and isinstance(loc[1], int):
        try:
            parts[:2] = [f"location {raw['locations'][loc[1]].get('id')!r}"]
        except (IndexError, AttributeError, TypeError):
            pass
    return ".".join(parts)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


InputUnits = Literal["dn", "reflectance", "db", "linear", "amplitude", "complex", "metres"]


class Acquisition(_Strict):
    """One acquisition of one modality: a multi-band ``file``, a ``bands`` name->path mapping or
    a Sentinel-2 ``safe`` product folder; with its DN ``offset`` and cloud ``mask`` (see the
    module doc).
    """

    date: dt.date | None = None
    file: Path | None = None
    band_names: list[str] | None = None
    bands: dict[str, Path] | None = None
    safe: Path | None = None
    mask: Path | None = None
    mask_classes: list[int] | None = None
    offset: float | None = None
    processing_baseline: str | None = None
    input_units: InputUnits | None = None

    @model_validator(mode="after")
    def _one_source(self) -> Acquisition:
        if sum(x is not None for x in (self.file, self.bands, self.safe)) != 1:
            raise ValueError(
                "give exactly one of 'file' (multi-band raster), 'bands' (name: path) "
                "or 'safe' (a Sentinel-2 .SAFE folder)"
            )
        return self

    def paths(self) -> list[Path]:
        """Every raster path this acquisition names (data and mask; ``safe``: the folder)."""
        if self.safe is not None:
            return [self.safe] + ([self.mask] if self.mask is not None else [])
        out = [self.file] if self.file is not None else list((self.bands or {}).values())
        if self.mask is not None:
            out.append(self.mask)
        return out


class ModalityEntry(_Strict):
    """A modality of a location: which sensor spec reads it and its acquisitions."""

    sensor: str
    acquisitions: list[Acquisition] = Field(default_factory=list)
    nodata: float | None = None  # overrides the files' and the sensor's nodata value
    input_units: InputUnits | None = None


class Location(_Strict):
    """A place on the ground with co-located acquisitions of several modalities."""

    id: str
    split: Literal["pretrain", "heldout"] = "pretrain"
    labels: Path | None = None
    crs: str | None = None
    bounds: tuple[float, float, float, float] | None = None
    modalities: dict[Literal["hr", "s2", "s1", "dem"], ModalityEntry]

    @model_validator(mode="after")
    def _extent(self) -> Location:
        if (self.crs is None) != (self.bounds is None):
            raise ValueError(
                "give both 'crs' and 'bounds' (minx, miny, maxx, maxy in that CRS) or neither"
            )
        b = self.bounds
        if b is not None and not (b[0] < b[2] and b[1] < b[3]):
            raise ValueError(f"bounds {list(b)} are empty: minx < maxx and miny < maxy")
        return self

    @field_validator("id")
    @classmethod
    def _safe_id(cls, value: str) -> str:
        if not is_safe_id(value):  # ids become file names: never a path
            raise ValueError(unsafe_id_message(value, "location id"))
        return value


class Catalog(_Strict):
    """A scene catalog; ``root`` is the folder relative paths resolve against."""

    version: int = 1
    name: str = "catalog"
    locations: list[Location]
    root: Path = Path(".")

    @model_validator(mode="after")
    def _unique_ids(self) -> Catalog:
        seen: set[str] = set()
        for loc in self.locations:
            if loc.id in seen:
                raise ValueError(f"location id {loc.id!r} appears twice; ids must be unique")
            seen.add(loc.id)
        return self

    def resolve(self, path: Path) -> Path:
        """Absolute path of a catalog entry."""
        return path if path.is_absolute() else (self.root / path)

    def location(self, loc_id: str) -> Location:
        """The location with this id."""
        for loc in self.locations:
            if loc.id == loc_id:
                return loc
        raise KeyError(f"no location {loc_id!r} in catalog {self.name!r}")


def load_catalog(path: str | Path) -> Catalog:
    """Read a catalog YAML file; relative paths resolve against its folder.

    Raises:
        CatalogError: naming the file and the entry that is wrong.
    """
    p = Path(path)
    if not p.exists():
        raise CatalogError(
            f"{p}: catalog not found; run `skysense data sample --out DIR` or pass --catalog"
        )
    try:
        raw = yaml.load(p.read_text(), Loader=DatesAsText)  # a SafeLoader subclass
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise CatalogError(f"{p}: not a valid YAML catalog ({exc})") from None
    if not isinstance(raw, dict) or "locations" not in raw:
        raise CatalogError(f"{p}: a catalog is a mapping with a 'locations' list (see README)")
    try:
        cat = Catalog.model_validate({**raw, "root": str(p.parent.resolve())})
    except ValidationError as exc:
        errs = "; ".join(
            f"{_where(raw, e['loc'])}: {e['msg']}"
            + (f" (got {e['input']!r})" if e["loc"] and e["loc"][-1] == "date" else "")
            for e in exc.errors()
        )
        raise CatalogError(f"{p}: invalid catalog: {errs}") from None
    return cat


def save_catalog(catalog: Catalog, path: str | Path) -> Path:
    """Write a catalog as YAML with paths relative to the file's folder when possible."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    root = p.parent.resolve()

    def rel(x: Path) -> str:
        x = catalog.resolve(x).resolve()
        try:
            return str(x.relative_to(root))
        except ValueError:
            return str(x)

    data = catalog.model_dump(mode="json", exclude={"root"}, exclude_none=True)
    for loc, loc_m in zip(data["locations"], catalog.locations):
        if loc_m.bounds is not None:
            loc["bounds"] = list(loc_m.bounds)
        if loc_m.labels is not None:
            loc["labels"] = rel(loc_m.labels)
        for mod, entry in loc["modalities"].items():
            for acq, acq_m in zip(entry["acquisitions"], loc_m.modalities[mod].acquisitions):
                if acq_m.file is not None:
                    acq["file"] = rel(acq_m.file)
                if acq_m.mask is not None:
                    acq["mask"] = rel(acq_m.mask)
                if acq_m.safe is not None:
                    acq["safe"] = rel(acq_m.safe)
                if acq_m.bands is not None:
                    acq["bands"] = {k: rel(v) for k, v in acq_m.bands.items()}
    write_text_atomic(p, yaml.safe_dump(data, sort_keys=False))
    return p
