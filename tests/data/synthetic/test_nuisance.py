"""Place and acquisition nuisances: a class keeps its identity while its look changes."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from skysense.config import load_config
from skysense.data.synthetic import landcover as lc
from skysense.data.synthetic.nuisance import (
    AcquisitionLook,
    PlaceLook,
    resample_series,
    resampling_matrix,
)
from skysense.data.synthetic.scenes import sites_for, synthesize_scene

PARAMS = Path(__file__).parents[3] / "params.yaml"


def _scene(index: int, nuisance: float, size: int = 64):
    cfg = load_config(
        PARAMS, [f"data.sample.size_px={size}", f"data.sample.nuisance={nuisance}"]
    ).data.sample
    site, split = sites_for(0, 4)[index]
    return synthesize_scene(site, split, index, cfg, 0)


def test_strength_zero_is_the_identity_look():
    look = PlaceLook.draw(np.random.default_rng(0), lc.N_CLASSES, 0.0)
    assert np.allclose(look.soil, 1) and np.allclose(look.leaf, 1) and np.allclose(look.roof, 1)
    assert np.allclose(look.class_shift, 0) and np.allclose(look.hr_gain, 1)
    assert look.psf_px == 0 and look.misregistration_px == 0
    np.testing.assert_allclose(look.endmembers(), lc.ENDMEMBER_SPECTRA)
    acq = AcquisitionLook.draw(np.random.default_rng(0), look, 0.0)
    assert np.allclose(acq.gain, 1) and np.allclose(acq.haze, 0) and acq.shift_px == (0.0, 0.0)


def test_places_differ_in_soil_and_vegetation_spectra():
    looks = [PlaceLook.draw(np.random.default_rng([0, i, 11]), lc.N_CLASSES) for i in range(6)]
    soil = np.stack([lk.endmembers()[lc.ENDMEMBERS.index("soil")] for lk in looks])
    leaf = np.stack([lk.endmembers()[lc.ENDMEMBERS.index("leaf")] for lk in looks])
    # soils from dark to bright: more than 25 % spread of brightness; vegetation NIR too
    assert soil.mean(axis=1).max() / soil.mean(axis=1).min() > 1.25
    assert leaf[:, 6].max() / leaf[:, 6].min() > 1.1
    assert (soil >= 0).all() and (soil <= 1).all()


def test_resampling_moves_and_blurs_but_keeps_the_mean():
    m = resampling_matrix(16, 1.0, 0.0)
    np.testing.assert_allclose(m.sum(axis=1), 1.0, rtol=1e-6)
    line = np.zeros(16, dtype=np.float32)
    line[8] = 1.0
    assert (m @ line)[7] == 1.0  # pixel 7 now sees what was at 8
    blurred = resampling_matrix(16, 0.0, 0.7) @ line
    assert 0.3 < blurred[8] < 0.9 and blurred[7] > 0.05 and abs(blurred.sum() - 1) < 1e-5
    series = np.ones((2, 3, 8, 8), dtype=np.float32)
    np.testing.assert_allclose(resample_series(series, [(0.3, -0.2), (0, 0)], 0.5), 1.0, rtol=1e-5)


def test_a_class_looks_different_between_places_but_keeps_its_timing():
    """Winter cereal's clear-sky spectrum differs between two held-out places much more than
    without nuisance, and in each place it still greens up before maize.
    """
    wc, mz = lc.class_id("winter_cereal"), lc.class_id("summer_maize")

    def median_spectrum_and_peaks(scene):
        refl = scene.s2.astype(np.float32) * 1e-4
        ok = (scene.s2_cloud == 0) & (scene.s2 > 0).all(axis=1)
        doy = np.array([d.timetuple().tm_yday for d in scene.s2_dates])
        nd = lc.ndvi(refl, band_axis=1)
        peaks = {}
        for c in (wc, mz):
            med = [
                np.median(nd[t][ok[t] & (scene.labels == c)])
                if (ok[t] & (scene.labels == c)).sum() > 10
                else -1.0
                for t in range(len(doy))
            ]
            peaks[c] = doy[int(np.argmax(med))]
        sel = ok & (scene.labels == wc)[None]
        spectrum = np.array([np.median(refl[:, b][sel]) for b in range(refl.shape[1])])
        return spectrum, peaks

    spread = {}
    for strength in (0.0, 1.0):
        a, pa = median_spectrum_and_peaks(_scene(0, strength))
        b, pb = median_spectrum_and_peaks(_scene(1, strength))
        spread[strength] = float(np.abs(np.log(a / b)).mean())
        if strength == 1.0:
            assert pa[wc] < pa[mz] and pb[wc] < pb[mz]
    assert spread[1.0] > 1.5 * spread[0.0]
