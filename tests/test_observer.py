"""Hand-computed answers for the calibration observers, DBDC's histogram and peeling in particular."""
import numpy as np
import pytest
from PIL import Image

from src.errors import UserError
from src.quant.observer import (DBDCObserver, MinMaxObserver, PercentileObserver, dbdc_batch_bounds, dbdc_peel,
                                histc, weight_minmax_per_channel)


def _data_with_hist(counts, lo=0.0, hi=None):
    """float32 data on [lo, hi] (w = 1 per bin) whose histogram with len(counts) bins is `counts`.

    Bin-centre values, plus the exact min lo (in bin 0) and max hi (in the last bin) taking one count each.
    """
    bins = len(counts)
    hi = lo + bins if hi is None else hi
    values = [lo + i + 0.5 for i, c in enumerate(counts) for _ in range(c)]
    values[0], values[-1] = lo, hi
    return np.array(values, dtype=np.float32)


def test_histc_integer_edges_and_max_in_last_bin():
    x = np.arange(0, 2049, dtype=np.float32)  # v falls in bin v; v == max (2048) joins bin 2047
    hist, mn, mx = histc(x)
    assert (mn, mx) == (0.0, 2048.0)
    np.testing.assert_array_equal(hist, [1] * 2047 + [2])


def test_histc_uses_float32_arithmetic():
    # (v − min)·2048 / (max − min) = 1.5 / 0.3000000119 = 4.9999998 exactly, but 5.0 in float32: torch says bin 5
    x = np.array([0.0, 0.000732421875, 0.3], dtype=np.float32)
    hist, _, _ = histc(x)
    assert np.flatnonzero(hist).tolist() == [0, 5, 2047]


def test_histc_constant_input_follows_torch_widening():
    assert np.flatnonzero(histc(np.full(7, 5.0, np.float32))[0]).tolist() == [1024]
    # edges 2.964751 and 4.964751 round in float32, and the value lands just below the middle (torch 2.13: 1023)
    assert np.flatnonzero(histc(np.full(7, 3.964751, np.float32))[0]).tolist() == [1023]


def test_peel_hand_computed():
    # N = 36, p = 0.1 → keep ≤ 32.4: drop bin 0 (1 < 3), bin 1 (0 < 3), then 5 ≥ 3 drops bin 7 → 32 left
    assert dbdc_peel(np.array([1, 0, 5, 10, 10, 5, 2, 3]), 0.1) == (2, 6)


def test_peel_tie_removes_upper_bin():
    assert dbdc_peel(np.array([2, 5, 5, 2]), 0.1) == (0, 2)  # 14 > 12.6; 2 vs 2 → upper goes; 12 left


def test_peel_zero_p_keeps_everything():
    assert dbdc_peel(np.array([1, 0, 0, 1]), 0.0) == (0, 3)


def test_long_tail_side_is_cut_more():
    counts = [50, 30, 10, 3, 2, 1, 1, 1, 1, 1]  # N = 100, p = 0.05: only the sparse upper tail is peeled
    x = _data_with_hist(counts)
    assert histc(x, bins=10)[0].tolist() == counts
    lower, upper = dbdc_batch_bounds(x, 0.05, bins=10)
    assert (lower, upper) == (1.0, 5.0)  # w = 1: right edge of bin 0 and of bin 4
    assert lower.dtype == upper.dtype == np.float32
    assert dbdc_batch_bounds(x, 0.05, bins=10, lower_edge='left') == (0.0, 5.0)
    # mirrored data on [-10, 0]: the tail is now below and bins 0..4 go; lower is the right edge of bin 5
    lower, upper = dbdc_batch_bounds(-x, 0.05, bins=10)
    assert (lower, upper) == (-4.0, 0.0)


def test_mass_in_one_bin_with_outliers_beyond_budget():
    # 10000 values at 1.0, 3 outliers at -50 and 2 at 100; p = 1e-4 allows one element out:
    # the upper bin (2 < 3) goes, then 10003 ≤ 0.9999·10005 stops.
    x = np.concatenate([np.full(10000, 1.0), [-50.0] * 3, [100.0] * 2]).astype(np.float32)
    w = np.float32(150.0) / np.float32(2048)
    lower, upper = dbdc_batch_bounds(x, 1e-4)
    assert lower == np.float32(w * np.float32(1) + np.float32(-50))
    assert upper == np.float32(w * np.float32(2047) + np.float32(-50))


def test_mass_in_one_bin_with_outliers_within_budget_collapses_like_release():
    # p = 1e-3 allows 10 out but only 5 outliers exist: peeling must eat the full bin (bin 696 of 1.0),
    # leaving lo = 696, hi = 695, so the released formulas give lower = upper + w.
    x = np.concatenate([np.full(10000, 1.0), [-50.0] * 3, [100.0] * 2]).astype(np.float32)
    hist, _, _ = histc(x)
    assert hist[696] == 10000
    assert dbdc_peel(hist, 1e-3) == (696, 695)
    lower, upper = dbdc_batch_bounds(x, 1e-3)
    w = np.float32(150.0) / np.float32(2048)
    assert upper == np.float32(w * np.float32(696) - np.float32(50))
    assert lower == np.float32(w * np.float32(697) - np.float32(50))


def test_constant_input_gives_equal_bounds_without_nan():
    obs = DBDCObserver(1e-4)
    obs.update(np.full((2, 3, 4, 4), 0.25, np.float32))
    assert obs.bounds() == (np.float32(0.25), np.float32(0.25))


