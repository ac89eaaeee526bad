"""Every script in scripts/ run as a user runs it (bash / a fresh python), on the tiny shared fixtures: usage lines,
one-line errors and exit codes, logs and outputs under PTQ4SR_OUTPUT, and resumable table reproduction."""
import json
import os
import subprocess
import sys
import time

import pytest

from conftest import message_line

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(REPO, 'DIV2K_config.yaml')
DEVICES = ('cpu', 'gpu', 'ascend')
RUN_SCRIPTS = [f'run_{task}_{device}.sh' for task in ('eval', 'calibrate') for device in DEVICES]
DISTRIBUTE_SCRIPTS = [f'run_distribute_eval_{device}.sh' for device in DEVICES]
CALIB_SETS = ['--set', 'calib_batches=2', '--set', 'calib_batch_size=2', '--set', 'patch_size=8', '--set', 'pac_iters=1',
              '--set', 'num_calib_images=4']
CALIB_ARGS = ' '.join(f'--{a.replace("=", " ")}' for a in CALIB_SETS[1::2])  # the same as flags


def run(args, tmp_path, timeout=300, **env):
    """Run ``args`` from the repo with the venv's python first on PATH and outputs under tmp_path/out."""
    full_env = {**os.environ, 'PATH': os.path.dirname(sys.executable) + os.pathsep + os.environ['PATH'],
                'PTQ4SR_OUTPUT': str(tmp_path / 'out'), **env}
    return subprocess.run(args, cwd=REPO, env=full_env, capture_output=True, text=True, timeout=timeout)


def script(name):
    return os.path.join(REPO, 'scripts', name)


@pytest.mark.parametrize('name', RUN_SCRIPTS + DISTRIBUTE_SCRIPTS)
def test_no_arguments_prints_usage_and_exits_1(name, tmp_path):
    result = run(['bash', script(name)], tmp_path)
    assert result.returncode == 1
    assert result.stdout.splitlines()[0].startswith(f'Usage: bash {name} [')
    assert 'PTQ4SR_OUTPUT' in result.stdout and not (tmp_path / 'out').exists()


@pytest.mark.parametrize('name', RUN_SCRIPTS)
def test_missing_dataset_folder_exits_2_with_one_line(name, files, tmp_path):
    result = run(['bash', script(name), str(tmp_path / 'nowhere'), files['ckpt'], CONFIG, '2'], tmp_path)
    assert result.returncode == 2 and result.stdout == ''
    what = 'DATASET_PATH' if name.startswith('run_eval') else 'CALIB_PATH'
    assert result.stderr == f'error: {what} {tmp_path / "nowhere"} is not a directory\n'


def test_run_eval_cpu_end_to_end(files, tmp_path):
    result = run(['bash', script('run_eval_cpu.sh'), files['bench'], files['ckpt'], CONFIG, '2'], tmp_path,
                 PTQ4SR_ARGS='--dataset Tiny')
    assert result.returncode == 0, result.stdout + result.stderr
    log = tmp_path / 'out' / 'eval_cpu_x2.log'
    record = json.loads((tmp_path / 'out' / 'results_edsr_baseline_x2_fp_w32a32.json').read_text())
    assert (record['model'], record['scale'], record['method']) == ('edsr_baseline', 2, 'fp')
    assert f"{record['results']['Tiny']['psnr']:.3f}" in log.read_text()  # the table went to the log
    assert result.stdout.startswith(f'log: {log}\n')


@pytest.mark.parametrize('name, device', [('run_eval_gpu.sh', 'GPU'), ('run_eval_ascend.sh', 'Ascend')])
def test_each_device_script_runs_or_fails_clearly(name, device, files, tmp_path):
    """Whichever backends this MindSpore has run the evaluation; the others end with the one-line error."""
    import mindspore as ms
    result = run(['bash', script(name), files['bench'], files['ckpt'], CONFIG, '2'], tmp_path,
                 PTQ4SR_ARGS='--dataset Tiny')
    if ms.hal.is_available(device):
        assert result.returncode == 0, result.stdout + result.stderr
        assert json.loads((tmp_path / 'out' / 'results_edsr_baseline_x2_fp_w32a32.json').read_text())['results']
        return
    assert result.returncode == 2
    line = message_line(result.stdout)  # run_logged sends python's stderr through tee to stdout and the log
    assert line.startswith(f'error: --device_target {device} is not available in this MindSpore installation')
    assert line in (tmp_path / 'out' / f'eval_{device.lower()}_x2.log').read_text()


@pytest.mark.parametrize('name', DISTRIBUTE_SCRIPTS)
@pytest.mark.parametrize('rank_size, message', [('two', 'error: RANK_SIZE two is not a positive integer'),
                                                ('0', 'error: RANK_SIZE 0 is not a positive integer'),
                                                ('2', 'error: DATASET_PATH {nowhere} is not a directory')])
