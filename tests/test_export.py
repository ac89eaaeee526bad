"""export.py and eval_onnx.py end to end on tiny networks: MINDIR and float ONNX equal to MindSpore at any
input size, the integer ONNX model (int8 weights, fused integer convs in onnxruntime, the 4-bit grid kept),
its results record, and one-line errors that leave no file behind."""
import json
import os
import re
import subprocess
import sys

import mindspore as ms
import numpy as np
import onnx
import pytest
from mindspore import Tensor

import calibrate
import eval as eval_cli
import eval_onnx
import export
from conftest import CLI_SCALE as SCALE, message_line
from src.deploy.onnx_graph import OPSET
from src.deploy.ort_forward import OrtForward
from src.models.load import load_fp_net
from src.quant.checkpoint import load_quant_checkpoint

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CALIB = ['--num_calib_images', '4', '--calib_batches', '2', '--calib_batch_size', '2', '--patch_size', '8']


def _export(files, out, *flags):
    return export.main(['--scale', str(SCALE), '--calib_path', files['calib'], *CALIB, *flags,
                        '--file_name', str(out)])


@pytest.fixture(scope='module')
def quant_ckpts(files):
    """Tiny EDSR ×2 calibrated with MinMax at W8A8 and W4A4 (conv_first / conv_last at 8 bit)."""
    out = files['root'] / 'export_ckpts'
    paths = {}
    for bits in (8, 4):
        assert calibrate.main(['--scale', str(SCALE), '--pre_trained', files['ckpt'], '--calib_path', files['calib'],
                               '--output_path', str(out), '--method', 'minmax', '--w_bit', str(bits),
                               '--a_bit', str(bits), *CALIB]) == 0
        paths[bits] = str(out / f'edsr_baseline_x2_w{bits}a{bits}_minmax.ckpt')
    return paths


@pytest.fixture(scope='module')
def exported(files, quant_ckpts):
    """The float ONNX model and the W8A8 / W4A4 integer models of the tiny network."""
    out = files['root'] / 'exported'
    paths = {'fp': out / 'fp.onnx', 8: out / 'w8a8.onnx', 4: out / 'w4a4.onnx'}
    assert _export(files, out / 'fp', '--pre_trained', files['ckpt'], '--file_format', 'ONNX') == 0
    for bits in (8, 4):
        assert _export(files, out / f'w{bits}a{bits}', '--quant_ckpt', quant_ckpts[bits], '--file_format', 'ONNX') == 0
    return {k: str(v) for k, v in paths.items()}


def _inputs():
    rng = np.random.RandomState(3)
    return [rng.rand(1, 3, 10, 12).astype(np.float32), rng.rand(2, 3, 7, 9).astype(np.float32)]


@pytest.mark.parametrize('kind', ['fp', 'quant'])
def test_mindir_reload_equals_mindspore_at_any_size(files, quant_ckpts, tmp_path, capsys, kind):
    source = ['--pre_trained', files['ckpt']] if kind == 'fp' else ['--quant_ckpt', quant_ckpts[4]]
    assert _export(files, tmp_path / 'model', *source, '--file_format', 'MINDIR') == 0
    assert re.search(r'verified MINDIR .*: passed', capsys.readouterr().out)
    net = load_fp_net(files['ckpt'])[0] if kind == 'fp' else load_quant_checkpoint(quant_ckpts[4])[0]
    graph = ms.nn.GraphCell(ms.load(str(tmp_path / 'model.mindir')))
    for x in _inputs():
        np.testing.assert_allclose(graph(Tensor(x)).asnumpy(), net(Tensor(x)).asnumpy(), rtol=0, atol=1e-5)
    assert os.listdir(tmp_path) == ['model.mindir']  # no temporary file left


