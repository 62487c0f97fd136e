"""The date-specific positional encoding: initial tables and the smoothed read-out."""

from __future__ import annotations

import pytest
import torch

from skysense.core.errors import PresetError
from skysense.models.fusion import DateEncoding, annual_table, circular_gaussian
from skysense.models.official_release import OFFICIAL_OVERRIDES
from skysense.models.presets import resolve_spec


def test_normal_init_is_a_plain_lookup():
    enc = DateEncoding(365, 8)
    assert enc.smoothing is None
    assert float(enc.weight.detach().std()) == pytest.approx(0.02, rel=0.2)
    doy = torch.tensor([[1, 200], [365, 366]])
    out = enc(doy)
    assert out.shape == (2, 2, 8)
    torch.testing.assert_close(out[0, 1], enc.weight[199])
    torch.testing.assert_close(out[1, 1], enc.weight[364])  # day 366 shares day 365


def test_annual_table_is_smooth_periodic_and_unit_scale():
    t = annual_table(365, 16)
    assert t.shape == (365, 16)
    torch.testing.assert_close((t**2).mean(dim=1), torch.ones(365), atol=1e-5, rtol=0)
    step = (t[1:] - t[:-1]).norm(dim=1)  # neighbouring days are close ...
    far = (t[:, None] - t[None, ::30]).norm(dim=2).mean()  # ... distant ones are not
    assert float(step.max()) < 0.35 * float(far)
    assert float((t[0] - t[-1]).norm()) < 0.35 * float(far)  # 31 Dec is next to 1 Jan
    torch.testing.assert_close(annual_table(365, 16), t)  # fixed phases: reproducible
    assert annual_table(365, 7).shape == (365, 7)


def test_circular_gaussian_rows_sum_to_one_and_wrap():
    w = circular_gaussian(365, 10.0)
    torch.testing.assert_close(w.sum(dim=1), torch.ones(365))
    assert int(w[0].argmax()) == 0
    assert float(w[0, 364]) == pytest.approx(float(w[0, 1]), rel=1e-5)
    assert float(w[0, 10]) == pytest.approx(
        float(w[0, 0]) * float(torch.exp(torch.tensor(-0.5))), rel=1e-4
    )


def test_smoothing_teaches_unseen_days():
    """A loss on day 100 alone moves the encodings of days 95-105; without smoothing only 100."""
    for sigma, moved in ((0.0, {99}), (5.0, set(range(90, 111)))):
        enc = DateEncoding(365, 4, smoothing_days=sigma)
        enc(torch.tensor([100])).sum().backward()
        grad_rows = set(torch.nonzero(enc.weight.grad.abs().sum(1) > 1e-6).flatten().tolist())
        assert moved <= grad_rows
        if sigma == 0.0:
            assert grad_rows == {99}


def test_spec_options_checked_and_official_reads_plain():
    spec = resolve_spec("skysense-tiny", date_init="annual", date_smoothing_days=15)
    assert spec.date_init == "annual" and spec.date_smoothing_days == 15.0
    with pytest.raises(PresetError, match="date_init"):
        resolve_spec("skysense-tiny", date_init="fourier")
    with pytest.raises(PresetError, match="date_smoothing_days"):
        resolve_spec("skysense-tiny", date_smoothing_days=-1)
    assert OFFICIAL_OVERRIDES["date_smoothing_days"] == 0.0
    assert resolve_spec("skysense-tiny").date_smoothing_days == 0.0  # the paper's lookup
