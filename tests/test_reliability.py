"""Reliability: SIGTERM and Ctrl-C leave the previous output or nothing; equal seeds give equal bounds and
PSNR, and every output records its seeds and versions; dead channels and flat inputs stay finite through
calibration and PaC; bad input gives exit code 2 and one `error:` line."""
import importlib.util
import json
import os
import pathlib
import re
import select
import signal
import subprocess
import sys
import threading
import time

import mindspore as ms
import numpy as np
import pytest
from mindspore import Tensor

import calibrate
import eval as eval_cli
import src.files
import src.reproduction
import src.runtime
from conftest import message_line
from src.models.build import build_net
from src.calibration.bounds import ObserverSettings, calibrate_act_bounds, init_weight_bounds
from src.calibration.pac import PacSettings, pixel_aware_calibration
from src.checkpoint import CheckpointInfo, save_mindspore_checkpoint
from src.models.edsr import RGB_MEAN
from src.quant.checkpoint import load_quant_checkpoint
from src.quant.convert import quantized_copy
from src.quant.convert import QuantSpec
from src.quant.state import weight_quantizers
from src.cli import Terminated, handle_termination, interrupted_exit_code

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CALIB = ['--num_calib_images', '4', '--calib_batch_size', '2', '--patch_size', '8']
PTQ4SR = ['--method', 'ptq4sr', '--w_bit', '4', '--a_bit', '4', *CALIB, '--calib_batches', '2', '--pac_iters', '2']


def calibrate_args(files, out, *extra):
    return ['--scale', '2', '--pre_trained', files['ckpt'], '--calib_path', files['calib'],
            '--output_path', str(out), *extra]


def eval_args(files, out, *extra):
    weights = [] if '--quant_ckpt' in extra else ['--pre_trained', files['ckpt']]
    return ['--scale', '2', '--data_path', files['bench'], '--dataset', 'Tiny', *weights, '--output_path', str(out),
            *extra]


def contents(folder):
    """{relative path: bytes} of every file below ``folder`` (temp files included, so leftovers show)."""
    return {os.path.relpath(os.path.join(d, f), folder): pathlib.Path(d, f).read_bytes()
            for d, _, names in os.walk(folder) for f in names}


# --- signals ----------------------------------------------------------------------------------------
@pytest.fixture
def guarded_signals():
    """A SIGTERM handler of our own around the test, so a SIGTERM that main() failed to catch fails the
    test instead of killing pytest, and main() can be checked to restore it."""
    def outer(signum, frame):
        raise AssertionError('SIGTERM reached the handler installed outside main()')
    previous = signal.signal(signal.SIGTERM, outer)
    yield outer
    signal.signal(signal.SIGTERM, previous)


def test_handle_termination_raises_once_and_restores_the_handler(guarded_signals):
    with pytest.raises(Terminated) as info:
        with handle_termination():
            try:
                signal.raise_signal(signal.SIGTERM)
            finally:  # a second SIGTERM during cleanup is ignored, so the cleanup completes
                signal.raise_signal(signal.SIGTERM)
    assert isinstance(info.value, KeyboardInterrupt)  # `except Exception` in library code cannot swallow it
    assert (interrupted_exit_code(info.value), interrupted_exit_code(KeyboardInterrupt())) == (143, 130)
    assert signal.getsignal(signal.SIGTERM) is guarded_signals


def test_handle_termination_outside_the_main_thread_does_nothing(guarded_signals):
    errors = []

    def run():
        try:
            with handle_termination():
                pass
        except Exception as e:  # noqa: BLE001 (reported by the assert below)
            errors.append(e)
    worker = threading.Thread(target=run)
    worker.start()
    worker.join()
    assert errors == [] and signal.getsignal(signal.SIGTERM) is guarded_signals


def _sigterm():
    signal.raise_signal(signal.SIGTERM)


