"""The zero-argument demo: eval.py dispatches to it, its photos come from the scikit-image wheel (no
network), and a reduced run gives all four methods with real numbers, a JSON file and a picture."""
import importlib.util
import json
import math
import os

import numpy as np
import pytest
from PIL import Image

import eval as eval_cli
from src.compare import GAP, LABEL_HEIGHT
from src.checkpoint import read_checkpoint
from src.dataset import read_image
from src.demo import DEMO_CHECKPOINT, DemoSettings, run_demo
from src.errors import UserError
from src.imresize import bicubic_downscale
from src.photos import CALIBRATION_PHOTOS, EVAL_PHOTOS, photo_folder, stage_photos


def test_no_arguments_runs_the_demo_and_flags_do_not(monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr(eval_cli, 'run_demo', lambda: calls.append('demo'))
    assert eval_cli.main([]) == 0 and calls == ['demo']
    # any flag is a normal evaluation (here failing on the missing checkpoint, not running the demo)
    assert eval_cli.main(['--output_path', str(tmp_path)]) == 2 and calls == ['demo']


def test_demo_checkpoint_ships_with_the_project():
    assert os.path.isfile(DEMO_CHECKPOINT)
    assert 5e6 < os.path.getsize(DEMO_CHECKPOINT) < 7e6  # EDSR-baseline x4: 1.52 M float32 parameters


def test_demo_checkpoint_is_the_shared_x4_model(shared_dir):
    bundled, info = read_checkpoint(DEMO_CHECKPOINT)
    source, _ = read_checkpoint(str(shared_dir / 'models' / 'edsr_baseline_x4.pt'))
    assert (info.arch, info.scale, info.num_feat, info.num_block) == ('edsr_baseline', 4, 64, 16)
    assert sorted(bundled) == sorted(source)
    for name, value in source.items():
        np.testing.assert_array_equal(bundled[name], value, err_msg=name)


def test_photos_are_staged_from_the_installed_wheel(tmp_path):
    folder = photo_folder()
    calib_path, data_path = stage_photos(str(tmp_path), 4, num_eval=2)
    assert sorted(os.listdir(calib_path)) == sorted(os.path.splitext(n)[0] + '.png' for n in CALIBRATION_PHOTOS)
    assert sorted(os.listdir(os.path.join(data_path, 'Photos', 'HR'))) == sorted(EVAL_PHOTOS[:2])
    rocket = read_image(os.path.join(folder, 'rocket.jpg'))
    np.testing.assert_array_equal(read_image(os.path.join(calib_path, 'rocket.png')), bicubic_downscale(rocket, 4))
    chelsea = read_image(os.path.join(data_path, 'Photos', 'HR', 'chelsea.png'))
    assert chelsea.shape == (300, 448, 3)  # 451 px wide, cropped to a multiple of 4
    np.testing.assert_array_equal(chelsea, read_image(os.path.join(folder, 'chelsea.png'))[:, :448])


def test_missing_scikit_image_is_a_user_error(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, 'find_spec', lambda name, *a: None if name == 'skimage' else real(name, *a))
    with pytest.raises(UserError, match='scikit-image is not installed.*pip install -r requirements.txt'):
        photo_folder()


@pytest.mark.slow
def test_reduced_demo_gives_four_methods(tmp_path, capsys):
    settings = DemoSettings(calib_batches=2, pac_iters=1, num_eval_images=1, output_path=str(tmp_path))
    record = run_demo(settings)
    assert list(record['methods']) == ['fp', 'minmax', 'dbdc', 'ptq4sr']
    psnr = {m: r['results']['Photos']['psnr'] for m, r in record['methods'].items()}
    assert all(math.isfinite(v) and 10 < v < 50 for v in psnr.values()), psnr
    assert psnr['fp'] > psnr['minmax'], psnr
    assert record['methods']['ptq4sr']['w_bit'] == 4 and record['methods']['fp']['w_bit'] == 32
    assert json.loads((tmp_path / 'demo_results.json').read_text()) == record
    out = capsys.readouterr().out
    table = out[out.index('| photo |'):]
    for label in ('FP', 'MinMax W4A4', 'DBDC W4A4', 'DBDC+PaC (PTQ4SR) W4A4', 'chelsea', 'mean PSNR / SSIM'):
        assert label in table
    picture = np.asarray(Image.open(tmp_path / 'demo_compare' / 'chelsea.png'))
    side = 96 * 2  # 6 panels: HR, bicubic, FP, MinMax, DBDC, PTQ4SR
    assert picture.shape == (LABEL_HEIGHT + side, 6 * side + 5 * GAP, 3)
