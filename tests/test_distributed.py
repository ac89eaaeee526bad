"""Data parallelism (src/distributed.py): the sharding and combining functions, ranks simulated in one process,
and 2 CPU workers started by msrun on localhost against a single process (calibration; evaluation through
scripts/run_distribute_eval_cpu.sh is in test_scripts.py)."""
import json
import os
import subprocess
import sys

import mindspore as ms
import numpy as np
import pytest

import calibrate
import eval as eval_cli
from conftest import message_line
from src.calibration.bounds import ObserverSettings, init_weight_bounds, observe_act_bounds
from src.checkpoint import CheckpointInfo
from src.dataset import BenchmarkPairs
from src.distributed import LOCAL, World, batch_share, merge_indexed, shard
from src.errors import UserError
from src.evaluate import evaluate
from src.models.build import build_net
from src.quant.convert import QuantSpec, quantized_copy
from src.quant.state import input_quantizers
from src.runtime import cpu_threads

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CALIB_ARGS = ['--scale', '2', '--num_calib_images', '4', '--calib_batches', '3', '--calib_batch_size', '2',
              '--patch_size', '8', '--w_bit', '4', '--a_bit', '4']


# --- sharding and combining ------------------------------------------------------------------------
@pytest.mark.parametrize('count, size', [(7, 2), (2, 2), (1, 3), (10, 4)])
def test_shards_cover_every_index_once_and_merge_back_in_order(count, size):
    parts = [[(i, f'item{i}') for i in shard(count, rank, size)] for rank in range(size)]
    assert sorted(i for part in parts for i, _ in part) == list(range(count))
    assert all(i % size == rank for rank, part in enumerate(parts) for i, _ in part)
    assert merge_indexed(parts) == [f'item{i}' for i in range(count)]


def test_merge_indexed_refuses_missing_or_repeated_indices():
    with pytest.raises(RuntimeError, match='expected each of 0..1 once'):
        merge_indexed([[(0, 'a')], [(2, 'c')]])
    with pytest.raises(RuntimeError):
        merge_indexed([[(0, 'a')], [(0, 'b')]])


def test_batch_share_splits_evenly_or_says_how_to_fix():
    batch = np.arange(6).reshape(6, 1)
    assert np.concatenate([batch_share(batch, r, 3) for r in range(3)]).tolist() == batch.tolist()
    assert batch_share(batch, 1, 2).ravel().tolist() == [3, 4, 5]
    with pytest.raises(UserError, match='--pac_batch_size 6 cannot be split evenly over 4 workers'):
        batch_share(batch, 0, 4)


def test_one_process_world_is_the_identity():
    grads, losses = (ms.Tensor(np.ones(3, np.float32)),), (ms.Tensor(np.float32(2)),)
    assert (LOCAL.rank, LOCAL.size, LOCAL.is_main) == (0, 1, True)
    assert LOCAL.all_gather({'a': 1}) == [{'a': 1}]
    averaged = LOCAL.average(grads, losses)
    assert averaged[0] is grads and averaged[1] is losses