def _ctrl_c():
    # what Python's SIGINT handler does; a real SIGINT in this process reaches MindSpore's handler,
    # which sends SIGTERM instead (covered by the fresh-process test below)
    raise KeyboardInterrupt


class _HalfJson:
    """Stands in for ``json`` in src.files: writes half a document, then the interruption comes."""
    interrupt = staticmethod(_sigterm)

    @classmethod
    def dump(cls, data, f, **kwargs):
        f.write('{"results": ')
        f.flush()
        cls.interrupt()


@pytest.mark.parametrize('interrupt, code', [(_sigterm, 143), (_ctrl_c, 130)], ids=['sigterm', 'ctrl_c'])
def test_interrupt_while_writing_results_keeps_the_older_json(files, tmp_path, capsys, monkeypatch, guarded_signals,
                                                              interrupt, code):
    out = tmp_path / 'out'
    out.mkdir()
    (out / 'results_edsr_baseline_x2_fp_w32a32.json').write_text('{"older": true}\n')
    before = contents(out)
    monkeypatch.setattr(_HalfJson, 'interrupt', staticmethod(interrupt))
    monkeypatch.setattr(src.files, 'json', _HalfJson)
    assert eval_cli.main(eval_args(files, out)) == code
    assert 'no results JSON was written' in message_line(capsys.readouterr().err, 'interrupted:')
    assert contents(out) == before
    assert signal.getsignal(signal.SIGTERM) is guarded_signals


def test_sigterm_while_saving_checkpoint_keeps_the_older_one(files, tmp_path, capsys, monkeypatch, guarded_signals):
    out = tmp_path / 'out'
    out.mkdir()
    (out / 'edsr_baseline_x2_w8a8_minmax.ckpt').write_bytes(b'an older checkpoint')
    before = contents(out)

    def half_save(entries, path, **kwargs):
        with open(path, 'wb') as f:
            f.write(b'\x0a\x05half')
        signal.raise_signal(signal.SIGTERM)
    monkeypatch.setattr(ms, 'save_checkpoint', half_save)
    args = calibrate_args(files, out, '--method', 'minmax', '--w_bit', '8', '--a_bit', '8', *CALIB,
                          '--calib_batches', '2')
    assert calibrate.main(args) == 143
    assert 'no checkpoint was written' in message_line(capsys.readouterr().err, 'interrupted:')
    assert contents(out) == before


