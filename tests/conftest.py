"""Shared fixtures: the reference data in ../shared (skipped with a reason when absent), tiny nets."""
import os
import pathlib
import re

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED = pathlib.Path(os.environ.get('PTQ4SR_SHARED', REPO.parent / 'shared'))


def pytest_configure(config):
    config.addinivalue_line('markers', 'slow: end-to-end runs on real models (minutes); select with -m slow')


@pytest.fixture(scope='session')
def shared_dir():
    """Path of the shared reference folder (models, datasets, reference); skips when it is absent."""
    if not (SHARED / 'datasets').is_dir():
        pytest.skip(f'reference data not found at {SHARED} (set PTQ4SR_SHARED to its location)')
    return SHARED


# --- tiny command-line fixtures (eval.py / calibrate.py end to end in a second or two) ----------------
CLI_SCALE = 2
CLI_HR_SIZES = ((20, 24), (21, 25))


def save_png(path, array):
    from PIL import Image
    os.makedirs(os.path.dirname(str(path)), exist_ok=True)
    Image.fromarray(array).save(str(path))


def tiny_checkpoint(path, scale, seed=0):
    """EDSR F=8 B=2 with seeded variance-preserving weights, so the output depends on the input."""
    import numpy as np
    from src.models.build import build_net
    from src.checkpoint import assign_params, save_mindspore_checkpoint
    net = build_net('edsr_baseline', scale, num_feat=8, num_block=2)
    rng = np.random.RandomState(seed)
    params = {n: (rng.normal(0, 1 / np.sqrt(np.prod(p.shape[1:])), p.shape) if n.endswith('weight')
                  else rng.normal(0, 0.5, p.shape)).astype(np.float32) for n, p in net.parameters_and_names()}
    assign_params(net, params, 'test weights')
    save_mindspore_checkpoint(params, str(path), {'arch': 'edsr_baseline'})
    return str(path)


@pytest.fixture(scope='session')
def files(tmp_path_factory):
    """Tiny benchmark set (Tiny, 2 images), 4 LR calibration images and ×2 / ×3 tiny checkpoints.

    Shared by every test file: treat it as read-only and write outputs under ``tmp_path``.
    """
    import numpy as np
    from src.imresize import bicubic_downscale
    root = tmp_path_factory.mktemp('cli')
    rng = np.random.RandomState(0)
    for i, (h, w) in enumerate(CLI_HR_SIZES):
        hr = rng.randint(0, 256, (h, w, 3)).astype(np.uint8)
        save_png(root / 'bench' / 'Tiny' / 'HR' / f'im{i}.png', hr)
        save_png(root / 'bench' / 'Tiny' / 'LR_bicubic' / f'X{CLI_SCALE}' / f'im{i}x{CLI_SCALE}.png',
                 bicubic_downscale(hr, CLI_SCALE))
    for i in range(4):
        save_png(root / 'calib' / f'c{i}x{CLI_SCALE}.png', rng.randint(0, 256, (12, 16, 3)).astype(np.uint8))
    return {'root': root, 'bench': str(root / 'bench'), 'calib': str(root / 'calib'),
            'ckpt': tiny_checkpoint(root / 'tiny_x2.ckpt', 2), 'ckpt_x3': tiny_checkpoint(root / 'tiny_x3.ckpt', 3)}


def message_line(err, prefix='error:'):
    """The one stderr line starting with ``prefix``, and no traceback (progress bars end in carriage returns)."""
    assert 'Traceback' not in err, err
    lines = [line for line in re.split(r'[\r\n]', err) if line.startswith(prefix)]
    assert len(lines) == 1, err
    return lines[0]

