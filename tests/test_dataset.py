"""src.dataset: benchmark pairs in both layouts, bicubic fallback, every bad-input error, and the seeded
calibration crop stream (reproducing ../shared/reference/calib_crops.json exactly)."""
import json
import os

import numpy as np
import pytest
from PIL import Image

from src.dataset import BenchmarkPairs, CalibrationImages, random_crop_batches, read_image
from src.errors import UserError
from src.imresize import bicubic_downscale


def random_image(h, w, seed, grey=False):
    shape = (h, w) if grey else (h, w, 3)
    return np.random.RandomState(seed).randint(0, 256, shape).astype(np.uint8)


def save_png(path, array):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def make_set(root, name, scale, sizes=((18, 24), (19, 25)), grey=False, with_lr=True):
    """<root>/<name>/HR/img<i>.png and, unless ``with_lr`` is False, LR_bicubic/X<s>/img<i>x<s>.png."""
    hrs = {}
    for i, (h, w) in enumerate(sizes):
        hr = random_image(h, w, seed=i, grey=grey)
        hrs[f'img{i}'] = hr
        save_png(os.path.join(root, name, 'HR', f'img{i}.png'), hr)
        if with_lr:
            save_png(os.path.join(root, name, 'LR_bicubic', f'X{scale}', f'img{i}x{scale}.png'),
                     bicubic_downscale(hr, scale))
    return hrs


