"""--amp_level (src/precision.py): MindSpore AMP on the evaluated network, fake quantizers kept in float32,
the CPU note, the results record, and the refusals."""
import json
import re

import mindspore as ms
import numpy as np
import pytest
from mindspore import Tensor, nn

import calibrate
import eval as eval_cli
from conftest import message_line
from src.calibration.bounds import init_weight_bounds
from src.models.build import build_net
from src.inference import as_forward
from src.precision import apply_amp
from src.quant.convert import QuantSpec, convert_to_quant
from src.quant.fake_quant import FakeQuantizer
from src.quant.state import input_quantizers


def _net(quantized):
    net = build_net('edsr_baseline', 2, num_feat=8, num_block=2)
    rng = np.random.default_rng(2)
    for name, p in net.parameters_and_names():
        std = 0.5 * np.sqrt(2 / np.prod(p.shape[1:])) if name.endswith('weight') else 0.01
        p.set_data(Tensor(rng.normal(0, std, p.shape).astype(np.float32)))
    if quantized:
        convert_to_quant(net, QuantSpec(4, 4))
        init_weight_bounds(net)
        for _, quant in input_quantizers(net):
            quant.set_bounds(-60.0, 60.0)
    net.set_train(False)
    return net


class _Quantize(nn.Cell):
    def __init__(self):
        super().__init__()
        self.quant = FakeQuantizer(4)
        self.quant.set_bounds(-1.37, 31.3)

    def construct(self, x):
        return self.quant(x)


def test_fake_quantizers_keep_their_float32_grid():
    """Under O2/O3 a quantizer maps each value to the level it has in float32 (its output is then cast to
    float16); the same quantizer computed in float16 moves values by whole levels."""
    x = Tensor(np.random.default_rng(0).uniform(-3, 40, (1, 1, 64, 64)).astype(np.float16).astype(np.float32))
    reference = _Quantize()(x).asnumpy()
    step = np.float32(31.3 + 1.37) / 15
    for level in ('O2', 'O3'):
        out = apply_amp(_Quantize(), level, log=lambda message: None)(x).asnumpy()
        np.testing.assert_array_equal(out, reference.astype(np.float16).astype(np.float32))
    in_float16 = _Quantize()
    in_float16.to_float(ms.float16)
    moved = np.abs(in_float16(x).asnumpy().astype(np.float32) - reference)
    assert moved.max() > 0.9 * step  # why the quantizers are black-listed


@pytest.mark.parametrize('quantized', [False, True])
def test_amp_levels_change_the_output_by_float16_rounding(quantized):
    """Float16 activations move the output slightly; in a quantized net a rounded input near a level boundary
    can also land on the next level, so there the change is larger (~1/255 on average for this random W4A4 net)."""
    x = Tensor(np.random.default_rng(1).uniform(0, 1, (1, 3, 12, 12)).astype(np.float32))
    reference = _net(quantized)(x).asnumpy()
    assert apply_amp(_net(quantized), 'O0') is not None
    outputs = {}
    for level in ('O2', 'O3'):
        notes = []
        y = as_forward(apply_amp(_net(quantized), level, 'CPU', notes.append))(x.asnumpy())
        assert y.dtype == np.float32 and notes and notes[0].startswith(f'note: --amp_level {level} on CPU is an emulation')
        outputs[level] = y
        change = np.abs(outputs[level] - reference)
        assert 0 < change.max() < (0.05 if quantized else 0.01) and change.mean() < (5e-3 if quantized else 1e-3)
    np.testing.assert_array_equal(outputs['O2'], outputs['O3'])  # no BatchNorm / LayerNorm to keep in float32


def test_eval_amp_level_writes_its_own_record(files, tmp_path, capsys):
    out = tmp_path / 'out'
    args = ['--scale', '2', '--data_path', files['bench'], '--dataset', 'Tiny', '--pre_trained', files['ckpt'],
            '--output_path', str(out)]
    assert eval_cli.main([*args, '--amp_level', 'O2', '--save_sr', 'True']) == 0
    assert 'note: --amp_level O2 on CPU is an emulation' in capsys.readouterr().out
    amp = json.loads((out / 'results_edsr_baseline_x2_fp_w32a32_O2.json').read_text())
    assert amp['amp_level'] == 'O2' and (out / 'fp_O2' / 'Tiny' / 'im0.png').is_file()
    assert eval_cli.main(args) == 0
    fp32 = json.loads((out / 'results_edsr_baseline_x2_fp_w32a32.json').read_text())
    assert fp32['amp_level'] == 'O0'
    assert abs(amp['results']['Tiny']['psnr'] - fp32['results']['Tiny']['psnr']) < 0.05


def test_amp_level_is_refused_where_it_does_not_apply(files, tmp_path, capsys):
    assert calibrate.main(['--scale', '2', '--pre_trained', files['ckpt'], '--calib_path', files['calib'],
                           '--method', 'dbdc', '--output_path', str(tmp_path), '--amp_level', 'O3']) == 2
    assert message_line(capsys.readouterr().err).startswith('error: --amp_level O3 applies to evaluation (eval.py)')
    assert eval_cli.main(['--scale', '2', '--amp_level', 'O1']) == 2
    assert re.search(r"--amp_level 'O1' is not allowed: choose one of \['O0', 'O2', 'O3'\]",
                     message_line(capsys.readouterr().err))


def test_quantized_network_under_amp_is_scored_op_by_op():
    """ms.jit cannot compile a fake-quantized network under AMP, so evaluation runs it in PyNative."""
    from src.inference import PyNativeForward, super_resolve
    forward = apply_amp(_net(True), 'O2', 'CPU', lambda m: None)
    assert isinstance(forward, PyNativeForward)
    lr = np.random.default_rng(2).integers(0, 256, (12, 10, 3), dtype=np.uint8)
    assert super_resolve(forward, lr, 2).shape == (24, 20, 3)
