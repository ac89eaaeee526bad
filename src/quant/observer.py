"""Calibration statistics for the quantizer bounds (numpy only; observers never quantize).

Every observer takes one calibration batch of a conv's input activation at a time with ``update(x)``, keeps
that batch's ``(lower, upper)`` in ``batch_bounds`` and reports ``bounds()``, their combination, as
``np.float32``. Keeping the per-batch values lets data-parallel calibration combine batches observed by
different processes in batch order, which gives the single-process bounds exactly.
Batch-averaged observers (Percentile, DBDC) combine by the running mean of the per-batch bounds exactly as
the released PyTorch code does it in float32: the first batch sets the bounds, then batch k + 1
(k = 1, 2, ...) gives ``bound = bound * r + new * (1 - r)`` with ``r = 1 - 1 / (1 + k)``, where torch casts
the python scalars ``r`` and ``1 - r`` to float32 before multiplying (checked against torch 2.13, CPU).
"""
import numpy as np

from src.errors import UserError

DBDC_BINS = 2048
_CHUNK = 1 << 22  # elements per histogram pass: bounds the temporaries for large activations


def _as_float32(x):
    x = np.asarray(x, dtype=np.float32)
    if x.size == 0:
        raise UserError('an observer got an empty activation tensor: check the calibration batches')
    return x.ravel()


def _finite_min_max(x):
    mn, mx = x.min(), x.max()
    if not (np.isfinite(mn) and np.isfinite(mx)):
        raise UserError(f'activation has non-finite values (min {mn}, max {mx}): check the network and its input')
    return mn, mx


def _check_tail_probability(p):
    if not 0.0 <= p < 0.5:
        raise UserError(f'clipping tail probability p must be in [0, 0.5), got {p}')


def _check_observed(batch_bounds):
    if not batch_bounds:
        raise RuntimeError('bounds() called before any update(): feed calibration batches first')


def running_mean(batch_bounds):
    """Float32 running mean of ``[(lower, upper), …]`` in batch order, in the release's order of operations."""
    _check_observed(batch_bounds)
    lower, upper = np.float32(batch_bounds[0][0]), np.float32(batch_bounds[0][1])
    for k, (new_lower, new_upper) in enumerate(batch_bounds[1:], start=1):
        ratio = 1 - 1 / (1 + k)
        keep, take = np.float32(ratio), np.float32(1 - ratio)
        lower = np.float32(lower * keep + np.float32(new_lower) * take)
        upper = np.float32(upper * keep + np.float32(new_upper) * take)
    return lower, upper


def global_min_max(batch_bounds):
    """The smallest lower and the largest upper of ``[(lower, upper), …]``."""
    _check_observed(batch_bounds)
    return np.float32(min(b[0] for b in batch_bounds)), np.float32(max(b[1] for b in batch_bounds))


class _BatchObserver:
    """Keeps one ``(lower, upper)`` per batch (``batch_statistic``); ``bounds()`` is their ``combine``."""
    combine = staticmethod(running_mean)

    def __init__(self):
        self.batch_bounds = []

    def batch_statistic(self, x):
        raise NotImplementedError

    def update(self, x):
        self.batch_bounds.append(self.batch_statistic(x))

    def bounds(self):
        return self.combine(self.batch_bounds)


class MinMaxObserver(_BatchObserver):
    """Global minimum and maximum over every element of every batch."""
    combine = staticmethod(global_min_max)

    def batch_statistic(self, x):
        return _finite_min_max(_as_float32(x))


class PercentileObserver(_BatchObserver):
    """Per batch the p and 1 − p quantiles (``np.quantile``, linear interpolation); running mean over batches."""

    def __init__(self, p):
        _check_tail_probability(p)
        super().__init__()
        self.p = p

    def batch_statistic(self, x):
        x = _as_float32(x)
        _finite_min_max(x)
        lower, upper = np.quantile(x, [self.p, 1 - self.p], method='linear')
        return np.float32(lower), np.float32(upper)