def test_float_onnx_equals_mindspore_at_two_sizes(files, exported):
    net, _ = load_fp_net(files['ckpt'])
    forward = OrtForward(exported['fp'], threads=1)
    for x in _inputs():
        np.testing.assert_allclose(forward(x), net(Tensor(x)).asnumpy(), rtol=0, atol=1e-4)
    model = onnx.load(exported['fp'])
    assert model.opset_import[0].version == OPSET >= 13
    dims = [d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ['N', 3, 'H', 'W']
    shuffles = [n for n in model.graph.node if n.op_type == 'DepthToSpace']
    assert shuffles and all(a.s == b'CRD' for n in shuffles for a in n.attribute if a.name == 'mode')
    meta = {p.key: p.value for p in model.metadata_props}
    assert (meta['arch'], meta['scale'], meta['method'], meta['model']) == ('edsr_baseline', '2', 'fp', 'float')


@pytest.mark.parametrize('scale', [2, 4])
def test_msrresnet_float_onnx_bilinear_and_leaky_relu_match(tmp_path, scale):
    from src.deploy.onnx_export import export_float_onnx
    from src.models.build import build_net
    net = build_net('msrresnet', scale, num_feat=8, num_block=2)
    net.set_train(False)
    path = str(tmp_path / 'msr.onnx')
    export_float_onnx(net, path, _inputs()[0], {'arch': 'msrresnet'})
    forward = OrtForward(path, threads=1)
    for x in _inputs():
        np.testing.assert_allclose(forward(x), net(Tensor(x)).asnumpy(), rtol=0, atol=1e-4)
    resize = [n for n in onnx.load(path).graph.node if n.op_type == 'Resize']
    assert {a.name: a.s for a in resize[0].attribute if a.type == onnx.AttributeProto.STRING} == \
        {'mode': b'linear', 'coordinate_transformation_mode': b'half_pixel'}


def _conv_weights(path):
    """{layer: int8 weight levels} of an integer model (the DequantizeLinear inputs of every conv)."""
    model = onnx.load(path)
    return {t.name[:-len('.weight_int8')]: onnx.numpy_helper.to_array(t) for t in model.graph.initializer
            if t.name.endswith('.weight_int8')}


def test_integer_onnx_has_int8_weights_and_fused_integer_convs(exported, tmp_path):
    weights = _conv_weights(exported[8])
    assert len(weights) == 8 and all(w.dtype == np.int8 for w in weights.values())  # tiny EDSR ×2: 8 convs
    assert not [t.name for t in onnx.load(exported[8]).graph.initializer if t.name.endswith('.weight')]
    optimized = str(tmp_path / 'optimized.onnx')
    forward = OrtForward(exported[8], threads=1, optimized_path=optimized)
    ops = [n.op_type for n in onnx.load(optimized).graph.node]
    assert ops.count('QLinearConv') == 5  # FLOAT_OUTPUT_CONVS keep float outputs (src/deploy/onnx_net.py)
    x = _inputs()[1]
    assert forward(x).shape == (2, 3, 14, 18)
    meta = forward.metadata
    assert (meta['w_bit'], meta['a_bit'], meta['method'], meta['model'], meta['int_zero_point']) == \
        ('8', '8', 'minmax', 'integer', 'False')


def test_integer_onnx_keeps_4bit_weights_and_activations_on_their_grid(exported):
    weights = _conv_weights(exported[4])
    for layer, w in weights.items():
        spread = w.reshape(w.shape[0], -1).max(1).astype(int) - w.reshape(w.shape[0], -1).min(1)
        assert spread.max() <= (255 if layer in ('conv_first', 'conv_last') else 15), layer
    model = onnx.load(exported[4])
    consts = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    clip_max = {n.name: int(consts[n.input[2]]) for n in model.graph.node if n.op_type == 'Clip'}
    assert clip_max and set(clip_max.values()) == {15}  # every 4-bit input; 8-bit ones need no clip


def test_integer_graph_computes_the_integer_grid_simulation(quant_ckpts, tmp_path):
    """Without requantization (which the simulation does not model) the integer graph is the simulation on the
    integer grid, int32 bias included, up to float rounding."""
    from src.deploy.onnx_net import build_onnx
    from src.deploy.onnx_ops import IntegerOps
    from src.inference import NetForward
    for bits in (8, 4):
        qnet, _ = load_quant_checkpoint(quant_ckpts[bits], int_zero_point=True)
        model, _ = build_onnx(qnet, IntegerOps, {})
        onnx.save(model, str(tmp_path / 'exact.onnx'))
        x = _inputs()[1]
        integer = OrtForward(str(tmp_path / 'exact.onnx'), threads=1)(x)
        diff = np.abs(integer - qnet(Tensor(x)).asnumpy())
        assert diff.max() < 1e-5, (bits, diff.max())
        # eval.py's path: the network frozen for inference (weights and integer bias computed once)
        diff = np.abs(integer - NetForward(qnet)(x))
        assert diff.max() < 1e-5, (bits, 'frozen', diff.max())


def test_eval_onnx_writes_the_eval_record_with_backend(files, exported, tmp_path, capsys):
    args = ['--scale', str(SCALE), '--data_path', files['bench'], '--dataset', 'Tiny', '--output_path', str(tmp_path)]
    assert eval_onnx.main([*args, '--pre_trained', exported['fp'], '--num_threads', '1']) == 0
    onnx_record = json.loads((tmp_path / 'results_edsr_baseline_x2_fp_w32a32_onnxruntime.json').read_text())
    assert 'fp onnxruntime' in capsys.readouterr().out
    assert eval_cli.main([*args, '--pre_trained', files['ckpt']]) == 0
    ms_record = json.loads((tmp_path / 'results_edsr_baseline_x2_fp_w32a32.json').read_text())
    assert onnx_record['backend'] == 'onnxruntime' and 'backend' not in ms_record
    assert set(onnx_record) - set(ms_record) == {'backend'}
    assert abs(onnx_record['results']['Tiny']['psnr'] - ms_record['results']['Tiny']['psnr']) < 0.01
    assert eval_onnx.main([*args, '--pre_trained', exported[4]]) == 0
    record = json.loads((tmp_path / 'results_edsr_baseline_x2_minmax_w4a4_onnxruntime.json').read_text())
    assert (record['method'], record['w_bit'], record['a_bit'], record['seed']) == ('minmax', 4, 4, 0)
    assert 5 < record['results']['Tiny']['psnr'] < 40


@pytest.mark.parametrize('flags, message', [
    (['--pre_trained', '{root}/absent.ckpt', '--file_format', 'ONNX'], r'absent\.ckpt'),
    (['--pre_trained', '{ckpt}', '--file_format', 'ONNX', '--scale', '4'], r'×2 but --scale 4 was given'),
    (['--pre_trained', '{ckpt}', '--file_format', 'AIR'], '--file_format AIR needs --device_target Ascend'),
    (['--quant_ckpt', '{ckpt}', '--file_format', 'ONNX'], 'is not a quantized checkpoint'),
    (['--quant_ckpt', '{q8}', '--file_format', 'ONNX', '--pre_trained', '{ckpt}'], 'both given'),
    (['--pre_trained', '{ckpt}', '--file_format', 'ONNX', '--method', 'dbdc', '--w_bit', '8', '--a_bit', '8'],
     'export.py does not calibrate'),
    (['--pre_trained', '{ckpt}', '--file_format', 'PNG'], "--file_format 'PNG' is not allowed"),
])
def test_export_errors_are_one_line_and_write_nothing(files, quant_ckpts, tmp_path, capsys, flags, message):
    flags = [f.format(root=files['root'], ckpt=files['ckpt'], q8=quant_ckpts[8]) for f in flags]
    scale = [] if '--scale' in flags else ['--scale', str(SCALE)]
    assert export.main([*scale, '--calib_path', files['calib'], *CALIB, *flags,
                        '--file_name', str(tmp_path / 'out' / 'model')]) == 2
    assert re.search(message, message_line(capsys.readouterr().err))
    assert not (tmp_path / 'out').exists() or not os.listdir(tmp_path / 'out')


def test_failed_verification_leaves_no_file(files, tmp_path, capsys, monkeypatch):
    import src.deploy.onnx_export as onnx_export
    from src.deploy.verify import Tolerance
    monkeypatch.setattr(onnx_export, 'FLOAT_TOLERANCE', Tolerance(max_abs=-1.0))
    assert _export(files, tmp_path / 'model', '--pre_trained', files['ckpt'], '--file_format', 'ONNX') == 2
    assert message_line(capsys.readouterr().err).startswith('error: verification failed: float ONNX')
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize('model, flags, message', [
    ('{root}/absent.onnx', [], r'absent\.onnx does not exist'),
    ('{ckpt}', [], 'is not a model onnxruntime can load'),
    ('{fp}', ['--scale', '4'], r'is a ×2 model but --scale 4 was given: pass --scale 2'),
    ('{w8}', ['--method', 'minmax', '--w_bit', '4', '--a_bit', '4'], r'--w_bit 4 conflicts with .*minmax W8A8'),
    ('{fp}', ['--amp_level', 'O2'], r'--amp_level O2 applies to MindSpore networks'),
])
def test_eval_onnx_errors_are_one_line(files, exported, tmp_path, capsys, model, flags, message):
    model = model.format(root=files['root'], ckpt=files['ckpt'], fp=exported['fp'], w8=exported[8])
    scale = [] if '--scale' in flags else ['--scale', str(SCALE)]
    assert eval_onnx.main([*scale, '--data_path', files['bench'], '--dataset', 'Tiny', '--pre_trained', model,
                           '--output_path', str(tmp_path / 'out'), *flags]) == 2
    assert re.search(message, message_line(capsys.readouterr().err))
    assert not list((tmp_path / 'out').glob('*.json'))


def _run_script(args, tmp_path, **env):
    full_env = {**os.environ, 'PATH': os.path.dirname(sys.executable) + os.pathsep + os.environ['PATH'],
                'PTQ4SR_OUTPUT': str(tmp_path / 'out'), **env}
    return subprocess.run(args, cwd=REPO, env=full_env, capture_output=True, text=True, timeout=300)


def test_run_eval_onnx_script(files, exported, tmp_path):
    script = os.path.join(REPO, 'scripts', 'run_eval_onnx.sh')
    usage = _run_script(['bash', script], tmp_path)
    assert usage.returncode == 1 and usage.stdout.startswith('Usage: bash run_eval_onnx.sh [DATASET_PATH] [ONNX_PATH]')
    result = _run_script(['bash', script, files['bench'], exported[8], os.path.join(REPO, 'DIV2K_config.yaml'), '2'],
                         tmp_path, PTQ4SR_ARGS='--dataset Tiny --num_threads 1')
    assert result.returncode == 0, result.stdout + result.stderr
    record = json.loads((tmp_path / 'out' / 'results_edsr_baseline_x2_minmax_w8a8_onnxruntime.json').read_text())
    assert record['backend'] == 'onnxruntime' and (tmp_path / 'out' / 'eval_onnx_w8a8.log').is_file()


def test_benchmark_deploy_on_the_tiny_network(files, quant_ckpts, tmp_path):
    out = tmp_path / 'bench'
    result = _run_script([sys.executable, 'scripts/benchmark_deploy.py', '--pre_trained', files['ckpt'],
                          '--quant_ckpts', quant_ckpts[8], '--out', str(out), '--data_path', files['bench'],
                          '--dataset', 'Tiny', '--calib_path', files['calib'], '--size', '16', '--repeats', '2',
                          '--threads', '1', '--set', 'num_calib_images=4'], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    record = json.loads((out / 'benchmark_deploy.json').read_text())
    assert [(r['model'], r['runtime']) for r in record['rows']] == [
        ('FP', 'MindSpore (graph)'), ('FP', 'onnxruntime FP32'), ('minmax W8A8', 'onnxruntime int8')]
    assert all(r['latency_ms']['1'] > 0 and r['megabytes'] > 0 and 'Tiny' in r['psnr'] for r in record['rows'])
    assert '| minmax W8A8 | ' in record['table'] and 'simulation → integer' in record['table']