def test_distribute_script_argument_errors_exit_2_with_one_line(name, rank_size, message, files, tmp_path):
    nowhere = tmp_path / 'nowhere'
    result = run(['bash', script(name), rank_size, str(nowhere), files['ckpt'], CONFIG, '2'], tmp_path)
    assert result.returncode == 2 and result.stdout == ''
    assert result.stderr.startswith(message.format(nowhere=nowhere)) and result.stderr.count('\n') == 1


def test_two_workers_evaluate_exactly_like_one_process(files, tmp_path):
    """msrun with 2 CPU workers (one image each, SR PNGs written by the rank that made them) against eval.py
    in one process: the same per-image PSNR / SSIM, means and images."""
    result = run(['bash', script('run_distribute_eval_cpu.sh'), '2', files['bench'], files['ckpt'], CONFIG, '2'],
                 tmp_path, timeout=240, PTQ4SR_ARGS='--dataset Tiny --save_sr True')
    logs = tmp_path / 'out' / 'distribute_eval_cpu_x2_logs'
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr + \
        ''.join(p.read_text()[-2000:] for p in logs.glob('*.log'))
    two = json.loads((tmp_path / 'out' / 'results_edsr_baseline_x2_fp_w32a32.json').read_text())
    single = run([sys.executable, 'eval.py', '--scale', '2', '--data_path', files['bench'], '--dataset', 'Tiny',
                  '--pre_trained', files['ckpt'], '--output_path', str(tmp_path / 'one')], tmp_path)
    assert single.returncode == 0, single.stderr
    one = json.loads((tmp_path / 'one' / 'results_edsr_baseline_x2_fp_w32a32.json').read_text())
    assert (one['workers'], two['workers']) == (1, 2)
    for key in ('psnr', 'ssim', 'images', 'per_image'):
        assert two['results']['Tiny'][key] == one['results']['Tiny'][key]
    assert len(two['results']['Tiny']['per_image']) == 2
    assert sorted(p.name for p in (tmp_path / 'out' / 'fp' / 'Tiny').iterdir()) == ['im0.png', 'im1.png']
    # each worker scored (and saved) one image; only rank 0 printed the table
    assert [f'{w}.log' for w in ('scheduler', 'worker_0', 'worker_1')] == sorted(p.name for p in logs.iterdir())
    assert '| fp |' in (logs / 'worker_0.log').read_text() and '| fp |' not in (logs / 'worker_1.log').read_text()
    assert (tmp_path / 'out' / 'distribute_eval_cpu_x2.log').is_file()


@pytest.mark.parametrize('name, device', [('run_distribute_eval_gpu.sh', 'GPU'),
                                          ('run_distribute_eval_ascend.sh', 'Ascend')])
def test_each_distribute_script_runs_or_fails_clearly(name, device, files, tmp_path):
    """One worker, so one device suffices where the backend exists; elsewhere the workers' one-line error."""
    import mindspore as ms
    result = run(['bash', script(name), '1', files['bench'], files['ckpt'], CONFIG, '2'], tmp_path, timeout=240,
                 PTQ4SR_ARGS='--dataset Tiny')
    if ms.hal.is_available(device):
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr
        assert json.loads((tmp_path / 'out' / 'results_edsr_baseline_x2_fp_w32a32.json').read_text())['workers'] == 1
        return
    assert result.returncode == 2
    assert result.stderr == (f'error: --device_target {device} is not available in this MindSpore installation '
                             f'(no driver or plugin): install MindSpore for {device} or use --device_target CPU\n')


def test_run_calibrate_cpu_writes_a_checkpoint_that_run_eval_cpu_reads(files, tmp_path):
    result = run(['bash', script('run_calibrate_cpu.sh'), files['calib'], files['ckpt'], CONFIG, '2', '8', '8',
                  'minmax'], tmp_path, PTQ4SR_ARGS=CALIB_ARGS)
    assert result.returncode == 0, result.stdout + result.stderr
    ckpt = tmp_path / 'out' / 'edsr_baseline_x2_w8a8_minmax.ckpt'
    assert ckpt.is_file() and (tmp_path / 'out' / 'calibrate_cpu_x2_w8a8_minmax.log').is_file()
    # a quantized checkpoint is recognised by its metadata and passed as --quant_ckpt
    result = run(['bash', script('run_eval_cpu.sh'), files['bench'], str(ckpt), CONFIG, '2'], tmp_path,
                 PTQ4SR_ARGS='--dataset Tiny')
    assert result.returncode == 0, result.stdout + result.stderr
    record = json.loads((tmp_path / 'out' / 'results_edsr_baseline_x2_minmax_w8a8.json').read_text())
    assert (record['method'], record['w_bit'], record['a_bit']) == ('minmax', 8, 8)


