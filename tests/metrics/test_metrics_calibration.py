"""Expected calibration error, reliability bins and temperature scaling on cases whose answer is known."""
from __future__ import annotations

import numpy as np
import pytest

from cxrvlm.metrics.calibration import ece, fit_platt, fit_temperature, logit, platt, reliability


def _sampled(n: int, temperature: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Labels drawn from sigmoid(z), and the logits z * temperature a model with that temperature would give."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 2, n)
    y = (rng.random(n) < 1 / (1 + np.exp(-z))).astype(float)
    return y, z * temperature


def test_a_calibrated_model_has_a_small_ece_and_an_overconfident_one_a_large_one():
    y, z = _sampled(20000, 1.0)
    assert ece(y, 1 / (1 + np.exp(-z))) < 0.02
    y, z = _sampled(20000, 3.0)
    assert ece(y, 1 / (1 + np.exp(-z))) > 0.08


def test_fit_temperature_recovers_the_overconfidence():
    y, z = _sampled(20000, 2.5, seed=1)
    assert fit_temperature(y, z) == pytest.approx(2.5, rel=0.08)
    assert ece(y, 1 / (1 + np.exp(-z / fit_temperature(y, z)))) < 0.02
    with pytest.raises(ValueError, match="positive and negative"):
        fit_temperature([1.0, 1.0], [0.2, 0.3])


def test_reliability_bins_and_their_weights():
    bins = reliability([0, 1, 1, 0], [0.05, 0.15, 0.95, 0.99])
    assert [b[2] for b in bins] == [1, 1, 2] and bins[-1][3] == pytest.approx(0.97) and bins[-1][4] == 0.5
    assert ece([0, 1, 1, 0], [0.05, 0.15, 0.95, 0.99]) == pytest.approx((0.05 + 0.85 + 2 * 0.47) / 4)
    assert np.isnan(ece([], []))
    with pytest.raises(ValueError, match="0/1"):
        ece([2], [0.5])
    assert logit([0.5])[0] == 0.0 and np.isfinite(logit([0.0, 1.0])).all()


def test_platt_scaling_recovers_a_known_mapping_and_stays_finite_when_separable():
    rng = np.random.default_rng(2)
    s = rng.uniform(0.01, 0.99, 20000)
    y = (rng.random(20000) < platt(s, 2.0, -1.0)).astype(float)
    a, b = fit_platt(y, s)
    assert a == pytest.approx(2.0, rel=0.1) and b == pytest.approx(-1.0, abs=0.1)
    a, b = fit_platt([0, 0, 1, 1, 1], [0.1, 0.2, 0.6, 0.7, 0.8])  # separable: smoothed targets keep it finite
    assert np.isfinite([a, b]).all() and 0.5 < platt([0.7], a, b)[0] < 0.99
