"""Known answers for Y-channel PSNR / SSIM and output rounding, plus an independent SSIM reference."""
import math

import numpy as np
import pytest
from scipy.signal import correlate2d

from src.errors import UserError
from src.metric import calculate_psnr, calculate_ssim, rgb_to_y, tensor_to_uint8


def _random_rgb(shape, seed):
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


def test_rgb_to_y_known_values():
    img = np.array([[[0, 0, 0], [255, 255, 255]], [[255, 0, 0], [0, 0, 255]]], dtype=np.uint8)
    y = rgb_to_y(img)
    assert y.dtype == np.float64
    np.testing.assert_allclose(y, [[16.0, 235.0], [16 + 65.481, 16 + 24.966]], rtol=0, atol=1e-12)


def test_rgb_to_y_matches_basicsr_float32_path():
    # BasicSR: to_y_channel → float32 img / 255, np.dot with the coefficients, + 16, /255 → float32, × 255
    img = _random_rgb((20, 30, 3), 1)
    x = img.astype(np.float32) / 255.
    basicsr_y = ((np.dot(x, [65.481, 128.553, 24.966]) + 16.0) / 255.).astype(np.float32) * 255.
    np.testing.assert_allclose(rgb_to_y(img), basicsr_y, rtol=0, atol=3e-5)


def test_psnr_equal_images_is_inf():
    img = _random_rgb((16, 16, 3), 2)
    assert calculate_psnr(img, img.copy(), crop_border=2) == math.inf


def test_psnr_one_grey_level_everywhere():
    hr = _random_rgb((12, 14, 3), 3) // 2
    sr = hr + 1
    # RGB: every channel off by 1 → MSE 1
    assert calculate_psnr(sr, hr, 0, test_y_channel=False) == pytest.approx(20 * math.log10(255), abs=1e-12)
    assert calculate_psnr(sr, hr, 0, test_y_channel=False) == pytest.approx(48.1308036, abs=1e-6)
    # Y: ΔY = (65.481 + 128.553 + 24.966) / 255 = 219 / 255 everywhere
    assert calculate_psnr(sr, hr, 2) == pytest.approx(20 * math.log10(255 * 255 / 219), abs=1e-10)
    assert calculate_psnr(sr, hr, 2) == pytest.approx(49.4527249, abs=1e-6)


def test_psnr_ignores_border_differences():
    hr = _random_rgb((20, 20, 3), 4)
    sr = hr.copy()
    sr[:, :3] = 255 - sr[:, :3]
    sr[-3:, :] = 0
    assert calculate_psnr(sr, hr, crop_border=3) == math.inf
    assert calculate_psnr(sr, hr, crop_border=2) < 20


def test_psnr_border_crop_uses_inner_pixels_only():
    hr = np.full((10, 10, 3), 100, np.uint8)
    sr = hr.copy()
    sr[5, 5] = 101  # one inner pixel, ΔY = 219/255, over 6×6 cropped pixels
    expected = 10 * math.log10(255 ** 2 * 36 / (219 / 255) ** 2)
    assert calculate_psnr(sr, hr, crop_border=2) == pytest.approx(expected, abs=1e-10)


def test_shape_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r'\(8, 8, 3\).*\(8, 9, 3\)'):
        calculate_psnr(np.zeros((8, 8, 3), np.uint8), np.zeros((8, 9, 3), np.uint8), 0)
    with pytest.raises(ValueError, match='shapes differ'):
        calculate_ssim(np.zeros((20, 20, 3), np.uint8), np.zeros((20, 21, 3), np.uint8), 0)


def test_ssim_equal_images_is_one():
    img = _random_rgb((32, 40, 3), 5)
    assert calculate_ssim(img, img.copy(), crop_border=4) == pytest.approx(1.0, abs=1e-12)


