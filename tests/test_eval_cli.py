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
from conftest import CLI_HR_SIZES as HR_SIZES, CLI_SCALE as SCALE, message_line as error_line
from src.metric import calculate_psnr, calculate_ssim
from src.quant.checkpoint import load_quant_checkpoint

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUANT_ARGS = ['--method', 'minmax', '--w_bit', '8', '--a_bit', '8', '--num_calib_images', '4',
              '--calib_batches', '2', '--calib_batch_size', '2', '--patch_size', '8']


def eval_args(files, out, *extra):
    return ['--scale', str(SCALE), '--data_path', files['bench'], '--dataset', 'Tiny',
            '--pre_trained', files['ckpt'], '--output_path', str(out), *extra]


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
    assert set(result) == {'psnr', 'ssim', 'images', 'seconds', 'per_image'} and result['images'] == 2
    assert (record['amp_level'], record['workers']) == ('O0', 1)
    psnrs, ssims = [], []
    for i in range(2):
        sr = np.asarray(Image.open(out / 'fp' / 'Tiny' / f'im{i}.png'))
        hr = np.asarray(Image.open(files['root'] / 'bench' / 'Tiny' / 'HR' / f'im{i}.png'))
        assert sr.shape == (HR_SIZES[i][0] // 2 * 2, HR_SIZES[i][1] // 2 * 2, 3)
        psnrs.append(calculate_psnr(sr, hr[:sr.shape[0], :sr.shape[1]], crop_border=SCALE))
        ssims.append(calculate_ssim(sr, hr[:sr.shape[0], :sr.shape[1]], crop_border=SCALE))
    assert 5 < result['psnr'] < 40  # a real number, not inf or 0
    # (the metrics of a non-contiguous HR view differ from those of the loader's cropped copy in the last bits)
    assert [result['per_image'][f'im{i}']['psnr'] for i in range(2)] == pytest.approx(psnrs, rel=1e-12)
    assert [result['per_image'][f'im{i}']['ssim'] for i in range(2)] == pytest.approx(ssims, rel=1e-12)
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


def test_quantized_checkpoint_keeps_scalar_bounds(quant_ckpt):
    raw = ms.load_checkpoint(str(quant_ckpt))
    assert raw['conv_first.input_quant.lower'].shape == ()
    assert raw['conv_first.weight_quant.lower'].shape == (8, 1, 1, 1)
    net, meta = load_quant_checkpoint(str(quant_ckpt), scale=2)
    assert (meta['method'], meta['w_bit'], meta['a_bit'], meta['num_feat'], meta['num_block']) == ('minmax', 8, 8, 8, 2)
    assert net.conv_first.input_quant.lower.shape == ()
    np.testing.assert_array_equal(net.conv_first.input_quant.lower.asnumpy(), raw['conv_first.input_quant.lower'].asnumpy())


@pytest.mark.parametrize('flags, message', [
    (['--pre_trained', '{ckpt}'], '--pre_trained and --quant_ckpt were both given'),
    (['--method', 'dbdc'], '--method dbdc conflicts with .* which is minmax W8A8: drop --method'),
    (['--w_bit', '4', '--a_bit', '4', '--method', 'minmax'], '--w_bit 4 conflicts with'),
])
def test_quantized_checkpoint_refuses_conflicting_explicit_flags(files, quant_ckpt, tmp_path, capsys, flags, message):
    flags = [f.format(ckpt=files['ckpt']) for f in flags]
    args = ['--scale', '2', '--data_path', files['bench'], '--dataset', 'Tiny', '--quant_ckpt', str(quant_ckpt),
            '--output_path', str(tmp_path / 'out'), *flags]
    assert eval_cli.main(args) == 2
    assert re.search(message, error_line(capsys.readouterr().err))
    assert not (tmp_path / 'out').exists() or not list((tmp_path / 'out').glob('*.json'))
    # the same values as the checkpoint's are no conflict
    assert eval_cli.main([*args[:-len(flags)], '--method', 'minmax', '--w_bit', '8', '--a_bit', '8']) == 0


def test_results_record_their_revision_and_command(files, tmp_path):
    """The record says which code made it and how to make it again."""
    out = tmp_path / 'out'
    assert eval_cli.main(eval_args(files, out)) == 0
    record = json.loads((out / 'results_edsr_baseline_x2_fp_w32a32.json').read_text())
    assert re.fullmatch(r'[0-9a-f]{12}(\+dirty)?|unknown', record['git_revision'])
    assert record['command'].startswith('python ') and f"--output_path {out}" in record['command']


def test_calibration_leaves_the_fp_network_untouched(files, tmp_path):
    from model_utils.config import make_config
    from src.calibration.plan import plan_from_config
    from src.calibration.runner import calibrate as run_calibration
    from src.models.load import load_fp_net
    fp, info = load_fp_net(files['ckpt'])
    before = {name: (p.name, p.asnumpy().copy()) for name, p in fp.parameters_and_names()}
    config = make_config({'scale': 2, 'method': 'ptq4sr', 'w_bit': 4, 'a_bit': 4, 'calib_path': files['calib'],
                          'num_calib_images': 4, 'calib_batches': 2, 'calib_batch_size': 2, 'patch_size': 8,
                          'pac_iters': 1})
    run_calibration(fp, info, plan_from_config(config, info.arch, 2), log=lambda m: None)
    after = {name: (p.name, p.asnumpy()) for name, p in fp.parameters_and_names()}
    assert [(n, pn) for n, (pn, _) in after.items()] == [(n, pn) for n, (pn, _) in before.items()]
    assert all(np.array_equal(after[n][1], before[n][1]) for n in before)
