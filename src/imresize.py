"""MATLAB-compatible bicubic ``imresize`` in numpy (how the benchmark LR images were made).

Follows MATLAB's ``imresize.m`` (``'bicubic'``, antialiasing on): for scale ``c`` < 1 the Keys cubic
(a = -0.5) is stretched to ``h(x) = c · cubic(c·x)`` with support ``4/c``; output pixel ``i`` (1-based)
is centred on input coordinate ``u = i/c + (1 - 1/c)/2``; taps are ``floor(u - 2/c) + (0 .. ceil(4/c)+1)``,
weights are normalised to sum 1, and out-of-range taps mirror the edge symmetrically (``x[-1] = x[0]``).
The image is resized one dimension at a time, the dimension with the smaller scale first (rows
first on a tie); for uint8 input each pass is rounded half away from zero and saturated to uint8,
as MATLAB does, so a 2-D resize is *not* a single rounding of the separable product.

>>> imresize(np.full((6, 9), 7, np.uint8), 1 / 3)
array([[7, 7, 7],
       [7, 7, 7]], dtype=uint8)
"""
import math

import numpy as np

from src.errors import UserError


def cubic(x):
    """Keys cubic convolution kernel with a = -0.5 (MATLAB ``imresize``'s ``cubic``)."""
    ax = np.abs(x)
    ax2, ax3 = ax ** 2, ax ** 3
    return ((1.5 * ax3 - 2.5 * ax2 + 1) * (ax <= 1)
            + (-0.5 * ax3 + 2.5 * ax2 - 4 * ax + 2) * ((ax > 1) & (ax <= 2)))


def calculate_weights_indices(in_length, out_length, scale, antialiasing=True):
    """Weights (out_length, P) and 0-based input indices (out_length, P) of one 1-D resize.

    Mirrors MATLAB's ``contributions``: the arithmetic is written in the same order so that the
    float64 weights, and hence the rounded uint8 results, match MATLAB's bit for bit.
    """
    kernel_width = 4.0
    if scale < 1 and antialiasing:
        kernel = lambda x: scale * cubic(scale * x)  # noqa: E731 -- MATLAB's h = @(x) scale*kernel(scale*x)
        kernel_width = kernel_width / scale
    else:
        kernel = cubic
    x = np.arange(1, out_length + 1, dtype=np.float64)[:, None]
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - kernel_width / 2)
    taps = int(math.ceil(kernel_width)) + 2
    indices = left + np.arange(taps)[None, :]
    weights = kernel(u - indices)
    weights = weights / weights.sum(axis=1, keepdims=True)
    # MATLAB: aux = [1:in_length, in_length:-1:1]; indices = aux(mod(indices-1, 2*in_length) + 1)
    mirror = np.concatenate([np.arange(in_length), np.arange(in_length - 1, -1, -1)])
    indices = mirror[np.mod(indices.astype(np.int64) - 1, 2 * in_length)]
    used = np.any(weights != 0, axis=0)  # MATLAB drops all-zero tap columns
    return weights[:, used], indices[:, used]


def resize_along_axis(img, axis, out_length, scale):
    """One 1-D pass along ``axis`` (0 or 1); uint8 input is rounded half up and saturated to uint8."""
    weights, indices = calculate_weights_indices(img.shape[axis], out_length, scale)
    src = np.moveaxis(img, axis, 0).astype(np.float64)
    bcast = (slice(None),) + (None,) * (src.ndim - 1)
    out = np.zeros((out_length,) + src.shape[1:], np.float64)
    # one tap at a time keeps memory at one output-sized array; exact .5 ties occur (×2, ×4 weights
    # are dyadic), so the half-up rounding below matters, not the summation order
    for k in range(weights.shape[1]):
        out += weights[:, k][bcast] * np.take(src, indices[:, k], axis=0)
    if img.dtype == np.uint8:
        out = np.clip(np.floor(out + 0.5), 0, 255).astype(np.uint8)
    return np.moveaxis(out, 0, axis)


def imresize(img, scale):
    """MATLAB ``imresize(img, scale, 'bicubic')`` of an HxW or HxWxC image, ceil(h·scale) × ceil(w·scale).

    uint8 in → uint8 out (rounded after each 1-D pass, as MATLAB); float in → float64 out, unrounded.
    """
    img = np.asarray(img)
    if img.ndim not in (2, 3) or not (img.dtype == np.uint8 or np.issubdtype(img.dtype, np.floating)):
        raise UserError(f'imresize needs a uint8 or float HxW / HxWxC image, got {img.dtype} {img.shape}')
    if not scale > 0:
        raise UserError(f'imresize scale must be positive, got {scale}')
    out_h, out_w = (int(math.ceil(n * scale)) for n in img.shape[:2])
    # MATLAB resizes the smaller-scale dimension first and rows on a tie; with one scale for both
    # dimensions that is always rows first. The order matters because each pass is rounded.
    img = resize_along_axis(img, 0, out_h, scale)
    return resize_along_axis(img, 1, out_w, scale)


def mod_crop(hr, s):
    """Top-left crop of ``hr`` to a multiple of ``s`` in both height and width."""
    h, w = hr.shape[:2]
    return hr[:h - h % s, :w - w % s]


def bicubic_downscale(hr, s):
    """The benchmark LR image for integer scale ``s``: ``imresize(mod_crop(hr, s), 1/s)``.

    This reproduces every LR file in ../shared/datasets bit-exactly (Set5, Set14, B100, BSD200 at
    ×2/×3/×4). B100's HR files are BSD300 images already cut to 480×320, so at ×3 the crop here is
    480×318 and the LR 160×106, one LR row/column less than a 481×321 BSD300 original gives (480×321 →
    160×107, as for BSD200). A bottom/right crop, one final rounding or columns-first order each fail.
    """
    if int(s) != s or s < 1:
        raise UserError(f'bicubic_downscale needs a positive integer scale, got {s}')
    s = int(s)
    return imresize(mod_crop(np.asarray(hr), s), 1.0 / s)
