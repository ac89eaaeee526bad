"""Natural photos that ship inside the scikit-image wheel, staged as SR calibration and test data.

scikit-image keeps a few sample images in ``skimage/data`` and fetches the rest from the network on
first use. Only files physically in the wheel (0.26.0) are used, and they are read with Pillow from
the package folder: skimage itself is never imported, so nothing can trigger a download.
Licences (scikit-image's docstrings): astronaut, rocket, hubble_deep_field — public domain (NASA /
SpaceX); chelsea, coffee, camera, brick, grass — CC0; motorcycle — Middlebury stereo set;
immunohistochemistry — no known copyright restrictions.
"""
import importlib.util
import os

from PIL import Image

from src.dataset import read_image
from src.errors import UserError
from src.imresize import bicubic_downscale, mod_crop

# Test photos: PNG (lossless), colour, classic. The smallest first, so a one-image run is quick.
EVAL_PHOTOS = ('chelsea.png', 'astronaut.png', 'coffee.png')
# Calibration photos: other scenes (8, to fill a batch of 8 with one crop per photo, as the crop stream does).
CALIBRATION_PHOTOS = ('rocket.jpg', 'motorcycle_left.png', 'motorcycle_right.png', 'hubble_deep_field.jpg',
                      'ihc.png', 'camera.png', 'brick.png', 'grass.png')
PHOTO_SET = 'Photos'


def photo_folder():
    """The ``skimage/data`` folder of the installed scikit-image, checked to hold every photo used here."""
    spec = importlib.util.find_spec('skimage')  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise UserError('scikit-image is not installed (its wheel ships the demo photos): '
                        'run pip install -r requirements.txt')
    folder = os.path.join(list(spec.submodule_search_locations)[0], 'data')
    missing = [n for n in EVAL_PHOTOS + CALIBRATION_PHOTOS if not os.path.isfile(os.path.join(folder, n))]
    if missing:
        raise UserError(f'{folder} lacks {missing[0]} (another scikit-image version?): '
                        'install the pinned one with pip install -r requirements.txt')
    return folder


def _save(path, image):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(image).save(path, format='PNG')


def stage_photos(root, scale, num_eval=len(EVAL_PHOTOS)):
    """Write the photos under ``root`` in the layouts the pipeline reads; returns (calib_path, data_path).

    ``<root>/calib/<name>.png``: bicubic ×1/scale LR images of the calibration photos.
    ``<root>/benchmark/Photos/HR/<name>.png``: the first ``num_eval`` test photos cropped to a multiple of
    ``scale``; with no LR_bicubic folder, ``BenchmarkPairs`` makes their LR images by bicubic resize.
    """
    if not 1 <= num_eval <= len(EVAL_PHOTOS):
        raise UserError(f'num_eval {num_eval} is out of range: the demo has {len(EVAL_PHOTOS)} test photos')
    folder = photo_folder()
    calib_path, data_path = os.path.join(root, 'calib'), os.path.join(root, 'benchmark')
    for name in CALIBRATION_PHOTOS:
        lr = bicubic_downscale(read_image(os.path.join(folder, name)), scale)
        _save(os.path.join(calib_path, os.path.splitext(name)[0] + '.png'), lr)
    for name in EVAL_PHOTOS[:num_eval]:
        hr = mod_crop(read_image(os.path.join(folder, name)), scale)
        _save(os.path.join(data_path, PHOTO_SET, 'HR', name), hr)
    return calib_path, data_path
