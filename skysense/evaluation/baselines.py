"""Reference features that need no encoder: a chip's raw spectra, for the sanity of a task.

A downstream task can measure pre-training only if learnt features beat what the inputs already
say. :func:`raw_spectra_features` is the plainest reading of a chip: the mean Sentinel-2
reflectance of each date and band over the chip's clear pixels, the mean Sentinel-1 sigma0 (dB)
of each date, the mean HR digital number of each band and the mean elevation, in date order,
standardised and probed like any encoder's features. Dates a chip lacks (clouds, swath borders,
shorter series) take the set's mean of that column.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np


def _series_means(samples: Sequence[dict[str, Any]], key: str) -> np.ndarray:
    """``N x (T_max * C)`` per-date channel means over each chip (NaN where a date is absent)."""
    if not all(key in s for s in samples):
        return np.zeros((len(samples), 0), dtype=np.float32)
    t_max = max(s[key].shape[0] for s in samples)
    c = samples[0][key].shape[1]
    out = np.full((len(samples), t_max, c), np.nan, dtype=np.float32)
    for i, s in enumerate(samples):
        x = np.asarray(s[key], dtype=np.float32)
        valid = np.asarray(s.get(f"{key}_valid", np.ones(x.shape[0], bool)))
        with warnings.catch_warnings():  # all-cloud dates: mean of an empty slice, expected
            warnings.simplefilter("ignore", RuntimeWarning)
            means = np.nanmean(x.reshape(x.shape[0], c, -1), axis=2)
        means[~valid] = np.nan
        out[i, : x.shape[0]] = means
    return out.reshape(len(samples), -1)


def raw_spectra_features(samples: Sequence[dict[str, Any]]) -> np.ndarray:
    """``N x F`` raw features of downstream samples (:func:`skysense.data.downstream.read_chip`
    dicts): S2 date x band means, S1 date x polarisation means, HR band means, mean elevation.
    """
    parts = [_series_means(samples, "s2"), _series_means(samples, "s1")]
    for key in ("hr", "dem"):
        if all(key in s for s in samples):
            flat = [np.asarray(s[key], np.float32).reshape(len(s[key]), -1) for s in samples]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                parts.append(np.stack([np.nanmean(f, axis=1) for f in flat]))
    x = np.concatenate(parts, axis=1).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        col_mean = np.nanmean(np.where(np.isfinite(x), x, np.nan), axis=0)
    col_mean = np.where(np.isfinite(col_mean), col_mean, 0.0)
    return np.where(np.isfinite(x), x, col_mean[None, :]).astype(np.float32)


def raw_pixel_features(samples: Sequence[dict[str, Any]]) -> np.ndarray:
    """``N x F x s x s`` raw features of each 10 m pixel of segmentation chips: S2 date x band
    reflectance, S1 date x polarisation dB, HR band means over the pixel's 32 x 32 footprint and
    elevation; absent values take the set's mean of that channel.
    """
    n = len(samples)
    s = samples[0]["s2"].shape[-1]
    parts = []
    for key in ("s2", "s1"):
        if not all(key in x for x in samples):
            continue
        t_max = max(x[key].shape[0] for x in samples)
        c = samples[0][key].shape[1]
        arr = np.full((n, t_max, c, s, s), np.nan, dtype=np.float32)
        for i, x in enumerate(samples):
            v = np.asarray(x[key], dtype=np.float32).copy()
            v[~np.asarray(x.get(f"{key}_valid", np.ones(v.shape[0], bool)))] = np.nan
            arr[i, : v.shape[0]] = v
        parts.append(arr.reshape(n, t_max * c, s, s))
    if all("hr" in x for x in samples):
        hr = np.stack([np.asarray(x["hr"], np.float32) for x in samples])
        r = hr.shape[-1] // s
        parts.append(hr.reshape(n, hr.shape[1], s, r, s, r).mean(axis=(3, 5)))
    if all("dem" in x for x in samples):
        parts.append(np.stack([np.asarray(x["dem"], np.float32) for x in samples]))
    feats = np.concatenate(parts, axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(feats, axis=(0, 2, 3))
    mean = np.where(np.isfinite(mean), mean, 0.0).astype(np.float32)
    return np.where(np.isfinite(feats), feats, mean[None, :, None, None]).astype(np.float32)
