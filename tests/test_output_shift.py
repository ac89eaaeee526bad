"""src/output_shift.py: a constant brightness offset is measured exactly and removing it restores FP's PSNR."""
import numpy as np
import pytest

from src.output_shift import offset_of_image, offsets_of_set


def _images(seed=0):
    rng = np.random.default_rng(seed)
    fp = rng.integers(30, 200, (40, 36, 3)).astype(np.uint8)
    hr = np.clip(fp.astype(int) + rng.integers(-6, 7, fp.shape), 0, 255).astype(np.uint8)
    return fp, hr


def test_a_constant_offset_is_all_of_the_error_and_removing_it_restores_fp():
    fp, hr = _images()
    r = offset_of_image(fp + np.uint8(10), fp, hr, scale=2)
    assert r['offset'] == pytest.approx(10 * (65.481 + 128.553 + 24.966) / 255)  # +10 in R, G, B → Y
    assert r['offset_share'] == pytest.approx(1.0)
    assert r['psnr_no_offset'] == pytest.approx(r['psnr_fp'], abs=1e-9)
    assert r['psnr'] < r['psnr_fp'] - 3


def test_zero_mean_noise_has_no_offset_to_remove():
    fp, hr = _images(1)
    rng = np.random.default_rng(2)
    noise = rng.choice([-8, 8], fp.shape[:2])[..., None]  # ±8 per pixel, equal in R, G, B
    r = offset_of_image((fp.astype(int) + noise).astype(np.uint8), fp, hr, scale=2)
    assert abs(r['offset']) < 0.5 and r['offset_share'] < 0.01
    assert r['psnr_no_offset'] == pytest.approx(r['psnr'], abs=0.01)


class _Pairs:
    def __init__(self, images):
        self.images = images

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return self.images[i]


def test_set_means_over_images_with_forwards():
    rng = np.random.default_rng(3)
    lr = [rng.integers(40, 200, (8, 10, 3)).astype(np.uint8) for _ in range(2)]
    fp = lambda x: np.repeat(np.repeat(x, 2, axis=2), 2, axis=3)  # noqa: E731  (nearest ×2, NCHW)
    q = lambda x: fp(x) + np.float32(5 / 255)  # noqa: E731
    hr = [np.clip(np.repeat(np.repeat(im, 2, 0), 2, 1) + rng.integers(-2, 3, (16, 20, 3)), 0, 255).astype(np.uint8)
          for im in lr]
    out = offsets_of_set(q, fp, _Pairs([('a', lr[0], hr[0]), ('b', lr[1], hr[1])]), 2)
    assert set(out['images']) == {'a', 'b'}
    assert out['mean']['abs_offset'] == pytest.approx(5 * 219 / 255, abs=0.02)
    assert out['mean']['psnr_no_offset'] == pytest.approx(out['mean']['psnr_fp'], abs=0.05)
    assert out['mean']['psnr'] < out['mean']['psnr_fp'] - 3