def _load_reproduce_tables():
    path = os.path.join(REPO, 'scripts', 'reproduce_tables.py')
    spec = importlib.util.spec_from_file_location('reproduce_tables', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tables_args(files, out, methods):
    return ['--pre_trained', files['ckpt'], '--data_path', files['bench'], '--calib_path', files['calib'],
            '--datasets', 'Tiny', '--scales', '2', '--bits', '8', '--methods', methods, '--out', str(out),
            *as_sets(CALIB + ['--calib_batches', '2', '--seed', '3', '--pac_seed', '7'])]


def as_sets(flags):
    """['--key', 'value', …] as reproduce_tables.py's ['--set', 'key=value', …]."""
    return [a for key, value in zip(flags[::2], flags[1::2]) for a in ('--set', f'{key[2:]}={value}')]


def test_sigterm_during_reproduce_tables_keeps_finished_cells(files, tmp_path, capsys, monkeypatch, guarded_signals):
    tables = _load_reproduce_tables()
    (tmp_path / 'cells').mkdir()
    (tmp_path / 'cells' / 'edsr_baseline_x2_fp.json').write_text('{"finished": true}\n')
    before = contents(tmp_path)
    children = []

    class Child:  # a cell group's process, SIGTERM'd while it works
        def __init__(self, *args, **kwargs):
            self.terminated = False
            children.append(self)

        def wait(self):
            if not self.terminated:
                signal.raise_signal(signal.SIGTERM)
            return 143

        def terminate(self):
            self.terminated = True

    monkeypatch.setattr(tables.subprocess, 'Popen', Child)
    assert tables.main(tables_args(files, tmp_path, 'fp,minmax')) == 143
    assert 'finished cells are cached' in message_line(capsys.readouterr().err, 'interrupted:')
    assert contents(tmp_path) == before
    assert [c.terminated for c in children] == [True]  # the child got SIGTERM, so it cleans up too


def _read_until(stream, pattern, timeout):
    data, deadline = b'', time.time() + timeout
    while not re.search(pattern, data):
        ready, _, _ = select.select([stream], [], [], max(0.0, deadline - time.time()))
        chunk = os.read(stream.fileno(), 4096) if ready else b''
        if not chunk:
            raise AssertionError(f'{pattern!r} never appeared: {data.decode(errors="replace")}')
        data += chunk
    return data


@pytest.mark.parametrize('signum, older', [(signal.SIGTERM, False), (signal.SIGTERM, True), (signal.SIGINT, True)],
                         ids=['sigterm_empty_folder', 'sigterm_older_checkpoint', 'ctrl_c_older_checkpoint'])
def test_interrupt_during_calibration_in_a_fresh_process(files, tmp_path, signum, older):
    out = tmp_path / 'out'
    out.mkdir()
    if older:
        (out / 'edsr_baseline_x2_w4a4_dbdc.ckpt').write_bytes(b'an older checkpoint')
        (out / 'edsr_baseline_x2_w4a4_dbdc_report.json').write_text('{"older": true}\n')
    before = contents(out)
    # 5000 batches keep it observing for far longer than the test waits
    args = calibrate_args(files, out, '--method', 'dbdc', '--w_bit', '4', '--a_bit', '4', *CALIB,
                          '--calib_batches', '5000')
    proc = subprocess.Popen([sys.executable, 'calibrate.py', *args], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        # wait until the observation loop has done a batch: SIGTERM then lands inside the loop
        err = _read_until(proc.stderr, rb'dbdc calibration: .*\| *[1-9]\d*/5000', timeout=90)
        proc.send_signal(signum)
        err += proc.communicate(timeout=60)[1]
    finally:
        if proc.poll() is None:
            proc.kill()
    err = err.decode()
    # MindSpore's SIGINT handler sends SIGTERM once a kernel has run, so Ctrl-C ends as 143 here, not 130
    assert proc.returncode == 143, err
    assert 'no checkpoint was written' in message_line(err, 'interrupted:')
    assert contents(out) == before


# --- determinism and provenance ---------------------------------------------------------------------
@pytest.fixture(scope='module')
def ptq4sr_runs(files, tmp_path_factory):
    """Two PTQ4SR calibrations with the same seeds into two folders, and DBDC alone for comparison."""
    root = tmp_path_factory.mktemp('repeat')
    for run, flags in (('a', PTQ4SR), ('b', PTQ4SR), ('dbdc', [*PTQ4SR, '--method', 'dbdc'])):
        assert calibrate.main(calibrate_args(files, root / run, *flags)) == 0
        assert not list((root / run).glob('*_pac_state.npz'))  # PaC's resume state goes once the checkpoint is saved
    return {run: root / run / f'edsr_baseline_x2_w4a4_{m}.ckpt'
            for run, m in (('a', 'ptq4sr'), ('b', 'ptq4sr'), ('dbdc', 'dbdc'))}


def test_same_seeds_give_identical_checkpoints(ptq4sr_runs):
    (net_a, meta_a), (net_b, meta_b) = (load_quant_checkpoint(str(ptq4sr_runs[r])) for r in 'ab')
    dbdc, _ = load_quant_checkpoint(str(ptq4sr_runs['dbdc']))
    params_b, params_dbdc = dict(net_b.parameters_and_names()), dict(dbdc.parameters_and_names())
    moved = 0
    for name, p in net_a.parameters_and_names():
        np.testing.assert_array_equal(p.asnumpy(), params_b[name].asnumpy(), err_msg=name)
        if name.endswith('input_quant.upper'):
            moved += not np.array_equal(p.asnumpy(), params_dbdc[name].asnumpy())
    assert moved == 8  # PaC really changed the DBDC bounds, and did so identically twice
    assert meta_a.pop('timings') and meta_b.pop('timings')
    assert meta_a == meta_b
    assert (meta_a['seed'], meta_a['pac_seed']) == (0, 1)
    assert meta_a['versions'] == src.runtime.package_versions()


def test_same_seeds_give_identical_psnr_and_results_record_seeds(files, ptq4sr_runs, tmp_path):
    """A third PTQ4SR calibration, inside eval.py, scores exactly what the two saved checkpoints score."""
    name = 'results_edsr_baseline_x2_ptq4sr_w4a4.json'
    assert eval_cli.main(eval_args(files, tmp_path / 'one_run', '--calib_path', files['calib'], *PTQ4SR)) == 0
    assert not list((tmp_path / 'one_run').glob('*_pac_state.npz'))
    for run in 'ab':
        assert eval_cli.main(eval_args(files, tmp_path / run, '--quant_ckpt', str(ptq4sr_runs[run]))) == 0
    records = [json.loads((tmp_path / run / name).read_text()) for run in ('one_run', 'a', 'b')]
    for key in ('psnr', 'ssim'):
        assert len({record['results']['Tiny'][key] for record in records}) == 1, key
    for record in records:
        assert (record['seed'], record['pac_seed'], record['versions']) == (0, 1, src.runtime.package_versions())
    assert eval_cli.main(eval_args(files, tmp_path / 'fp')) == 0
    fp = json.loads((tmp_path / 'fp' / 'results_edsr_baseline_x2_fp_w32a32.json').read_text())
    assert fp['seed'] == 0 and 'pac_seed' not in fp and fp['versions'] == src.runtime.package_versions()


def test_reproduce_tables_cells_record_seeds_and_versions(files, tmp_path, monkeypatch):
    tables = _load_reproduce_tables()  # calibration replaced by the FP net: only the bookkeeping is tested

    def fake_calibration(fp_net, info, plan, methods, log, pac_resume_file):
        os.makedirs(os.path.dirname(pac_resume_file), exist_ok=True)
        with open(pac_resume_file, 'wb'):  # as an interrupted PaC would have left it
            pass
        return {m: (fp_net, {'timings': {}}) for m in methods}
    monkeypatch.setattr(src.reproduction, 'calibrate_methods', fake_calibration)
    assert tables.main(tables_args(files, tmp_path, 'dbdc,ptq4sr')) == 0
    assert sorted(p.name for p in (tmp_path / 'cells').iterdir()) == ['edsr_baseline_x2_w8a8_dbdc.json', 'edsr_baseline_x2_w8a8_ptq4sr.json']
    cells = json.loads((tmp_path / 'tables.json').read_text())
    assert set(cells) == {'edsr_baseline_x2_w8a8_dbdc', 'edsr_baseline_x2_w8a8_ptq4sr'}
    assert (cells['edsr_baseline_x2_w8a8_ptq4sr']['seed'], cells['edsr_baseline_x2_w8a8_ptq4sr']['pac_seed']) == (3, 7)
    assert cells['edsr_baseline_x2_w8a8_dbdc']['seed'] == 3 and 'pac_seed' not in cells['edsr_baseline_x2_w8a8_dbdc']
    assert all(cell['versions'] == src.runtime.package_versions() for cell in cells.values())


# --- degenerate tensors -----------------------------------------------------------------------------
INFO = CheckpointInfo('edsr_baseline', 2, 8, 2, 'pth')
MEAN_IMAGE = np.broadcast_to(np.float32(RGB_MEAN).reshape(1, 3, 1, 1), (2, 3, 8, 8)).copy()


def _degenerate_pair():
    """Tiny EDSR ×2 with zero biases, so the mean-coloured image makes every activation exactly 0;
    body.0.conv1 has an all-zero output channel and a constant one. Returns (fp net, quantized copy)."""
    rng = np.random.default_rng(0)
    net = build_net('edsr_baseline', 2, num_feat=8, num_block=2)
    for name, p in net.parameters_and_names():
        value = (rng.normal(0, np.sqrt(1 / np.prod(p.shape[1:])), p.shape) if name.endswith('weight')
                 else np.zeros(p.shape))
        if name == 'body.0.conv1.weight':
            value[0], value[1] = 0.0, 0.05
        p.set_data(Tensor(value.astype(np.float32)))
    net.set_train(False)
    qnet = quantized_copy(net, INFO, QuantSpec(4, 4))
    init_weight_bounds(qnet)
    return net, qnet


@pytest.mark.parametrize('method', ['minmax', 'percentile', 'dbdc'])
def test_dead_channels_and_flat_batches_stay_finite(method):
    _, qnet = _degenerate_pair()
    lower, upper = {name: q.bounds() for name, q, _ in weight_quantizers(qnet)}['body.0.conv1']
    assert (lower[0].item(), upper[0].item(), lower[1].item(), upper[1].item()) == (0, 0, np.float32(0.05),
                                                                                  np.float32(0.05))
    conv = qnet.body[0].conv1  # the floored span keeps a zero or constant channel exactly as it is
    np.testing.assert_array_equal(conv.quantized_weight().asnumpy()[:2], conv.weight.asnumpy()[:2])
    rng = np.random.default_rng(1)
    batches = [rng.uniform(0, 1, (2, 3, 8, 8)).astype(np.float32), np.zeros((2, 3, 8, 8), np.float32), MEAN_IMAGE]
    bounds = calibrate_act_bounds(qnet, batches, ObserverSettings(method, percentile_p=0.01))
    assert all(np.isfinite(b).all() and b[0] <= b[1] for b in bounds.values())
    every = Tensor(np.concatenate(batches))  # random, zeros, flat mean image
    assert np.isfinite(qnet(every).asnumpy()).all()
    # calibrated on the flat image alone, every activation quantizer has lower == upper == 0
    _, flat = _degenerate_pair()
    assert set(calibrate_act_bounds(flat, [MEAN_IMAGE], ObserverSettings(method)).values()) == {(0.0, 0.0)}
    out = flat(every).asnumpy()
    assert np.isfinite(out).all()
    np.testing.assert_array_equal(out[4:], np.broadcast_to(MEAN_IMAGE[:, :, :1, :1], (2, 3, 16, 16)))


def test_pac_through_degenerate_quantizers_keeps_bounds_finite():
    """Every activation quantizer at l = u = 0 and every attention map zero (the flat image) in the
    activation phase, a random batch through them in the weight phase; the feature-loss gradient is on
    (a superset of the released loss). One iteration per phase must leave every bound finite."""
    fp, qnet = _degenerate_pair()
    calibrate_act_bounds(qnet, [MEAN_IMAGE], ObserverSettings('dbdc'))
    batches = [MEAN_IMAGE, np.random.default_rng(2).uniform(0, 1, (2, 3, 8, 8)).astype(np.float32)]
    settings = PacSettings(iters=1, lr_act=(2.0, 1.0), lr_weight=(2e-3, 1e-3), fea_grad=True)
    report = pixel_aware_calibration(qnet, fp, batches, settings, log=lambda msg: None)
    assert np.isfinite(report['act']['l1'] + report['weight']['l1']).all()
    for name, p in qnet.parameters_and_names():
        assert np.isfinite(p.asnumpy()).all(), name


# --- bad input: exit code 2 and one line --------------------------------------------------------------
@pytest.fixture(scope='module')
def bad(files, tmp_path_factory):
    """An empty folder, a calibration folder with an unreadable PNG, an F64 B16 (baseline) checkpoint,
    and a quantized checkpoint whole and truncated."""
    root = tmp_path_factory.mktemp('bad')
    (root / 'empty').mkdir()
    (root / 'unreadable').mkdir()
    for name in os.listdir(files['calib']):
        with open(os.path.join(files['calib'], name), 'rb') as f:
            (root / 'unreadable' / name).write_bytes(f.read()[:40] if name == 'c1x2.png' else f.read())
    shapes = {n: p.shape for n, p in build_net('edsr_baseline', 2).parameters_and_names()}
    save_mindspore_checkpoint({n: np.zeros(s, np.float32) for n, s in shapes.items()}, str(root / 'baseline.ckpt'))
    assert calibrate.main(calibrate_args(files, root, '--method', 'minmax', '--w_bit', '8', '--a_bit', '8', *CALIB,
                                         '--calib_batches', '2')) == 0
    data = (root / 'edsr_baseline_x2_w8a8_minmax.ckpt').read_bytes()
    (root / 'truncated.ckpt').write_bytes(data[:len(data) // 2])
    return {'empty': str(root / 'empty'), 'unreadable': str(root / 'unreadable'),
            'baseline': str(root / 'baseline.ckpt'), 'quant': str(root / 'edsr_baseline_x2_w8a8_minmax.ckpt'),
            'truncated': str(root / 'truncated.ckpt')}


@pytest.mark.parametrize('tool, change, message', [
    ('eval', ['--data_path', '{empty}'], r"dataset 'Tiny' not found under .*empty .*available: none"),
    ('calibrate', ['--calib_path', '{empty}'], r'calibration folder .*empty holds no images'),
    ('calibrate', ['--calib_path', '{unreadable}'], r'cannot read image .*c1x2\.png .*replace or remove'),
    ('eval', ['--pre_trained', '{baseline}', '--arch', 'edsr'],
     r'baseline\.ckpt is EDSR-baseline ×2 but --arch edsr was given: pass --arch edsr_baseline'),
    ('eval', ['--arch', 'msrresnet'], r'is EDSR-baseline \(F=8, B=2\) ×2 but --arch msrresnet was given'),
    ('calibrate', ['--a_bit', '1'], '--a_bit 1 is out of range'),
    ('calibrate', ['--method', 'foo'], "--method 'foo' is not allowed"),
    ('calibrate', ['--num_calib_images', '5'], 'holds 4 images but --num_calib_images is 5'),
    ('calibrate', ['--patch_size', '13'], 'smaller than the 13-px patch'),
    ('eval', ['--quant_ckpt', '{truncated}'],
     r'truncated\.ckpt is not a readable MindSpore checkpoint \(.*\): pass a file written by calibrate\.py'),
    ('eval', ['--pre_trained', '{quant}'], r'minmax\.ckpt is a quantized checkpoint .*: pass it as --quant_ckpt'),
])
def test_bad_input_is_one_line_with_exit_code_2(files, bad, tmp_path, capsys, tool, change, message):
    change = [c.format(**bad) for c in change]
    out = tmp_path / 'out'
    if tool == 'eval':
        code = eval_cli.main(eval_args(files, out, *change))
    else:
        code = calibrate.main(calibrate_args(files, out, '--method', 'minmax', '--w_bit', '8', '--a_bit', '8',
                                             *CALIB, '--calib_batches', '2', *change))
    assert code == 2
    assert re.search(message, message_line(capsys.readouterr().err)), message
    assert not contents(tmp_path)  # nothing written, not even a temp file


def test_calibrate_error_in_a_fresh_process(files, bad, tmp_path):
    result = subprocess.run([sys.executable, 'calibrate.py', *calibrate_args(files, tmp_path, '--method', 'minmax',
                                                                             '--calib_path', bad['empty'])],
                            cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.count('\n') == 1 and result.stderr.startswith('error: calibration folder'), result.stderr
