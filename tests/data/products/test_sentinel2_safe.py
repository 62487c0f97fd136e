"""Sentinel-2 ``.SAFE`` folders as catalog entries (``safe: path``): band files from
``GRANULE/*/IMG_DATA/R10m|R20m|R60m``, SCL as cloud mask, the DN offset from ``MTD_MSIL2A.xml``.

The band files are the real BigEarthNet patch, written as lossless JPEG 2000 (the format of the
product); the metadata file is written by the test in the product's layout.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio
import rasterio.shutil
import yaml
from stac_items import BEN, BEN_PAIRS

from skysense.config import chip_settings, load_config
from skysense.core.errors import RasterReadError, ValidationFailed
from skysense.data.catalog import load_catalog
from skysense.data.chipping import chip_catalog
from skysense.data.coregistration import read_location
from skysense.data.products.sentinel2_safe import SafeProductError, read_safe
from skysense.data.shards import ShardReader
from skysense.validation.gate import validate_catalog

S2_ID, S1_ID = BEN_PAIRS[0]
RES = {
    "B01": 60,
    "B02": 10,
    "B03": 10,
    "B04": 10,
    "B05": 20,
    "B06": 20,
    "B07": 20,
    "B08": 10,
    "B8A": 20,
    "B09": 60,
    "B11": 20,
    "B12": 20,
}
PHYSICAL = ["B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B10", "B11", "B12"]


def _mtd(start: str, baseline: str | None, offset: int | None) -> str:
    base = f"<PROCESSING_BASELINE>{baseline}</PROCESSING_BASELINE>" if baseline else ""
    offsets = (
        (
            "<BOA_ADD_OFFSET_VALUES_LIST>"
            + "".join(f'<BOA_ADD_OFFSET band_id="{i}">{offset}</BOA_ADD_OFFSET>' for i in range(13))
            + "</BOA_ADD_OFFSET_VALUES_LIST>"
        )
        if offset is not None
        else ""
    )
    spectral = "".join(
        f'<Spectral_Information bandId="{i}" physicalBand="{b}"/>' for i, b in enumerate(PHYSICAL)
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        "<n1:Level-2A_User_Product "
        'xmlns:n1="https://psd-14.sentinel2.eo.esa.int/PSD/User_Product_Level-2A.xsd">'
        f"<n1:General_Info><Product_Info><PRODUCT_START_TIME>{start}</PRODUCT_START_TIME>"
        f"<PRODUCT_TYPE>S2MSI2A</PRODUCT_TYPE>{base}</Product_Info><Product_Image_Characteristics>"
        "<QUANTIFICATION_VALUES_LIST>"
        '<BOA_QUANTIFICATION_VALUE unit="none">10000</BOA_QUANTIFICATION_VALUE>'
        f"</QUANTIFICATION_VALUES_LIST>{offsets}<Spectral_Information_List>{spectral}"
        "</Spectral_Information_List></Product_Image_Characteristics></n1:General_Info>"
        "</n1:Level-2A_User_Product>\n"
    )


def make_safe(
    root: Path, stamp: str, baseline: str | None, offset: int | None, name_baseline: str = "N0400"
) -> Path:
    """A ``.SAFE`` folder of the real BigEarthNet band files (JPEG 2000) with an SCL layer whose
    western half is class 9 (cloud, high probability).
    """
    safe = root / f"S2A_MSIL2A_{stamp}_{name_baseline}_R022_T33UUP_{stamp}.SAFE"
    img = safe / "GRANULE" / f"L2A_T33UUP_A011000_{stamp}" / "IMG_DATA"
    for band, res in RES.items():
        out = img / f"R{res}m" / f"T33UUP_{stamp}_{band}_{res}m.jp2"
        out.parent.mkdir(parents=True, exist_ok=True)
        rasterio.shutil.copy(
            BEN / S2_ID / f"{S2_ID}_{band}.tif",
            out,
            driver="JP2OpenJPEG",
            QUALITY="100",
            REVERSIBLE="YES",
        )
    with rasterio.open(BEN / S2_ID / f"{S2_ID}_B05.tif") as ds:
        profile = {**ds.profile, "dtype": "uint8"}
        scl = np.full((ds.height, ds.width), 4, np.uint8)
    scl[:, : scl.shape[1] // 2] = 9
    tmp = root / "scl.tif"
    with rasterio.open(tmp, "w", **profile) as dst:
        dst.write(scl, 1)
    rasterio.shutil.copy(
        tmp,
        img / "R20m" / f"T33UUP_{stamp}_SCL_20m.jp2",
        driver="JP2OpenJPEG",
        QUALITY="100",
        REVERSIBLE="YES",
    )
    tmp.unlink()
    start = dt.datetime.strptime(stamp, "%Y%m%dT%H%M%S").strftime("%Y-%m-%dT%H:%M:%S.024Z")
    (safe / "MTD_MSIL2A.xml").write_text(_mtd(start, baseline, offset))
    return safe


def test_read_safe_finds_bands_scl_date_baseline_and_offset(tmp_path: Path) -> None:
    p = read_safe(make_safe(tmp_path, "20230613T101031", "04.00", -1000))
    assert p.level == "L2A" and p.baseline == "04.00" and p.offset == -1000.0
    assert (
        p.date == dt.date(2023, 6, 13) and p.scl is not None and p.scl.name.endswith("_SCL_20m.jp2")
    )
    assert sorted(p.bands) == sorted(RES) and p.bands["B02"].parent.name == "R10m"
    old = read_safe(make_safe(tmp_path, "20210613T101031", "03.01", None, "N0301"))
    assert old.offset == 0.0 and old.baseline == "03.01"
    unknown = read_safe(make_safe(tmp_path, "20230614T101031", None, None, "NXXXX"))
    assert unknown.offset is None and unknown.baseline is None
    with pytest.raises(SafeProductError, match="no MTD_MSIL2A.xml"):
        read_safe(tmp_path)


def _catalog(tmp_path: Path, safes: list[Path]) -> Path:
    s1 = {p: str(BEN / S1_ID / f"{S1_ID}_{p}.tif") for p in ("VV", "VH")}
    path = tmp_path / "catalog.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "locations": [
                    {
                        "id": "ben-safe",
                        "modalities": {
                            "s2": {
                                "sensor": "sentinel2",
                                "acquisitions": [{"safe": str(s)} for s in safes],
                            },
                            "s1": {
                                "sensor": "sentinel1",
                                "acquisitions": [{"date": "2023-06-13", "bands": s1}],
                            },
                        },
                    }
                ]
            }
        )
    )
    return path


def test_safe_entry_validates_and_chips_with_its_offset_and_scl_mask(tmp_path: Path) -> None:
    safe = make_safe(tmp_path, "20230613T101031", "04.00", -1000)
    bad = tmp_path / "not-a-product.SAFE"
    bad.mkdir()
    cfg = load_config(
        None,
        [
            "validation.min_dates.s2=1",
            "validation.min_dates.s1=1",
            "validation.max_cloud_fraction=0.8",
        ],
    )
    report = validate_catalog(
        _catalog(tmp_path, [safe, bad]), tmp_path / "val", cfg.validation, today=dt.date(2026, 1, 1)
    )
    q = report.quarantine.set_index("item_id")
    assert list(q.index) == ["ben-safe/s2/1/data"]
    assert "readable" in list(q.loc["ben-safe/s2/1/data", "failed_expectations"])
    assert "no MTD_MSIL2A.xml" in q.loc["ben-safe/s2/1/data", "observed"]  # the read_error
    accepted = load_catalog(tmp_path / "val" / "accepted_catalog.yaml")
    acq = accepted.location("ben-safe").modalities["s2"].acquisitions
    assert len(acq) == 1 and acq[0].safe == safe
    summary = chip_catalog(accepted, tmp_path / "chips", chip_settings(cfg))
    assert summary.chips > 0 and not summary.failed
    manifest = pd.read_parquet(tmp_path / "chips" / "manifest.parquet")
    reader = ShardReader(tmp_path / "chips")
    with rasterio.open(BEN / S2_ID / f"{S2_ID}_B02.tif") as ds:
        dn, src = ds.read(1).astype(np.float32), ds
    cloud_x = src.bounds.left + 20.0 * 30  # the SCL's western half (30 of 60 px at 20 m) is cloud
    seen_cloud = seen_clear = False
    for row in manifest.itertuples():
        if not row.has_s2:  # over the cloudy half: the series has no usable date there
            assert row.maxx <= cloud_x + 40.0
            seen_cloud = True
            continue
        chip = reader.read(row.sample_id)
        assert list(row.s2_dates) == ["2023-06-13"]
        r, c = src.index(row.minx + 5.0, row.maxy - 5.0)
        expect = (dn[r : r + 8, c : c + 8] + np.float32(-1000)) * np.float32(1e-4)
        mask = chip["s2_mask"][0]
        xs = row.minx + 5.0 + 10.0 * np.arange(8)
        np.testing.assert_array_equal(mask, np.broadcast_to(xs >= cloud_x, (8, 8)))
        np.testing.assert_array_equal(chip["s2"][0, 0][mask], expect[mask])
        seen_cloud |= not mask.all()
        seen_clear |= bool(mask.any())
    assert seen_cloud and seen_clear


def test_safe_after_2022_without_baseline_or_offset_is_refused(tmp_path: Path) -> None:
    safe = make_safe(tmp_path, "20230614T101031", None, None, "NXXXX")
    cat = load_catalog(_catalog(tmp_path, [safe]))
    with pytest.raises(RasterReadError, match="2023-06-14.*no recorded DN offset"):
        read_location(cat.locations[0], cat.root)
    cfg = load_config(None, ["validation.min_dates.s2=1", "validation.min_dates.s1=1"]).validation
    with pytest.raises(ValidationFailed, match=r"s2_offset_known \(12\)"):  # each band file
        validate_catalog(
            _catalog(tmp_path, [safe]), tmp_path / "val", cfg, today=dt.date(2026, 1, 1)
        )