def histc(x, bins=DBDC_BINS):
    """Histogram over [min, max] as CPU ``torch.histc(x, bins)`` computes it; returns (int64 counts, min, max).

    Bin of v: ``int((v − min) * bins / (max − min))`` in float32 (multiplying by the power of two
    ``bins`` is exact, so this equals ``int((v − min) / (max − min) * bins)``); v == max goes to the last bin.
    Counts are exact integers (torch keeps them in float32, exact up to 2^24 per bin).
    A constant tensor v is binned over torch's widened range [v − 1, v + 1] (edges rounded to float32, so
    the bin is ``bins // 2`` or the one below it).
    """
    x = _as_float32(x)
    mn, mx = _finite_min_max(x)
    hist = np.zeros(bins, dtype=np.int64)
    left, right = (mn, mx) if mn != mx else (np.float32(float(mn) - 1), np.float32(float(mx) + 1))
    if left == right:  # |v| so large that ±1 vanishes in float32; torch then lands in the middle bin
        hist[bins // 2] = x.size
        return hist, mn, mx
    scale, span = np.float32(bins), np.float32(right - left)
    for start in range(0, x.size, _CHUNK):
        t = x[start:start + _CHUNK] - left
        t *= scale
        t /= span
        idx = t.astype(np.intp)
        np.minimum(idx, bins - 1, out=idx)
        hist += np.bincount(idx, minlength=bins)
    return hist, mn, mx


def dbdc_peel(hist, p):
    """Indices (lo, hi) of the end bins DBDC keeps: peel the sparser end until ≤ (1 − p)·N elements remain.

    While ``sum(hist[lo:hi+1]) > (1 − p) * N``: drop bin lo if ``hist[lo] < hist[hi]``, else bin hi (a tie
    drops the upper bin). The threshold is cast to float32, as torch does when it compares its float32 sum
    with the python float. Sums are exact integers, kept running rather than re-summed.
    """
    counts = [int(c) for c in hist]
    total = sum(counts)
    threshold = float(np.float32((1 - p) * total))
    lo, hi = 0, len(counts) - 1
    while total > threshold:
        if counts[lo] < counts[hi]:
            total -= counts[lo]
            lo += 1
        else:
            total -= counts[hi]
            hi -= 1
    return lo, hi


def dbdc_batch_bounds(x, p, bins=DBDC_BINS, lower_edge='right'):
    """DBDC bounds of one batch: (lower, upper) as float32; (min, min) when the batch is constant.

    ``w = (max − min) / bins``; ``upper = w·(hi + 1) + min``; ``lower = w·(lo + 1) + min`` (right edge of
    bin lo, the released behaviour, which clips the exact zeros of post-ReLU inputs up to w) or, with
    ``lower_edge='left'``, ``w·lo + min``. Float32 arithmetic in that order, like the release.
    """
    hist, mn, mx = histc(x, bins)
    if mn == mx:  # zero range: the release also ends at (min, min); the quantizer must guard u == l
        return mn, mn
    lo, hi = dbdc_peel(hist, p)
    w = np.float32(np.float32(mx - mn) / np.float32(bins))
    lower_index = lo + 1 if lower_edge == 'right' else lo
    lower = np.float32(w * np.float32(lower_index) + mn)
    upper = np.float32(w * np.float32(hi + 1) + mn)
    return lower, upper


class DBDCObserver(_BatchObserver):
    """Density-based dual clipping (PTQ4SR): per-batch histogram peeling, running mean over batches.

    Args:
        p (float): tail probability; at most p·N elements fall outside the kept bins of each batch.
        bins (int): histogram bins (2048 in the release).
        lower_edge (str): 'right' (released: right edge of the lowest kept bin) or 'left' (its left edge).
    """

    def __init__(self, p, bins=DBDC_BINS, lower_edge='right'):
        _check_tail_probability(p)
        if lower_edge not in ('right', 'left'):
            raise UserError(f"lower_edge must be 'right' or 'left', got {lower_edge!r}")
        if int(bins) != bins or bins < 1:
            raise UserError(f'bins must be a positive integer, got {bins}')
        super().__init__()
        self.p, self.bins, self.lower_edge = p, int(bins), lower_edge

    def batch_statistic(self, x):
        return dbdc_batch_bounds(x, self.p, self.bins, self.lower_edge)


def weight_minmax_per_channel(w):
    """Per-output-channel (first axis) minimum and maximum of a weight tensor, as float32 arrays."""
    w = np.asarray(w, dtype=np.float32)
    if w.ndim < 1 or w.shape[0] == 0 or w.size == 0:
        raise UserError(f'weight tensor has no elements per output channel (shape {w.shape})')
    flat = w.reshape(w.shape[0], -1)
    return flat.min(axis=1), flat.max(axis=1)


def fake_quantize(x, lower, upper, bits):
    """The quantizer's forward in numpy float32 (SPEC §3): round-half-to-even on the grid of [lower, upper]."""
    levels = np.float32(2 ** bits - 1)
    span = np.maximum(upper - lower, np.float32(1e-8))
    z = np.clip((x - lower) / span, 0, 1) * levels
    return np.round(z) * span / levels + lower


def weight_mse_per_channel(w, bits, shrink=np.linspace(0.3, 1.0, 71)):
    """Per-output-channel bounds ``(s·min, s·max)`` with the shrink factor s (from ``shrink``) that minimises
    the squared quantization error of that channel's weights: clipping a few large weights for a finer grid
    on the rest pays at low bit widths. s = 1 is the min/max of ``weight_minmax_per_channel``, so the error
    is never larger than theirs."""
    flat = np.asarray(w, np.float32).reshape(len(w), -1)
    lo, hi = weight_minmax_per_channel(w)
    best_err, best = None, None
    for s in np.float32(shrink):
        lower, upper = (lo * s)[:, None], (hi * s)[:, None]
        err = ((fake_quantize(flat, lower, upper, bits) - flat) ** 2).sum(axis=1)
        if best is None:
            best_err, best = err, np.full(len(flat), s, np.float32)
        else:
            better = err < best_err
            best_err, best = np.where(better, err, best_err), np.where(better, s, best)
    return lo * best, hi * best