def test_ssim_constant_images_known_answer():
    # σ = 0 everywhere: SSIM = (2ab + C1) / (a² + b² + C1) with a, b the two Y levels
    a_rgb, b_rgb = 100, 110
    a, b = 16 + 219 * a_rgb / 255, 16 + 219 * b_rgb / 255
    c1 = (0.01 * 255) ** 2
    sr = np.full((24, 24, 3), a_rgb, np.uint8)
    hr = np.full((24, 24, 3), b_rgb, np.uint8)
    assert calculate_ssim(sr, hr, 2) == pytest.approx((2 * a * b + c1) / (a * a + b * b + c1), abs=1e-12)


def _ssim_reference(y1, y2):
    """Straightforward SSIM: explicit Gaussian, 'valid' correlation, no OpenCV."""
    t = np.arange(11) - 5
    g = np.exp(-t ** 2 / (2 * 1.5 ** 2))
    window = np.outer(g, g) / np.outer(g, g).sum()

    def filt(x):
        return correlate2d(x, window, mode='valid')

    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mu1, mu2 = filt(y1), filt(y2)
    s11, s22, s12 = filt(y1 * y1) - mu1 ** 2, filt(y2 * y2) - mu2 ** 2, filt(y1 * y2) - mu1 * mu2
    num = (2 * mu1 * mu2 + c1) * (2 * s12 + c2)
    return np.mean(num / ((mu1 ** 2 + mu2 ** 2 + c1) * (s11 + s22 + c2)))


@pytest.mark.parametrize('shape, crop', [((23, 31, 3), 0), ((40, 36, 3), 3), ((17, 17, 3), 2)])
def test_ssim_matches_independent_reference(shape, crop):
    hr = _random_rgb(shape, 6)
    noise = np.random.default_rng(7).integers(-20, 21, size=shape)
    sr = np.clip(hr.astype(int) + noise, 0, 255).astype(np.uint8)
    c = slice(crop, shape[0] - crop), slice(crop, shape[1] - crop)
    expected = _ssim_reference(rgb_to_y(sr)[c], rgb_to_y(hr)[c])
    assert calculate_ssim(sr, hr, crop) == pytest.approx(expected, rel=1e-10)
    assert 0.2 < expected < 0.99


def test_ssim_rgb_is_channel_mean():
    hr = _random_rgb((20, 22, 3), 8)
    sr = np.clip(hr.astype(int) + 9, 0, 255).astype(np.uint8)
    expected = np.mean([_ssim_reference(sr[..., i].astype(float), hr[..., i].astype(float)) for i in range(3)])
    assert calculate_ssim(sr, hr, 0, test_y_channel=False) == pytest.approx(expected, rel=1e-10)


def test_ssim_too_small_after_crop():
    with pytest.raises(ValueError, match='11x11'):
        calculate_ssim(np.zeros((14, 14, 3), np.uint8), np.zeros((14, 14, 3), np.uint8), 2)


def test_tensor_to_uint8_clips_rounds_half_to_even_and_transposes():
    levels = np.array([-0.2, 0.0, 0.5, 1.5, 2.5, 3.5, 254.5, 255.0, 300.0]) / 255
    chw = np.stack([levels, levels, levels]).astype(np.float32)[:, None, :]  # 3×1×9
    out = tensor_to_uint8(chw)
    assert out.dtype == np.uint8 and out.shape == (1, 9, 3)
    np.testing.assert_array_equal(out[0, :, 0], [0, 0, 0, 2, 2, 4, 254, 255, 255])
    np.testing.assert_array_equal(tensor_to_uint8(chw[None]), out)
    np.testing.assert_array_equal(tensor_to_uint8(out.astype(np.float32) / 255, input_order='HWC'), out)


def test_tensor_to_uint8_ambiguous_layout():
    with pytest.raises(UserError, match='input_order'):
        tensor_to_uint8(np.zeros((3, 5, 3), np.float32))
    assert tensor_to_uint8(np.zeros((3, 5, 3), np.float32), input_order='CHW').shape == (5, 3, 3)
