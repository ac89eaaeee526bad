"""Crop comparison pictures: the most textured window, the layout, panels that are exact crops, and the
HR | bicubic | method picture that evaluate() writes next to the SR images."""
import numpy as np
import pytest
from PIL import Image

from src.models.build import build_net
from src.checkpoint import assign_params
from src.compare import GAP, LABEL_HEIGHT, bicubic_upscale, compose_comparison, save_comparison, textured_window
from src.evaluate import evaluate, open_sets
from src.imresize import bicubic_downscale, imresize
from src.metric import calculate_psnr


def flat_with_noise(shape, top, left, size, seed=0):
    """A flat grey image with one block of strong noise at (top, left)."""
    img = np.full(shape + (3,), 128, np.uint8)
    img[top:top + size, left:left + size] = np.random.RandomState(seed).randint(0, 256, (size, size, 3))
    return img


def panel(picture, i, side):
    """Pixels of the i-th panel (below its label) of a comparison picture."""
    x = i * (side + GAP)
    return picture[LABEL_HEIGHT:, x:x + side]


def test_textured_window_finds_the_noisy_block():
    assert textured_window(flat_with_noise((120, 150), 17, 41, 32), size=32) == (17, 41, 32)
    # a window larger than the image shrinks to its shorter side
    assert textured_window(flat_with_noise((30, 50), 0, 10, 30), size=96) == (0, 10, 30)
    # mild texture beats one strong edge between flat regions (which the largest variance would pick)
    img = np.zeros((64, 160, 3), np.uint8)
    img[:, 40:80] = 255
    img[:, 100:] = 128 + np.random.RandomState(1).randint(-20, 21, (64, 60, 1))
    top, left, _ = textured_window(img, size=32)
    assert left >= 100, (top, left)
    # a flat image has no texture anywhere: the top-left window
    assert textured_window(np.full((40, 40, 3), 7, np.uint8), size=16) == (0, 0, 16)


@pytest.mark.parametrize('zoom', [1, 2])
def test_comparison_layout_and_exact_crops(tmp_path, zoom):
    rng = np.random.RandomState(1)
    hr = flat_with_noise((64, 80), 20, 30, 24)
    others = [rng.randint(0, 256, (64, 80, 3)).astype(np.uint8) for _ in range(3)]
    panels = [('HR', hr, None)] + [(f'method {i}', img, 20.0 + i) for i, img in enumerate(others)]
    path = tmp_path / 'sub' / 'cmp.png'
    window = save_comparison(str(path), panels, size=24, zoom=zoom)
    assert window == (20, 30, 24)
    picture = np.asarray(Image.open(path))
    side = 24 * zoom
    assert picture.shape == (LABEL_HEIGHT + side, 4 * side + 3 * GAP, 3)
    for i, (_, img, _) in enumerate(panels):
        crop = img[20:44, 30:54]
        np.testing.assert_array_equal(panel(picture, i, side), crop.repeat(zoom, 0).repeat(zoom, 1))
        label = picture[:LABEL_HEIGHT, i * (side + GAP):i * (side + GAP) + side]
        assert (label < 128).any()  # some dark text was drawn on the white strip
        if i < 3:
            assert (picture[:, (i + 1) * side + i * GAP:(i + 1) * (side + GAP)] == 255).all()  # white gap
    assert not list(path.parent.glob('.*tmp*'))  # written atomically, no temp file left


def test_comparison_refuses_a_panel_that_misses_the_window():
    hr = np.zeros((40, 40, 3), np.uint8)
    with pytest.raises(ValueError, match="panel 'small'"):
        compose_comparison([('HR', hr, None), ('small', hr[:20], 1.0)], (24, 0, 16))


def test_bicubic_upscale_is_matlab_imresize():
    lr = np.random.RandomState(2).randint(0, 256, (9, 7, 3)).astype(np.uint8)
    np.testing.assert_array_equal(bicubic_upscale(lr, 3), imresize(lr, 3))
    assert bicubic_upscale(lr, 3).shape == (27, 21, 3)


def tiny_net(scale, seed=0):
    net = build_net('edsr_baseline', scale, num_feat=8, num_block=2)
    rng = np.random.RandomState(seed)
    assign_params(net, {n: (rng.normal(0, 1 / np.sqrt(np.prod(p.shape[1:])), p.shape) if n.endswith('weight')
                            else rng.normal(0, 0.1, p.shape)).astype(np.float32)
                        for n, p in net.parameters_and_names()}, 'test weights')
    net.set_train(False)
    return net


def test_evaluate_writes_hr_bicubic_method_comparison(tmp_path):
    scale, size = 2, (30, 36)
    hr = flat_with_noise(size, 6, 10, 12, seed=3)
    hr_dir = tmp_path / 'bench' / 'Tiny' / 'HR'
    hr_dir.mkdir(parents=True)
    Image.fromarray(hr).save(hr_dir / 'im.png')  # no LR folder: LR made by bicubic resize
    sets = open_sets(str(tmp_path / 'bench'), 'Tiny', scale)
    result = evaluate(tiny_net(scale), sets, scale, save_root=str(tmp_path / 'out'), tag='fp', label='FP')
    sr = np.asarray(Image.open(tmp_path / 'out' / 'fp' / 'Tiny' / 'im.png'))
    picture = np.asarray(Image.open(tmp_path / 'out' / 'fp' / 'Tiny_compare' / 'im.png'))
    side = 30 * 2  # the window shrinks to the 30-px image height; zoom 2
    assert picture.shape == (LABEL_HEIGHT + side, 3 * side + 2 * GAP, 3)
    bicubic = bicubic_upscale(bicubic_downscale(hr, scale), scale)
    top, left, n = textured_window(hr)
    assert n == 30
    for i, img in enumerate((hr, bicubic, sr)):
        crop = img[top:top + n, left:left + n]
        np.testing.assert_array_equal(panel(picture, i, side), crop.repeat(2, 0).repeat(2, 1))
    assert result['Tiny']['psnr'] == round(calculate_psnr(sr, hr, crop_border=scale), 4)