def test_worker_threads_share_the_cores():
    cores = cpu_threads(0)
    assert cpu_threads(0, workers=2) == max(1, cores // 2)
    assert cpu_threads(0, workers=4 * cores) == 1 and cpu_threads(3, workers=2) == 3


# --- ranks simulated in one process ----------------------------------------------------------------
class _Gathered(Exception):
    """Carries what a simulated rank handed to ``all_gather`` out of the computation."""


class SimulatedWorld(World):
    """Rank ``rank`` of ``size``: first run (``parts`` None) hands out its part by raising ``_Gathered``;
    the second run gets every rank's part back, as the collective would return it."""

    def __init__(self, rank, size, parts=None):
        self.rank, self.size, self.parts = rank, size, parts

    def all_gather(self, obj):
        if self.parts is None:
            raise _Gathered(obj)
        return self.parts


def run_simulated(size, compute):
    """``compute(world)`` for every rank of ``size`` simulated ones, after gathering their parts."""
    parts = []
    for rank in range(size):
        with pytest.raises(_Gathered) as gathered:
            compute(SimulatedWorld(rank, size))
        parts.append(gathered.value.args[0])
    return [compute(SimulatedWorld(rank, size, parts)) for rank in range(size)]


def _tiny_fp():
    fp = build_net('edsr_baseline', 2, num_feat=8, num_block=2)
    rng = np.random.default_rng(5)
    for name, p in fp.parameters_and_names():
        std = 0.5 * np.sqrt(2 / np.prod(p.shape[1:])) if name.endswith('weight') else 0.01
        p.set_data(ms.Tensor(rng.normal(0, std, p.shape).astype(np.float32)))
    fp.set_train(False)
    return fp


def _tiny_qnet():
    qnet = quantized_copy(_tiny_fp(), CheckpointInfo('edsr_baseline', 2, 8, 2, 'pth'), QuantSpec(4, 4))
    init_weight_bounds(qnet)
    return qnet


@pytest.mark.parametrize('size', [2, 3])
def test_simulated_ranks_observe_exactly_the_single_process_bounds(size):
    """5 batches over 2 or 3 ranks: batch 0 (float weights, released quirk) on rank 0, the others quantized."""
    rng = np.random.default_rng(1)
    batches = [rng.uniform(0, 1, (2, 3, 8, 8)).astype(np.float32) for _ in range(5)]
    methods = ('minmax', 'percentile', 'dbdc')

    def observe(world):
        qnet = _tiny_qnet()
        bounds = observe_act_bounds(qnet, batches, ObserverSettings(), methods, world)
        return bounds, {name: q.grad_scale for name, q in input_quantizers(qnet)}
    single = observe(LOCAL)
    for bounds, scales in run_simulated(size, observe):
        assert scales == single[1]
        assert bounds == single[0]  # the same float32 values: combined in batch order


def test_simulated_ranks_evaluate_like_one_process(files):
    sets = [BenchmarkPairs(files['bench'], 'Tiny', 2)] * 2  # 4 images over 3 ranks: uneven shares

    def score(world):
        results = evaluate(_tiny_fp(), sets, 2, world=world)
        return {name: {k: v for k, v in r.items() if k != 'seconds'} for name, r in results.items()}
    single = score(LOCAL)
    assert single['Tiny']['images'] == 2 and len(single['Tiny']['per_image']) == 2
    assert all(result == single for result in run_simulated(3, score))


# --- the launcher ----------------------------------------------------------------------------------
@pytest.mark.parametrize('entry, extra', [(eval_cli, ['--data_path', '{bench}', '--dataset', 'Tiny']),
                                          (calibrate, ['--calib_path', '{calib}', '--method', 'dbdc'])])
def test_run_distribute_outside_msrun_is_a_one_line_error(entry, extra, files, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv('MS_ROLE', raising=False)
    extra = [e.format(**files) for e in extra]
    assert entry.main(['--scale', '2', '--pre_trained', files['ckpt'], '--output_path', str(tmp_path),
                       '--run_distribute', 'True', *extra]) == 2
    line = message_line(capsys.readouterr().err)
    assert line.startswith('error: --run_distribute True needs the msrun launcher (MS_ROLE is not set): launch it')


def msrun(tmp_path, script_args, workers=2, timeout=240):
    """Run ``script_args`` under msrun with ``workers`` CPU workers (free port, this interpreter first on PATH)."""
    import socket
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    env = {**os.environ, 'PATH': os.path.dirname(sys.executable) + os.pathsep + os.environ['PATH']}
    command = [sys.executable, '-m', 'mindspore.parallel.cluster.run', '--worker_num', str(workers),
               '--local_worker_num', str(workers), '--master_port', str(port), '--cluster_time_out', '60',
               '--join', 'True', '--log_dir', str(tmp_path / 'logs'), *script_args]
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    logs = '\n'.join(f'--- {p.name}\n{p.read_text()[-3000:]}' for p in sorted((tmp_path / 'logs').glob('*.log')))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:] + logs
    return result


def _bounds(ckpt):
    return {name: p.asnumpy() for name, p in ms.load_checkpoint(str(ckpt)).items() if '_quant.' in name}


def test_two_msrun_workers_calibrate_and_evaluate_like_one_process(files, tmp_path):
    """One cluster runs calibrate.py (DBDC; PTQ4SR with one PaC iteration per phase) and eval.py (DBDC
    calibrated inside eval.py) with --run_distribute True; the same commands then run in this process."""
    base = [*CALIB_ARGS, '--pre_trained', files['ckpt'], '--calib_path', files['calib']]
    commands = [('calibrate', [*base, '--method', 'dbdc', '--output_path', '{out}/dbdc']),
                ('calibrate', [*base, '--method', 'ptq4sr', '--pac_iters', '1', '--output_path', '{out}/ptq4sr']),
                ('eval', [*base, '--method', 'dbdc', '--data_path', files['bench'], '--dataset', 'Tiny',
                          '--output_path', '{out}/eval'])]
    runs = [[entry, [a.format(out=tmp_path / 'two') for a in args] + ['--run_distribute', 'True']]
            for entry, args in commands]
    (tmp_path / 'runs.json').write_text(json.dumps(runs))
    msrun(tmp_path, ['tests/msrun_entry.py', str(tmp_path / 'runs.json')])
    for entry, args in commands:
        assert {'eval': eval_cli, 'calibrate': calibrate}[entry].main([a.format(out=tmp_path / 'one')
                                                                          for a in args]) == 0

    def read(ranks, relative):
        return tmp_path / ranks / relative
    # DBDC: the per-batch bounds of both ranks, combined in batch order (float summation tolerance; exact here)
    one, two = (_bounds(read(r, 'dbdc/edsr_baseline_x2_w4a4_dbdc.ckpt')) for r in ('one', 'two'))
    assert sorted(one) == sorted(two) and len(one) == 32
    for name in one:
        np.testing.assert_allclose(two[name], one[name], rtol=1e-6, atol=1e-7, err_msg=name)
    # PaC: each rank takes 1 of every batch of 2; averaged gradients give the single-process Adam steps
    one, two = (_bounds(read(r, 'ptq4sr/edsr_baseline_x2_w4a4_ptq4sr.ckpt')) for r in ('one', 'two'))
    dbdc = _bounds(read('one', 'dbdc/edsr_baseline_x2_w4a4_dbdc.ckpt'))
    assert any(not np.array_equal(one[n], dbdc[n]) for n in one)  # PaC moved the bounds
    for name in one:
        np.testing.assert_allclose(two[name], one[name], rtol=1e-5, atol=1e-7, err_msg=name)
    losses = [json.loads(read(r, 'ptq4sr/edsr_baseline_x2_w4a4_ptq4sr_report.json').read_text())['pac_loss']
              for r in ('one', 'two')]
    for phase in ('act', 'weight'):
        assert losses[1][phase] == pytest.approx(losses[0][phase], rel=1e-5)
    # eval.py: calibrated on both ranks, each scoring one image: the per-image numbers and means of one process
    one, two = (json.loads(read(r, 'eval/results_edsr_baseline_x2_dbdc_w4a4.json').read_text()) for r in ('one', 'two'))
    assert (one['workers'], two['workers']) == (1, 2)
    for key in ('psnr', 'ssim', 'images', 'per_image'):
        assert two['results']['Tiny'][key] == one['results']['Tiny'][key]