def test_pairs_crop_hr_to_lr_times_scale(tmp_path):
    hrs = make_set(tmp_path, 'Tiny', 2)
    pairs = BenchmarkPairs(str(tmp_path), 'Tiny', 2)
    assert len(pairs) == 2 and not pairs.generate_lr
    for i, (h, w) in enumerate(((18, 24), (19, 25))):
        name, lr, hr = pairs[i]
        assert name == f'img{i}'
        assert lr.shape == (h // 2, w // 2, 3) and lr.dtype == np.uint8
        assert hr.shape == (h // 2 * 2, w // 2 * 2, 3)
        np.testing.assert_array_equal(hr, hrs[name][:hr.shape[0], :hr.shape[1]])
        np.testing.assert_array_equal(lr, bicubic_downscale(hrs[name], 2))


def test_greyscale_images_become_three_channels(tmp_path):
    hrs = make_set(tmp_path, 'Grey', 3, sizes=((18, 24),), grey=True)
    name, lr, hr = BenchmarkPairs(str(tmp_path), 'Grey', 3)[0]
    assert lr.shape == (6, 8, 3) and hr.shape == (18, 24, 3)
    for c in range(3):
        np.testing.assert_array_equal(hr[..., c], hrs[name])
        np.testing.assert_array_equal(lr[..., c], bicubic_downscale(hrs[name], 3))


def test_div2k_layout(tmp_path):
    hr = random_image(16, 20, seed=3)
    save_png(str(tmp_path / 'DIV2K_valid_HR' / '0801.png'), hr)
    save_png(str(tmp_path / 'DIV2K_valid_LR_bicubic' / 'X2' / '0801x2.png'), bicubic_downscale(hr, 2))
    pairs = BenchmarkPairs(str(tmp_path), 'DIV2K', 2)
    name, lr, got_hr = pairs[0]
    assert (name, len(pairs), pairs.generate_lr) == ('0801', 1, False)
    np.testing.assert_array_equal(got_hr, hr)
    np.testing.assert_array_equal(lr, bicubic_downscale(hr, 2))


def test_missing_lr_folder_generates_bicubic_lr(tmp_path):
    hrs = make_set(tmp_path, 'NoLR', 4, sizes=((19, 25),), with_lr=False)
    pairs = BenchmarkPairs(str(tmp_path), 'NoLR', 4)
    assert pairs.generate_lr
    name, lr, hr = pairs[0]
    np.testing.assert_array_equal(lr, bicubic_downscale(hrs[name], 4))
    assert lr.shape == (4, 6, 3) and hr.shape == (16, 24, 3)


def test_one_missing_lr_file_is_named(tmp_path):
    make_set(tmp_path, 'Gap', 2)
    os.remove(tmp_path / 'Gap' / 'LR_bicubic' / 'X2' / 'img1x2.png')
    pairs = BenchmarkPairs(str(tmp_path), 'Gap', 2)
    pairs[0]
    with pytest.raises(UserError, match=r'LR image .*img1x2\.png is missing'):
        pairs[1]


def test_wrong_scale_lr_is_a_size_mismatch(tmp_path):
    hrs = make_set(tmp_path, 'Mixed', 2, sizes=((24, 24),))
    # an x2-sized LR image filed under X3
    save_png(str(tmp_path / 'Mixed' / 'LR_bicubic' / 'X3' / 'img0x3.png'), bicubic_downscale(hrs['img0'], 2))
    with pytest.raises(UserError, match=r'img0x3\.png is 12x12 but img0\.png is 24x24: not a x3 pair'):
        BenchmarkPairs(str(tmp_path), 'Mixed', 3)[0]


@pytest.mark.parametrize('damage', ['truncate', 'text'])
def test_unreadable_image_is_named(tmp_path, damage):
    make_set(tmp_path, 'Bad', 2, sizes=((18, 24),))
    path = tmp_path / 'Bad' / 'HR' / 'img0.png'
    if damage == 'truncate':
        data = path.read_bytes()
        path.write_bytes(data[:len(data) // 2])
    else:
        path.write_text('not an image\n')
    with pytest.raises(UserError, match=r'cannot read image .*img0\.png'):
        BenchmarkPairs(str(tmp_path), 'Bad', 2)[0]
    with pytest.raises(UserError, match=r'img0\.png'):
        read_image(str(path))


def test_missing_root_and_unknown_set(tmp_path):
    with pytest.raises(UserError, match=r'--data_path .*nowhere does not exist'):
        BenchmarkPairs(str(tmp_path / 'nowhere'), 'Set5', 2)
    make_set(tmp_path, 'SetA', 2, sizes=((18, 24),))
    make_set(tmp_path, 'SetB', 2, sizes=((18, 24),))
    with pytest.raises(UserError, match="dataset 'Set5' not found .*available: SetA, SetB"):
        BenchmarkPairs(str(tmp_path), 'Set5', 2)
    with pytest.raises(UserError, match="dataset 'DIV2K' not found"):
        BenchmarkPairs(str(tmp_path), 'DIV2K', 2)


def test_empty_hr_folder(tmp_path):
    os.makedirs(tmp_path / 'Empty' / 'HR')
    (tmp_path / 'Empty' / 'HR' / 'notes.txt').write_text('no images here')
    with pytest.raises(UserError, match='HR folder of Empty .* holds no images'):
        BenchmarkPairs(str(tmp_path), 'Empty', 2)


# --- calibration images and crops -------------------------------------------------------------------
def make_calib(root, count=4, scale=4, size=(20, 30)):
    """LR-only calibration tree <root>/LR_bicubic/X<s>/c<i>x<s>.png; returns {name: image}."""
    images = {}
    for i in range(count):
        img = random_image(*size, seed=10 + i)
        images[f'c{i}'] = img
        save_png(os.path.join(root, 'LR_bicubic', f'X{scale}', f'c{i}x{scale}.png'), img)
    return images


def test_calibration_names_drop_scale_suffix(tmp_path):
    make_calib(tmp_path, count=4)
    images = CalibrationImages(str(tmp_path), 4, 3)
    assert images.names == ['c0', 'c1', 'c2'] and len(images) == 3
    # the LR folder itself works too
    assert CalibrationImages(str(tmp_path / 'LR_bicubic' / 'X4'), 4, 4).names == ['c0', 'c1', 'c2', 'c3']


def test_too_few_calibration_images(tmp_path):
    make_calib(tmp_path, count=3)
    with pytest.raises(UserError, match='holds 3 images but --num_calib_images is 5'):
        CalibrationImages(str(tmp_path), 4, 5)


def test_image_smaller_than_patch(tmp_path):
    make_calib(tmp_path, count=2, size=(20, 30))
    images = CalibrationImages(str(tmp_path), 4, 2)
    random_crop_batches(images, 20, 2, 1, seed=0)
    with pytest.raises(UserError, match=r'smaller than the 21-px patch .*c0x4\.png'):
        random_crop_batches(images, 21, 2, 1, seed=0)


def test_crops_are_seeded(tmp_path):
    make_calib(tmp_path, count=5, size=(40, 50))
    images = CalibrationImages(str(tmp_path), 4, 5)
    first = random_crop_batches(images, 8, 2, 6, seed=0)
    assert first == random_crop_batches(images, 8, 2, 6, seed=0)
    assert first != random_crop_batches(images, 8, 2, 6, seed=1)
    assert len(first) == 6 and all(len(b) == 2 for b in first)
    # 5 images, batches of 2: each epoch gives 2 batches, so batches 0–1 use 4 distinct images
    assert len({name for name, _, _ in first[0] + first[1]}) == 4


def test_patches_are_float_slices_of_the_images(tmp_path):
    originals = make_calib(tmp_path, count=16, size=(50, 60))
    images = CalibrationImages(str(tmp_path), 4, 16)
    crops = random_crop_batches(images, 48, 16, 2, seed=0)
    for batch in crops:
        patches = images.patches(batch, 48)
        assert patches.shape == (16, 3, 48, 48) and patches.dtype == np.float32
        assert 0.0 <= patches.min() and patches.max() <= 1.0
        for patch, (name, top, left) in zip(patches, batch):
            want = originals[name][top:top + 48, left:left + 48].transpose(2, 0, 1).astype(np.float32) / 255.0
            np.testing.assert_array_equal(patch, want)
    with pytest.raises(UserError, match="'nope'"):
        images.patches([('nope', 0, 0)], 48)
    with pytest.raises(UserError, match='does not fit'):
        images.patches([('c0', 10, 0)], 48)


def _as_lists(batches):
    return [[[name, top, left] for name, top, left in batch] for batch in batches]


def test_crops_reproduce_the_reference_stream(shared_dir):
    reference = json.loads((shared_dir / 'reference' / 'calib_crops.json').read_text())
    calib = str(shared_dir / 'datasets' / 'train' / 'BSD200')
    x4 = CalibrationImages(calib, 4, 100)
    assert _as_lists(random_crop_batches(x4, 48, 16, 30, seed=0)) == reference['x4']['dbdc_batches']
    assert _as_lists(random_crop_batches(x4, 48, 2, 500, seed=1)) == reference['x4']['pac_batches']
    x2 = CalibrationImages(calib, 2, 100)
    assert _as_lists(random_crop_batches(x2, 96, 16, 30, seed=0)) == reference['x2']['dbdc_batches']


def test_a_slice_of_a_set_is_a_validation_split(tmp_path):
    root = tmp_path / 'bench'
    for i in range(5):
        hr = random_image(8, 12, seed=i)
        save_png(str(root / 'Val' / 'HR' / f'im{i}.png'), hr)
        save_png(str(root / 'Val' / 'LR_bicubic' / 'X2' / f'im{i}x2.png'), bicubic_downscale(hr, 2))
    tail = BenchmarkPairs(str(root), 'Val[3:]', 2)
    assert (tail.name, len(tail), tail[0][0]) == ('Val[3:]', 2, 'im3')
    assert [BenchmarkPairs(str(root), 'Val[1:3]', 2)[i][0] for i in range(2)] == ['im1', 'im2']
    with pytest.raises(UserError, match=r"'Val\[9:\]' selects no image"):
        BenchmarkPairs(str(root), 'Val[9:]', 2)
    with pytest.raises(UserError, match='malformed subset'):
        BenchmarkPairs(str(root), 'Val[a]', 2)
