"""eval.py and calibrate.py end to end on a tiny network and images: the results JSON, PSNR recomputed from
the written SR images, quantized checkpoints that evaluate like one-run calibration, and one-line errors."""
import json
import os
import re
import subprocess
import sys

import mindspore as ms
import numpy as np
import pytest
from PIL import Image

import calibrate
import eval as eval_cli
from src.build import build_net
from src.checkpoint import assign_params, save_mindspore_checkpoint
from src.imresize import bicubic_downscale
from src.metric import calculate_psnr, calculate_ssim
from src.pipeline import load_quant_checkpoint

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCALE = 2
HR_SIZES = ((20, 24), (21, 25))
QUANT_ARGS = ['--method', 'minmax', '--w_bit', '8', '--a_bit', '8', '--num_calib_images', '4',
              '--calib_batches', '2', '--calib_batch_size', '2', '--patch_size', '8']


def save_png(path, array):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(array).save(path)


def tiny_checkpoint(path, scale, seed=0):
    """EDSR F=8 B=2 with seeded variance-preserving weights, so the output depends on the input."""
    net = build_net('edsr_baseline', scale, num_feat=8, num_block=2)
    rng = np.random.RandomState(seed)
    params = {n: (rng.normal(0, 1 / np.sqrt(np.prod(p.shape[1:])), p.shape) if n.endswith('weight')
                  else rng.normal(0, 0.5, p.shape)).astype(np.float32) for n, p in net.parameters_and_names()}
    assign_params(net, params, 'test weights')
    save_mindspore_checkpoint(params, str(path), {'arch': 'edsr_baseline'})
    return str(path)


@pytest.fixture(scope='module')
def files(tmp_path_factory):
    """Tiny benchmark set (Tiny, 2 images), 4 LR calibration images and ×2 / ×3 tiny checkpoints."""
    root = tmp_path_factory.mktemp('cli')
    rng = np.random.RandomState(0)
    for i, (h, w) in enumerate(HR_SIZES):
        hr = rng.randint(0, 256, (h, w, 3)).astype(np.uint8)
        save_png(str(root / 'bench' / 'Tiny' / 'HR' / f'im{i}.png'), hr)
        save_png(str(root / 'bench' / 'Tiny' / 'LR_bicubic' / f'X{SCALE}' / f'im{i}x{SCALE}.png'),
                 bicubic_downscale(hr, SCALE))
    for i in range(4):
        save_png(str(root / 'calib' / f'c{i}x{SCALE}.png'), rng.randint(0, 256, (12, 16, 3)).astype(np.uint8))
    return {'root': root, 'bench': str(root / 'bench'), 'calib': str(root / 'calib'),
            'ckpt': tiny_checkpoint(root / 'tiny_x2.ckpt', 2), 'ckpt_x3': tiny_checkpoint(root / 'tiny_x3.ckpt', 3)}


def eval_args(files, out, *extra):
    return ['--scale', str(SCALE), '--data_path', files['bench'], '--dataset', 'Tiny',
            '--pre_trained', files['ckpt'], '--output_path', str(out), *extra]


def error_line(err):
    """The one 'error: ...' line of stderr (progress bars end in carriage returns, not newlines)."""
    assert 'Traceback' not in err
    lines = [line for line in re.split(r'[\r\n]', err) if line.startswith('error:')]
    assert len(lines) == 1, err
    return lines[0]


