"""Benchmark pairs for evaluation and seeded LR patches for calibration.

Layouts (EDSR / BasicSR):
  benchmark  <root>/<Set>/HR/<name>.png, <root>/<Set>/LR_bicubic/X<s>/<name>x<s>.png
  DIV2K      <root>/DIV2K_valid_HR/<id>.png, <root>/DIV2K_valid_LR_bicubic/X<s>/<id>x<s>.png
When a set has no LR_bicubic/X<s> folder at all, its LR images are made from HR with the
MATLAB-compatible bicubic resize; a folder that lacks some images is an error.
"""
import os
import re

import numpy as np
from PIL import Image

from src.errors import UserError

IMG_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff')


def read_image(path):
    """RGB uint8 HxWx3; greyscale becomes 3 identical channels. Unreadable files are a UserError."""
    try:
        with Image.open(path) as img:
            img.load()
            return np.asarray(img.convert('RGB'))
    except FileNotFoundError:
        raise UserError(f'image {path} does not exist: check --data_path / --calib_path') from None
    except (OSError, SyntaxError, ValueError) as e:
        raise UserError(f'cannot read image {path} ({e}): replace or remove the file') from None


def list_images(folder, what='image folder'):
    if not os.path.isdir(folder):
        raise UserError(f'{what} {folder} does not exist: check the path')
    names = sorted(f for f in os.listdir(folder) if f.lower().endswith(IMG_EXTENSIONS))
    if not names:
        raise UserError(f'{what} {folder} holds no images ({", ".join(IMG_EXTENSIONS)})')
    return [os.path.join(folder, n) for n in names]


def set_folders(root, name, scale):
    """(HR folder, LR folder) of test set ``name`` under ``root`` in either layout."""
    if not os.path.isdir(root):
        raise UserError(f'--data_path {root} does not exist: point it at the benchmark or DIV2K root')
    if name.upper() == 'DIV2K':
        for base in (root, os.path.join(root, 'DIV2K')):
            hr = os.path.join(base, 'DIV2K_valid_HR')
            if os.path.isdir(hr):
                return hr, os.path.join(base, 'DIV2K_valid_LR_bicubic', f'X{scale}')
    hr = os.path.join(root, name, 'HR')
    if not os.path.isdir(hr):
        present = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d, 'HR')))
        raise UserError(f"dataset '{name}' not found under {root} (no {name}/HR): "
                        f"available: {', '.join(present) or 'none'}")
    return hr, os.path.join(root, name, 'LR_bicubic', f'X{scale}')


def check_sizes(lr, hr, scale, lr_path, hr_path):
    """HR must cover LR×s, with at most the rows/columns a mod-crop (or off-by-one resize) drops."""
    for axis in (0, 1):
        extra = hr.shape[axis] - lr.shape[axis] * scale
        if not 0 <= extra < 2 * scale:
            raise UserError(f'{os.path.basename(lr_path)} is {lr.shape[1]}x{lr.shape[0]} but '
                            f'{os.path.basename(hr_path)} is {hr.shape[1]}x{hr.shape[0]}: not a x{scale} pair; '
                            f'check --scale or regenerate the LR image')


def split_subset(name):
    """'BSD200[100:200]' → ('BSD200', slice(100, 200)); a plain name → (name, None). The slice counts
    images sorted by file name from 0, as Python does (so [100:] is the 101st image on)."""
    match = re.fullmatch(r'(.+?)\[(\d*):(\d*)\]', name)
    if not match:
        if '[' in name:
            raise UserError(f"dataset '{name}' has a malformed subset: write e.g. 'BSD200[100:200]'")
        return name, None
    start, stop = (int(v) if v else None for v in match.group(2, 3))
    return match.group(1), slice(start, stop)


