"""Full EDSR (256 features × 32 blocks, 43 M parameters at ×2) through the whole pipeline at real size with
random weights (no full-EDSR checkpoint is shared): convert → DBDC → PaC → save → quantized evaluation,
in one process whose peak memory is bounded (~30 s on 2 cores)."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEAK_RSS_LIMIT_MB = 6000  # measured 2.9 GB; a leak per graph or extra network copies per stage would show

RUN = r'''
import json, resource, sys
sys.path.insert(0, {repo!r})
import calibrate, eval as eval_cli
args = json.loads(sys.argv[1])
assert calibrate.main(args['calibrate']) == 0
assert eval_cli.main(args['eval']) == 0
print('PEAK_RSS_MB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
'''


@pytest.fixture(scope='module')
def full_edsr_checkpoint(tmp_path_factory):
    from src.checkpoint import save_mindspore_checkpoint
    from src.models.build import build_net
    net = build_net('edsr', 2)  # MindSpore's default initialisation; res_scale 0.1 keeps it stable
    params = {name: p.asnumpy() for name, p in net.parameters_and_names()}
    assert sum(v.size for v in params.values()) == pytest.approx(40.7e6, rel=0.01)
    path = str(tmp_path_factory.mktemp('full') / 'edsr_x2_random.ckpt')
    save_mindspore_checkpoint(params, path, {'arch': 'edsr'})
    return path


@pytest.mark.slow
def test_full_edsr_calibrates_and_evaluates_within_bounded_memory(files, full_edsr_checkpoint, tmp_path):
    out = tmp_path / 'out'
    common = ['--scale', '2', '--output_path', str(out)]
    calibrate_args = [*common, '--pre_trained', full_edsr_checkpoint, '--arch', 'edsr', '--method', 'ptq4sr',
                      '--w_bit', '4', '--a_bit', '4', '--calib_path', files['calib'], '--num_calib_images', '4',
                      '--calib_batches', '2', '--calib_batch_size', '2', '--patch_size', '12', '--pac_iters', '1']
    ckpt = out / 'edsr_x2_w4a4_ptq4sr.ckpt'
    eval_args = [*common, '--quant_ckpt', str(ckpt), '--data_path', files['bench'], '--dataset', 'Tiny']
    result = subprocess.run([sys.executable, '-c', RUN.format(repo=REPO),
                             json.dumps({'calibrate': calibrate_args, 'eval': eval_args})],
                            capture_output=True, text=True, timeout=1200, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    peak = int(result.stdout.split('PEAK_RSS_MB')[-1].split()[0])
    record = json.loads((out / 'results_edsr_x2_ptq4sr_w4a4.json').read_text())
    assert record['model'] == 'edsr' and np.isfinite(record['results']['Tiny']['psnr'])
    report = json.loads((out / 'edsr_x2_w4a4_ptq4sr_report.json').read_text())
    assert len(report['act_bounds']) == 32 * 2 + 4  # every conv input has bounds: 64 body convs, first, after, up, last
    assert peak < PEAK_RSS_LIMIT_MB, f'peak RSS {peak} MB'
    print(f'full EDSR x2 W4A4 pipeline: peak RSS {peak} MB')
