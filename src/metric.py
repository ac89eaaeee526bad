"""Image-quality metrics of the SR protocol: Y-channel PSNR and SSIM, BasicSR/MATLAB compatible (numpy).

All metric arithmetic is float64. Inputs are uint8-range HxWx3 RGB arrays (0..255). ``s`` border pixels are
cropped on each side before measuring, as BasicSR's ``calculate_psnr`` / ``calculate_ssim`` do.
"""
import cv2
import numpy as np

from src.errors import UserError

# BT.601 studio-swing luma, R, G, B order, for 0..255 inputs: Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255.
Y_COEFFS = (65.481, 128.553, 24.966)
Y_OFFSET = 16.0
PIXEL_MAX = 255.0
SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_C1 = (0.01 * PIXEL_MAX) ** 2
SSIM_C2 = (0.03 * PIXEL_MAX) ** 2


def rgb_to_y(img):
    """Y (luma) of an RGB image with values in 0..255, as float64 HxW.

    ``Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255``: black → 16, white → 235. Equals BasicSR's
    ``rgb2ycbcr(img / 255., y_only=True) * 255`` (BasicSR works in float32 there; this is float64, which
    moves a PSNR by well under 1e-4 dB).
    """
    img = np.asarray(img, dtype=np.float64)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f'rgb_to_y needs an HxWx3 RGB image, got shape {img.shape}')
    return img @ (np.array(Y_COEFFS) / PIXEL_MAX) + Y_OFFSET


def prepare_pair(sr, hr, crop_border, test_y_channel):
    """Check shapes, crop the border, optionally take Y; returns two float64 HxWxC arrays."""
    sr, hr = np.asarray(sr), np.asarray(hr)
    if sr.shape != hr.shape:
        raise ValueError(f'image shapes differ: sr {sr.shape}, hr {hr.shape}')
    if sr.ndim == 2:
        sr, hr = sr[..., None], hr[..., None]
    if crop_border < 0 or 2 * crop_border >= min(sr.shape[:2]):
        raise ValueError(f'crop_border {crop_border} does not fit image shape {sr.shape}')
    if crop_border:
        sr = sr[crop_border:-crop_border, crop_border:-crop_border]
        hr = hr[crop_border:-crop_border, crop_border:-crop_border]
    if test_y_channel and sr.shape[2] == 3:
        return rgb_to_y(sr)[..., None], rgb_to_y(hr)[..., None]
    return sr.astype(np.float64), hr.astype(np.float64)


def calculate_psnr(sr, hr, crop_border, test_y_channel=True):
    """PSNR in dB: ``10 log10(255² / MSE)`` over the cropped image (Y channel by default); inf when equal."""
    sr, hr = prepare_pair(sr, hr, crop_border, test_y_channel)
    mse = np.mean((sr - hr) ** 2)
    if mse == 0:
        return float('inf')
    return float(10.0 * np.log10(PIXEL_MAX ** 2 / mse))


def _ssim_single(img1, img2):
    """SSIM of two float64 HxW images (0..255): MATLAB ``ssim_index`` as BasicSR ``_ssim`` computes it.

    Gaussian 11×11 (σ = 1.5) local statistics over the 'valid' region: ``cv2.filter2D`` filters the whole
    image (reflected border) and the 5 rows/columns on each side, whose windows reach the border, are dropped.
    """
    kernel = cv2.getGaussianKernel(SSIM_WINDOW, SSIM_SIGMA)
    window = np.outer(kernel, kernel.transpose())
    r = SSIM_WINDOW // 2

    def local_mean(x):
        return cv2.filter2D(x, -1, window)[r:-r, r:-r]

    mu1, mu2 = local_mean(img1), local_mean(img2)
    mu1_sq, mu2_sq, mu1_mu2 = mu1 ** 2, mu2 ** 2, mu1 * mu2
    sigma1_sq = local_mean(img1 ** 2) - mu1_sq
    sigma2_sq = local_mean(img2 ** 2) - mu2_sq
    sigma12 = local_mean(img1 * img2) - mu1_mu2
    ssim_map = ((2 * mu1_mu2 + SSIM_C1) * (2 * sigma12 + SSIM_C2)) / (
        (mu1_sq + mu2_sq + SSIM_C1) * (sigma1_sq + sigma2_sq + SSIM_C2))
    return ssim_map.mean()


def calculate_ssim(sr, hr, crop_border, test_y_channel=True):
    """SSIM (Wang et al. 2004, MATLAB reference) on the cropped image; the mean over channels if not Y."""
    sr, hr = prepare_pair(sr, hr, crop_border, test_y_channel)
    if min(sr.shape[:2]) < SSIM_WINDOW:
        raise ValueError(f'SSIM needs at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels after cropping, '
                         f'got {sr.shape[:2]}')
    return float(np.mean([_ssim_single(sr[..., c], hr[..., c]) for c in range(sr.shape[2])]))


def _to_hwc(img, input_order):
    """Drop a batch axis of 1 and return HxWxC, guessing CHW/HWC from where the 1 or 3 channels are."""
    if img.ndim == 4 and img.shape[0] == 1:
        img = img[0]
    if img.ndim != 3:
        raise UserError(f'expected a CHW or HWC image (or 1xCxHxW), got shape {img.shape}')
    if input_order is None:
        chw, hwc = img.shape[0] in (1, 3), img.shape[2] in (1, 3)
        if chw == hwc:
            raise UserError(f'cannot tell CHW from HWC for shape {img.shape}: pass input_order')
        input_order = 'CHW' if chw else 'HWC'
    if input_order not in ('CHW', 'HWC'):
        raise UserError(f'input_order must be "CHW" or "HWC", got {input_order!r}')
    return img.transpose(1, 2, 0) if input_order == 'CHW' else img


def tensor_to_uint8(img, input_order=None):
    """Network output in [0, 1] (CHW, HWC or 1xCxHxW; numpy or anything with ``asnumpy``) → uint8 HWC.

    ``round(clip(x, 0, 1) * 255)`` in float32 with round-half-to-even, exactly as BasicSR ``tensor2img``
    (``.float().clamp_(0, 1)``, then ``(img * 255.0).round()``) and EDSR-PyTorch ``quantize`` do.
    """
    if hasattr(img, 'asnumpy'):
        img = img.asnumpy()
    img = _to_hwc(np.asarray(img, dtype=np.float32), input_order)
    return np.round(np.clip(img, 0.0, 1.0) * np.float32(PIXEL_MAX)).astype(np.uint8)