def test_convert_checkpoint_help():
    result = subprocess.run([sys.executable, script('convert_checkpoint.py'), '--help'], cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.startswith('usage: convert_checkpoint.py')
    assert '--input' in result.stdout and '--output' in result.stdout


def test_reproduce_tables_writes_both_rows_and_resumes(files, tmp_path):
    out = tmp_path / 'results'
    args = ['--pre_trained', str(files['root'] / 'tiny_x{scale}.ckpt'), '--data_path', files['bench'],
            '--datasets', 'Tiny', '--calib_path', files['calib'], '--scales', '2', '--bits', '8',
            '--methods', 'fp,minmax', '--out', str(out), *CALIB_SETS]
    result = run([sys.executable, script('reproduce_tables.py'), *args], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    tables = json.loads((out / 'tables.json').read_text())
    assert sorted(tables) == ['edsr_baseline_x2_fp', 'edsr_baseline_x2_w8a8_minmax']
    assert (tables['edsr_baseline_x2_fp']['w_bit'], tables['edsr_baseline_x2_w8a8_minmax']['w_bit']) == (32, 8)
    markdown = (out / 'tables.md').read_text()
    fp_psnr = tables['edsr_baseline_x2_fp']['results']['Tiny']['psnr']
    assert f'| FP | {fp_psnr:.3f} / ' in markdown and '| MinMax | ' in markdown
    assert (out / 'psnr_vs_bits_edsr_baseline_x2.png').is_file()
    cells = sorted(out.glob('cells/*.json'))
    stamps = [p.stat().st_mtime_ns for p in cells]
    start = time.time()
    result = run(['bash', script('reproduce_tables.sh'), *args], tmp_path)  # the same command again: no work
    assert result.returncode == 0, result.stdout + result.stderr
    assert 'edsr_baseline_x2_fp:' not in result.stdout and 'edsr_baseline_x2_w8a8_minmax:' not in result.stdout
    assert [p.stat().st_mtime_ns for p in cells] == stamps
    assert json.loads((out / 'tables.json').read_text()) == tables
    print(f'resumed run: {time.time() - start:.1f} s')
    # --tables_only rebuilds the tables from the cache for a wider grid without computing the missing cells
    (out / 'tables.md').unlink()
    wider = [a if a != 'fp,minmax' else 'fp,minmax,dbdc' for a in args]
    result = run([sys.executable, script('reproduce_tables.py'), *wider, '--tables_only'], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(p.name for p in out.glob('cells/*.json')) == ['edsr_baseline_x2_fp.json', 'edsr_baseline_x2_w8a8_minmax.json']
    assert f'| FP | {fp_psnr:.3f} / ' in (out / 'tables.md').read_text()


def test_benchmark_memory_reports_both_modes(tmp_path):
    result = run([sys.executable, script('benchmark_memory.py'), '--arch', 'edsr_baseline', '--scale', '4',
                  '--hr_size', '200x120', '--chop_tile', '24', '--chop_overlap', '8'], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    rows = json.loads(result.stdout.strip().splitlines()[-1])
    assert [r['mode'] for r in rows] == ['plain', 'chop']
    for r in rows:
        assert r['lr_shape'] == [30, 50] and r['sr_shape'] == [120, 200]
        assert 0 < r['rss_before_mb'] <= r['peak_rss_mb']
    assert 'plain' in result.stdout and 'peak RSS MB' in result.stdout


def test_compare_reference_pairs_cells_with_reference_tables(tmp_path):
    (tmp_path / 'cells').mkdir()
    for name, psnr in (('edsr_baseline_x4_fp', 31.0), ('edsr_baseline_x4_w4a4_dbdc', 29.0),
                       ('edsr_baseline_x4_w6a6_minmax', 30.5)):
        results = {s: {'psnr': psnr + i, 'ssim': 0.5} for i, s in enumerate(('Set5', 'Set14', 'B100'))}
        (tmp_path / 'cells' / f'{name}.json').write_text(json.dumps({'results': results}))
    (tmp_path / 'ref.md').write_text(
        '## EDSR-baseline ×4, W4A4 (x)\n| method | Set5 | Set14 | B100 |\n|---|---|---|---|\n'
        '| FP | 31.000 / 0.9 | 32.000 / 0.9 | 33.000 / 0.9 |\n| DBDC | 29.010 / 0.8 | 30.000 / 0.8 | not run |\n'
        '## EDSR-baseline ×4, W6A6\n| MinMax | 30.480 / 0.8 | 31.500 / 0.8 | 32.500 / 0.8 |\n')
    result = run([sys.executable, script('compare_reference.py'), '--results', str(tmp_path),
                  '--reference', str(tmp_path / 'ref.md')], tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert '| DBDC | 29.000 | 29.010 | 30.000 | 30.000 | 31.000 | – |' in out
    assert '| MinMax | 30.500 | 30.480 | 31.500 | 31.500 | 32.500 | 32.500 |' in out
    assert out.count('| FP | 31.000 | 31.000 |') == 2  # the FP row heads both tables
    # shared cells: FP 3 (counted once), DBDC 2, MinMax 3; largest difference 0.02 (MinMax Set5)
    assert 'largest |ours - ref| over 8 shared cells: 0.020 dB' in out
    missing = run([sys.executable, script('compare_reference.py'), '--reference', str(tmp_path / 'no.md')], tmp_path)
    assert missing.returncode == 2 and message_line(missing.stderr).startswith('error: reference file')