def test_dbdc_running_mean_over_three_batches():
    rng = np.random.default_rng(0)
    batches = [(rng.standard_normal((2, 8, 16, 16)) * s + m).astype(np.float32) for s, m in [(1, 0), (3, 1), (.5, -2)]]
    per_batch = np.array([dbdc_batch_bounds(b, 1e-3) for b in batches])
    obs = DBDCObserver(1e-3)
    for b in batches:
        obs.update(b)
    lower, upper = obs.bounds()
    np.testing.assert_allclose([lower, upper], per_batch.mean(axis=0), rtol=1e-6)
    # the release's float32 recurrence: r = 1/2 then 2/3, python scalars cast to float32
    f = np.float32
    expected = (per_batch[0] * f(.5) + per_batch[1] * f(.5)).astype(f)
    expected = (expected * f(2 / 3) + per_batch[2] * f(1 - 2 / 3)).astype(f)
    assert (lower, upper) == tuple(expected)


def test_percentile_observer_p0_is_minmax_and_running_mean():
    obs = PercentileObserver(0.0)
    obs.update(np.array([1.0, 2.0, -3.0], np.float32))
    obs.update(np.array([5.0, 0.0], np.float32))
    assert obs.bounds() == (np.float32(-1.5), np.float32(3.5))


def test_percentile_observer_linear_quantiles():
    obs = PercentileObserver(0.1)
    obs.update(np.arange(11, dtype=np.float32))  # quantile 0.1 of 0..10 is 1.0, 0.9 is 9.0
    assert obs.bounds() == (np.float32(1.0), np.float32(9.0))
    obs = PercentileObserver(0.05)
    obs.update(np.arange(11, dtype=np.float32))  # linear: 0.05·10 = 0.5 → 0.5 and 9.5
    assert obs.bounds() == (np.float32(0.5), np.float32(9.5))


def test_minmax_observer_global_over_batches():
    obs = MinMaxObserver()
    obs.update(np.array([[1.0, -2.0]], np.float32))
    obs.update(np.array([0.5, 7.0], np.float32))
    obs.update(np.array([0.0], np.float32))
    assert obs.bounds() == (np.float32(-2.0), np.float32(7.0))


def test_weight_minmax_per_channel():
    w = np.arange(2 * 3 * 2 * 2, dtype=np.float32).reshape(2, 3, 2, 2)
    w[1, 2, 1, 0] = -4.0
    lower, upper = weight_minmax_per_channel(w)
    np.testing.assert_array_equal(lower, [0.0, -4.0])
    np.testing.assert_array_equal(upper, [11.0, 23.0])


def test_bad_input_is_reported():
    with pytest.raises(RuntimeError, match='before any update'):
        DBDCObserver(1e-4).bounds()
    with pytest.raises(UserError, match='p must be in'):
        DBDCObserver(0.6)
    with pytest.raises(UserError, match='lower_edge'):
        DBDCObserver(1e-4, lower_edge='middle')
    with pytest.raises(UserError, match='non-finite'):
        DBDCObserver(1e-4).update(np.array([0.0, np.nan], np.float32))


def test_dbdc_on_calibration_image_keeps_budget(shared_dir):
    # conv_first input of EDSR: (img − mean)·255 of a real LR image; the kept bins hold ≤ (1 − p)·N,
    # and putting back the last bin peeled would exceed it
    path = sorted((shared_dir / 'datasets/train/BSD200/LR_bicubic/X4').glob('*.png'))[0]
    img = np.asarray(Image.open(path).convert('RGB'), np.float32) / 255
    x = ((img - np.array([0.4488, 0.4371, 0.4040], np.float32)) * 255).astype(np.float32)
    p = 1e-4
    hist, mn, mx = histc(x)
    lo, hi = dbdc_peel(hist, p)
    kept = hist[lo:hi + 1].sum()
    assert hist.sum() == x.size and kept <= (1 - p) * x.size
    assert max(hist[lo - 1:hi + 1].sum() if lo else 0, hist[lo:hi + 2].sum()) > (1 - p) * x.size
    lower, upper = dbdc_batch_bounds(x, p)
    assert mn < lower < upper <= mx


def test_mse_weight_bounds_clip_outliers_and_never_lose_to_minmax():
    from src.quant.observer import fake_quantize, weight_mse_per_channel
    rng = np.random.default_rng(0)
    w = rng.laplace(0, 0.02, (3, 8, 5, 5)).astype(np.float32)  # heavy tails: min/max wastes the 4-bit grid
    w[2] = np.linspace(-1, 1, 200, dtype=np.float32).reshape(8, 5, 5)  # uniform: little to gain by clipping
    lower, upper = weight_mse_per_channel(w, 4)
    lo, hi = weight_minmax_per_channel(w)
    flat = w.reshape(3, -1)
    err = ((fake_quantize(flat, lower[:, None], upper[:, None], 4) - flat) ** 2).sum(1)
    err_minmax = ((fake_quantize(flat, lo[:, None], hi[:, None], 4) - flat) ** 2).sum(1)
    assert np.all(err <= err_minmax)
    assert upper[0] < 0.9 * hi[0] and err[0] < 0.9 * err_minmax[0]
    assert upper[2] / hi[2] > upper[0] / hi[0] + 0.05  # uniform weights are clipped less than heavy-tailed ones
    # the chosen shrink is the best of the searched grid (brute force)
    for c in range(3):
        errors = [((fake_quantize(flat[c], lo[c] * s, hi[c] * s, 4) - flat[c]) ** 2).sum()
                  for s in np.float32(np.linspace(0.3, 1.0, 71))]
        assert err[c] == pytest.approx(min(errors), rel=1e-6)