def test_eval_writes_results_and_sr_images(files, tmp_path, capsys):
    # a kernel before main() fixes MindSpore's device, as in a notebook: main() must still run
    assert (ms.Tensor(np.ones(2, np.float32)) + 1).asnumpy().tolist() == [2.0, 2.0]
    out = tmp_path / 'out'
    assert eval_cli.main(eval_args(files, out, '--save_sr', 'True')) == 0
    record = json.loads((out / 'results_edsr_baseline_x2_fp_w32a32.json').read_text())
    assert {'model', 'scale', 'w_bit', 'a_bit', 'method', 'results', 'versions'} <= set(record)
    assert (record['model'], record['scale'], record['w_bit'], record['a_bit'], record['method']) == \
        ('edsr_baseline', 2, 32, 32, 'fp')
    assert set(record['results']) == {'Tiny'} and set(record['versions']) >= {'mindspore', 'numpy', 'python'}
    result = record['results']['Tiny']
    assert set(result) == {'psnr', 'ssim', 'images', 'seconds'} and result['images'] == 2
    psnrs, ssims = [], []
    for i in range(2):
        sr = np.asarray(Image.open(out / 'fp' / 'Tiny' / f'im{i}.png'))
        hr = np.asarray(Image.open(files['root'] / 'bench' / 'Tiny' / 'HR' / f'im{i}.png'))
        assert sr.shape == (HR_SIZES[i][0] // 2 * 2, HR_SIZES[i][1] // 2 * 2, 3)
        psnrs.append(calculate_psnr(sr, hr[:sr.shape[0], :sr.shape[1]], crop_border=SCALE))
        ssims.append(calculate_ssim(sr, hr[:sr.shape[0], :sr.shape[1]], crop_border=SCALE))
    assert 5 < result['psnr'] < 40  # a real number, not inf or 0
    assert result['psnr'] == round(float(np.mean(psnrs)), 4)
    assert result['ssim'] == round(float(np.mean(ssims)), 4)
    assert 'Tiny' in capsys.readouterr().out


@pytest.mark.parametrize('change, message', [
    (['--data_path', '{root}/nowhere'], r'--data_path .*nowhere does not exist'),
    (['--dataset', 'Set5'], "dataset 'Set5' not found .*available: Tiny"),
    (['--pre_trained', '{root}/absent.ckpt'], r'absent\.ckpt'),
    (['--scale', '4'], r'is EDSR-baseline \(F=8, B=2\) ×2 but --scale 4 was given'),
    (['--pre_trained', '{ckpt_x3}'], r'×3 but --scale 2 was given: pass --scale 3'),
    (['--w_bit', '9'], '--w_bit 9 is out of range'),
    (['--output_path', '{root}/tiny_x2.ckpt/out'], r'--output_path .*tiny_x2\.ckpt/out'),
    (['--output_path', '{root}/tiny_x2.ckpt'], 'is a file, not a folder'),
    (['--device_target', 'GPU'], '--device_target GPU is not available'),
    (['--quant_ckpt', '{root}/absent_q.ckpt'], r'quantized checkpoint .*absent_q\.ckpt does not exist'),
    (['--quant_ckpt', '{ckpt}'], 'is not a quantized checkpoint'),
])
def test_eval_errors_are_one_line_with_exit_code_2(files, tmp_path, capsys, change, message):
    change = [c.format(root=files['root'], ckpt=files['ckpt'], ckpt_x3=files['ckpt_x3']) for c in change]
    assert eval_cli.main(eval_args(files, tmp_path / 'out', *change)) == 2
    line = error_line(capsys.readouterr().err)
    assert re.search(message, line), line


def test_eval_error_in_a_fresh_process(files, tmp_path):
    result = subprocess.run([sys.executable, 'eval.py', *eval_args(files, tmp_path / 'out', '--scale', '4')],
                            cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.count('\n') == 1 and result.stderr.startswith('error: checkpoint tiny_x2.ckpt is'), \
        result.stderr


def test_calibrate_refuses_fp(files, tmp_path, capsys):
    base = ['--scale', '2', '--pre_trained', files['ckpt'], '--calib_path', files['calib'],
            '--output_path', str(tmp_path)]
    assert calibrate.main([*base, '--method', 'fp']) == 2
    assert 'nothing to calibrate' in error_line(capsys.readouterr().err)
    assert calibrate.main([*base, '--method', 'fp', '--w_bit', '8', '--a_bit', '8']) == 2
    assert '--method fp with --w_bit 8' in error_line(capsys.readouterr().err)
    assert not list(tmp_path.iterdir())


@pytest.fixture(scope='module')
def quant_ckpt(files):
    out = files['root'] / 'new' / 'folder'  # calibrate.py creates it
    assert calibrate.main(['--scale', '2', '--pre_trained', files['ckpt'], '--calib_path', files['calib'],
                           '--output_path', str(out), *QUANT_ARGS]) == 0
    assert (out / 'edsr_baseline_x2_w8a8_minmax_report.json').is_file()
    return out / 'edsr_baseline_x2_w8a8_minmax.ckpt'


def test_quantized_checkpoint_evaluates_like_one_run(files, quant_ckpt, tmp_path, capsys):
    ckpt = quant_ckpt
    one_run, loaded = tmp_path / 'one_run', tmp_path / 'loaded'
    assert eval_cli.main(eval_args(files, one_run, '--calib_path', files['calib'], '--save_sr', 'True',
                                   *QUANT_ARGS)) == 0
    assert eval_cli.main(['--scale', '2', '--data_path', files['bench'], '--dataset', 'Tiny',
                          '--quant_ckpt', str(ckpt), '--output_path', str(loaded), '--save_sr', 'True']) == 0
    name = 'results_edsr_baseline_x2_minmax_w8a8.json'
    first, second = (json.loads((folder / name).read_text()) for folder in (one_run, loaded))
    assert (second['method'], second['w_bit'], second['a_bit'], second['scale']) == ('minmax', 8, 8, 2)
    assert first['results']['Tiny']['psnr'] == second['results']['Tiny']['psnr']
    assert first['results']['Tiny']['ssim'] == second['results']['Tiny']['ssim']
    for i in range(2):
        images = [np.asarray(Image.open(folder / 'minmax_W8A8' / 'Tiny' / f'im{i}.png'))
                  for folder in (one_run, loaded)]
        np.testing.assert_array_equal(*images)
    # the quantized network really differs from full precision somewhere
    assert eval_cli.main(eval_args(files, tmp_path / 'fp', '--save_sr', 'True')) == 0
    fp = [np.asarray(Image.open(tmp_path / 'fp' / 'fp' / 'Tiny' / f'im{i}.png')) for i in range(2)]
    quant = [np.asarray(Image.open(one_run / 'minmax_W8A8' / 'Tiny' / f'im{i}.png')) for i in range(2)]
    assert any((a != b).any() for a, b in zip(fp, quant))
    # a quantized checkpoint for another scale is refused by name
    assert eval_cli.main(['--scale', '4', '--data_path', files['bench'], '--dataset', 'Tiny',
                          '--quant_ckpt', str(ckpt), '--output_path', str(loaded)]) == 2
    assert '--scale 2' in error_line(capsys.readouterr().err)


def test_quantized_checkpoint_keeps_scalar_bounds(quant_ckpt, tmp_path):
    raw = ms.load_checkpoint(str(quant_ckpt))
    assert raw['conv_first.input_quant.lower'].shape == ()
    assert raw['conv_first.weight_quant.lower'].shape == (8, 1, 1, 1)
    net, meta = load_quant_checkpoint(str(quant_ckpt), scale=2)
    assert (meta['method'], meta['w_bit'], meta['a_bit'], meta['num_feat'], meta['num_block']) == ('minmax', 8, 8, 8, 2)
    # files saved before the 0-d fix hold per-tensor bounds as shape (1,): they still load, unchanged
    legacy = tmp_path / 'legacy.ckpt'
    entries = [{'name': k, 'data': ms.Tensor(v.asnumpy().reshape(v.shape or (1,)))}
               for k, v in raw.items() if isinstance(v, ms.Parameter) and '.' in k]
    ms.save_checkpoint(entries, str(legacy), append_dict={k: v for k, v in raw.items() if isinstance(v, str)})
    assert ms.load_checkpoint(str(legacy))['conv_first.input_quant.lower'].shape == (1,)
    old, _ = load_quant_checkpoint(str(legacy))
    for (name, p), (_, q) in zip(net.parameters_and_names(), old.parameters_and_names()):
        np.testing.assert_array_equal(p.asnumpy(), q.asnumpy(), err_msg=name)
