"""An impossible unquoted date (``2023-13-45``) in a catalog: a named error, or a quarantined
item.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from skysense.core.errors import CatalogError
from skysense.data.catalog import load_catalog
from skysense.validation.gate import validate_catalog
from skysense.validation.settings import ValidationConfig

from .conftest import TODAY
from .corpus import s1_data, s2_data, write_tif

CATALOG = """\
version: 1
locations:
  - id: alpha
    modalities:
      s2:
        sensor: sentinel2
        acquisitions:
          - {date: 2023-06-01, file: s2_a.tif, offset: 0}
          - {date: 2023-06-02, file: s2_b.tif, offset: 0}
          - {date: 2023-06-03, file: s2_c.tif, offset: 0}
          - {date: 2023-13-45, file: s2_bad.tif, offset: 0}
      s1:
        sensor: sentinel1
        acquisitions:
          - {date: 2023-06-04, file: s1_a.tif, band_names: [VV, VH]}
          - {date: 2023-06-05, file: s1_b.tif, band_names: [VV, VH]}
"""


@pytest.fixture
def catalog(tmp_path: Path) -> Path:
    rng = np.random.default_rng(3)
    for name in ("s2_a", "s2_b", "s2_c", "s2_bad"):
        write_tif(tmp_path / f"{name}.tif", s2_data(rng), nodata=0)
    for name in ("s1_a", "s1_b"):
        write_tif(tmp_path / f"{name}.tif", s1_data(rng))
    path = tmp_path / "catalog.yaml"
    path.write_text(CATALOG)
    return path


def test_load_catalog_names_file_location_and_date(catalog: Path) -> None:
    with pytest.raises(CatalogError) as info:
        load_catalog(catalog)
    msg = str(info.value)
    assert str(catalog) in msg
    assert "location 'alpha'" in msg and "acquisitions.3.date" in msg
    assert "'2023-13-45'" in msg and "month" in msg


def test_good_dates_still_load_as_dates(catalog: Path) -> None:
    catalog.write_text(
        CATALOG.replace("          - {date: 2023-13-45, file: s2_bad.tif, offset: 0}\n", "")
    )
    cat = load_catalog(catalog)
    dates = [a.date.isoformat() for a in cat.location("alpha").modalities["s2"].acquisitions]
    assert dates == ["2023-06-01", "2023-06-02", "2023-06-03"]


def test_validation_quarantines_the_acquisition_by_date_parses(
    catalog: Path, tmp_path: Path
) -> None:
    report = validate_catalog(catalog, tmp_path / "out", ValidationConfig(), today=TODAY)
    q = report.quarantine.set_index("item_id")
    assert list(q.index) == ["alpha/s2/3/data"]
    assert "date_parses" in list(q.loc["alpha/s2/3/data", "failed_expectations"])
    assert "2023-13-45" in q.loc["alpha/s2/3/data", "observed"]
    accepted = load_catalog(tmp_path / "out" / "accepted_catalog.yaml")
    assert len(accepted.location("alpha").modalities["s2"].acquisitions) == 3
