"""MATLAB-compatible bicubic imresize: bit-exact regeneration of the shared LR files, known answers,
and agreement with a plain loop-based reading of MATLAB's ``imresize.m``."""
import math

import numpy as np
import pytest
from PIL import Image

from src.errors import UserError
from src.imresize import bicubic_downscale, calculate_weights_indices, imresize

SCALES = (2, 3, 4)


def read_rgb(path):
    """PNG as uint8 HxWx3 (greyscale becomes 3 identical channels, as in the shared datasets)."""
    return np.asarray(Image.open(path).convert('RGB'))


def lr_mismatches(set_dir, hr_paths):
    """(name, scale, differing values, max |diff|) for each LR file that ``bicubic_downscale`` misses."""
    bad, checked = [], 0
    for hr_path in hr_paths:
        hr = read_rgb(hr_path)
        for s in SCALES:
            lr_path = set_dir / 'LR_bicubic' / f'X{s}' / f'{hr_path.stem}x{s}.png'
            if not lr_path.is_file():
                continue
            lr, out = read_rgb(lr_path), bicubic_downscale(hr, s)
            checked += 1
            if out.shape != lr.shape:
                bad.append((hr_path.stem, s, f'shape {out.shape} != {lr.shape}'))
            elif not np.array_equal(out, lr):
                diff = np.abs(out.astype(int) - lr)
                bad.append((hr_path.stem, s, int((diff > 0).sum()), int(diff.max())))
    return bad, checked


@pytest.mark.parametrize('set_name', ['benchmark/Set5', 'benchmark/Set14', 'benchmark/B100', 'train/BSD200'])
def test_regenerates_shared_lr_bit_exact(shared_dir, set_name):
    set_dir = shared_dir / 'datasets' / set_name
    hr_paths = sorted((set_dir / 'HR').glob('*.png'))
    if not hr_paths:
        pytest.skip(f'no HR images in {set_dir / "HR"}')
    if set_name == 'train/BSD200':
        hr_paths = hr_paths[::20]  # 10 images spread over the 200 keep the test fast
    bad, checked = lr_mismatches(set_dir, hr_paths)
    assert checked > 0, f'no LR_bicubic files next to {set_dir / "HR"}'
    assert not bad, f'{len(bad)}/{checked} LR images differ (name, scale, #values, max diff): {bad}'


def reference_resize_1d(line, out_len, scale):
    """Per-output-pixel loop over MATLAB's contributions (float64, no rounding)."""
    n = len(line)
    width = 4.0 / scale if scale < 1 else 4.0
    stretch = scale if scale < 1 else 1.0
    out = []
    for i in range(1, out_len + 1):
        u = i / scale + 0.5 * (1 - 1 / scale)
        left = math.floor(u - width / 2)
        taps = range(left, left + math.ceil(width) + 2)
        ws = [stretch * keys_cubic(stretch * (u - j)) for j in taps]
        total = sum(ws)
        out.append(sum(w / total * line[reflect(j - 1, n)] for w, j in zip(ws, taps)))
    return out


def keys_cubic(x):
    x = abs(x)
    if x <= 1:
        return 1.5 * x ** 3 - 2.5 * x ** 2 + 1
    if x <= 2:
        return -0.5 * x ** 3 + 2.5 * x ** 2 - 4 * x + 2
    return 0.0


def reflect(j, n):
    """0-based index with symmetric padding (x[-1] = x[0], x[n] = x[n-1]), repeated as needed."""
    while j < 0 or j >= n:
        j = -j - 1 if j < 0 else 2 * n - 1 - j
    return j


def reference_imresize(img, scale):
    """Rows first, then columns, rounding half up to uint8 after each pass (MATLAB, uint8 input)."""
    out_h, out_w = math.ceil(img.shape[0] * scale), math.ceil(img.shape[1] * scale)
    rows = np.array([reference_resize_1d(img[:, c].astype(float), out_h, scale)
                     for c in range(img.shape[1])]).T
    rows = np.clip(np.floor(rows + 0.5), 0, 255)
    cols = np.array([reference_resize_1d(rows[r], out_w, scale) for r in range(out_h)])
    return np.clip(np.floor(cols + 0.5), 0, 255).astype(np.uint8)


@pytest.mark.parametrize('shape, scale', [((12, 12), 1 / 2), ((13, 11), 1 / 3), ((9, 17), 1 / 4),
                                          ((10, 7), 0.6), ((5, 4), 2.0), ((3, 2), 1 / 3)])
def test_matches_loop_reference(shape, scale):
    img = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    np.testing.assert_array_equal(imresize(img, scale), reference_imresize(img, scale))


def test_interior_weights_at_x2():
    # MATLAB's x2 antialiased cubic taps: 0.5 * cubic(0.5 * d) for d = ±0.5, ±1.5, ±2.5, ±3.5
    half = [0.43359375, 0.11328125, -0.03515625, -0.01171875]
    weights, indices = calculate_weights_indices(16, 8, 0.5)
    np.testing.assert_array_equal(weights[3], half[::-1] + half)
    # output 4 (1-based) is centred on input 7.5: taps 4..11 (1-based) are the non-zero ones
    np.testing.assert_array_equal(indices[3], np.arange(3, 11))
    np.testing.assert_array_equal(indices[0], [2, 1, 0, 0, 1, 2, 3, 4])  # symmetric edge padding


def test_ties_round_half_up_and_negatives_clip():
    row = np.zeros((1, 8), np.uint8)
    row[0, 4] = 128  # 128 × the x2 weights gives exact halves: -1.5, 14.5, 55.5, -4.5
    np.testing.assert_array_equal(imresize(row.astype(np.float64), 0.5), [[-1.5, 14.5, 55.5, -4.5]])
    np.testing.assert_array_equal(imresize(row, 0.5), [[0, 15, 56, 0]])
    np.testing.assert_array_equal(imresize(row.T, 0.5), [[0], [15], [56], [0]])


@pytest.mark.parametrize('scale', [1 / 2, 1 / 3, 1 / 4, 0.7, 1.5])
def test_constant_image_stays_constant_with_ceil_shape(scale):
    img = np.full((31, 20, 3), 201, np.uint8)
    out = imresize(img, scale)
    assert out.dtype == np.uint8
    assert out.shape == (math.ceil(31 * scale), math.ceil(20 * scale), 3)
    assert np.all(out == 201)
    np.testing.assert_allclose(imresize(img.astype(np.float32), scale), 201.0, rtol=0, atol=1e-12)


def test_bicubic_downscale_crops_top_left():
    img = np.random.default_rng(1).integers(0, 256, (14, 11, 3), dtype=np.uint8)
    out = bicubic_downscale(img, 3)
    assert out.shape == (4, 3, 3)
    np.testing.assert_array_equal(out, imresize(img[:12, :9], 1 / 3))


def test_bad_input_raises_user_error():
    with pytest.raises(UserError):
        imresize(np.zeros((4, 4), np.int32), 0.5)
    with pytest.raises(UserError):
        imresize(np.zeros((4, 4), np.uint8), 0)
    with pytest.raises(UserError):
        bicubic_downscale(np.zeros((4, 4), np.uint8), 2.5)