class BenchmarkPairs:
    """(name, LR, HR) of one test set (or a slice of it, 'BSD200[100:200]', for a validation split);
    HR is cropped top-left to LR size × scale (uint8 HWC)."""

    def __init__(self, root, name, scale):
        self.name, self.scale = name, scale
        folder, subset = split_subset(name)
        hr_dir, self.lr_dir = set_folders(root, folder, scale)
        self.hr_paths = list_images(hr_dir, f'HR folder of {folder}')
        if subset is not None:
            self.hr_paths = self.hr_paths[subset]
            if not self.hr_paths:
                raise UserError(f"dataset '{name}' selects no image of the {len(list_images(hr_dir))} in {hr_dir}")
        self.generate_lr = not os.path.isdir(self.lr_dir)

    def __len__(self):
        return len(self.hr_paths)

    def lr_path(self, hr_path):
        stem = os.path.splitext(os.path.basename(hr_path))[0]
        return os.path.join(self.lr_dir, f'{stem}x{self.scale}.png')

    def __getitem__(self, i):
        hr_path = self.hr_paths[i]
        hr = read_image(hr_path)
        name = os.path.splitext(os.path.basename(hr_path))[0]
        if self.generate_lr:
            from src.imresize import bicubic_downscale
            lr = bicubic_downscale(hr, self.scale)
            lr_path = '(bicubic)'
        else:
            lr_path = self.lr_path(hr_path)
            if not os.path.isfile(lr_path):
                raise UserError(f'LR image {lr_path} is missing for {hr_path}: add it, or remove '
                                f'{self.lr_dir} to regenerate every LR image with bicubic resize')
            lr = read_image(lr_path)
        check_sizes(lr, hr, self.scale, lr_path, hr_path)
        hr = hr[:lr.shape[0] * self.scale, :lr.shape[1] * self.scale]
        return name, lr, hr


def calibration_folder(path, scale):
    """The folder of LR images inside ``path``: itself, <path>/LR_bicubic/X<s> or DIV2K_train_LR_bicubic/X<s>."""
    if not os.path.isdir(path):
        raise UserError(f'--calib_path {path} does not exist: point it at a folder of LR images')
    for sub in (os.path.join('LR_bicubic', f'X{scale}'), os.path.join('DIV2K_train_LR_bicubic', f'X{scale}'),
                os.path.join('DIV2K', 'DIV2K_train_LR_bicubic', f'X{scale}')):
        if os.path.isdir(os.path.join(path, sub)):
            return os.path.join(path, sub)
    return path


class CalibrationImages:
    """The first ``count`` LR images (sorted by file name) of a calibration folder, loaded once.

    Names drop the ``x<s>`` suffix of LR files, so crops read ``[name, top, left]`` as in the reference.
    """

    def __init__(self, path, scale, count):
        folder = calibration_folder(path, scale)
        paths = list_images(folder, 'calibration folder')
        if len(paths) < count:
            raise UserError(f'--calib_path {folder} holds {len(paths)} images but --num_calib_images is {count}: '
                            f'lower --num_calib_images or add images')
        self.paths = paths[:count]
        stems = [os.path.splitext(os.path.basename(p))[0] for p in self.paths]
        self.names = [s[:-len(f'x{scale}')] if s.endswith(f'x{scale}') else s for s in stems]
        self.images = [read_image(p) for p in self.paths]
        self.index = {name: i for i, name in enumerate(self.names)}

    def __len__(self):
        return len(self.images)

    def patches(self, crops, size):
        """float32 NCHW batch in [0, 1] of ``[(name, top, left), …]`` crops of ``size`` pixels."""
        out = []
        for name, top, left in crops:
            if name not in self.index:
                raise UserError(f"calibration crop names image '{name}', which is not among the calibration images")
            img = self.images[self.index[name]]
            patch = img[top:top + size, left:left + size]
            if patch.shape[:2] != (size, size):
                raise UserError(f'crop ({top}, {left}) of size {size} does not fit {self.paths[self.index[name]]}')
            out.append(patch)
        return np.stack(out).transpose(0, 3, 1, 2).astype(np.float32) / 255.0


def random_crop_batches(images, size, batch_size, num_batches, seed):
    """Seeded crop lists: each epoch a permutation of the images, one uniform crop per image
    (top, then left), batches formed within the epoch and its remainder dropped.

    This is the stream that produced ../shared/reference/calib_crops.json (numpy RandomState(seed)).
    """
    small = [p for p, img in zip(images.paths, images.images) if min(img.shape[:2]) < size]
    if small:
        raise UserError(f'{len(small)} calibration image(s) are smaller than the {size}-px patch (e.g. {small[0]}): '
                        'lower --patch_size or remove them')
    if len(images) < batch_size:
        raise UserError(f'{len(images)} calibration images cannot fill a batch of {batch_size}: '
                        'add images or lower the batch size')
    rng = np.random.RandomState(seed)
    batches = []
    while len(batches) < num_batches:
        epoch = []
        for i in rng.permutation(len(images)):
            h, w = images.images[i].shape[:2]
            epoch.append((images.names[i], int(rng.randint(0, h - size + 1)), int(rng.randint(0, w - size + 1))))
        whole = len(epoch) // batch_size
        batches += [epoch[b * batch_size:(b + 1) * batch_size] for b in range(whole)]
    return batches[:num_batches]
