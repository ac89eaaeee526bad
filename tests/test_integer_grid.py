"""The deployment-exact quantizer option (``int_zero_point``) against hand-computed grids, ``integer_grid``
(the exporter's numpy copy of the rule) against ``FakeQuantizer``, and its plumbing into checkpoints."""
import src  # noqa: F401  (sets ONEDNN_MAX_CPU_ISA before MindSpore's first conv)
import json

import mindspore as ms
import numpy as np
import pytest
from mindspore import Tensor

from src.quant.checkpoint import META_KEY, load_quant_checkpoint
from src.quant.fake_quant import FakeQuantizer
from src.quant.integer_grid import integer_grid


def _run(bits, lower, upper, x, channels=0, int_zero_point=True):
    q = FakeQuantizer(bits, channels=channels, int_zero_point=int_zero_point)
    q.set_bounds(lower, upper)
    return q(Tensor(np.asarray(x, np.float32))).asnumpy()


def test_zero_point_is_rounded_to_an_integer_keeping_the_step():
    # 2 bits, l = -0.4, u = 2.6: s = 1, -l/s = 0.4 -> z = 0: the grid is 0, 1, 2, 3 (released: -0.4 ... 2.6)
    x = [-1.0, -0.1, 0.4, 0.6, 1.4, 2.5, 9.0]
    np.testing.assert_allclose(_run(2, -0.4, 2.6, x), [0, 0, 0, 1, 1, 2, 3], atol=1e-6)
    np.testing.assert_allclose(_run(2, -0.4, 2.6, x, int_zero_point=False), [-0.4, -0.4, 0.6, 0.6, 1.6, 2.6, 2.6],
                               atol=1e-6)
    # 4 bits, l = -0.75, u = 2.2: s = 2.95/15, -l/s = 3.81 -> z = 4; every output is an integer multiple of s
    s = np.float32(2.95) / 15
    out = _run(4, -0.75, 2.2, np.linspace(-2, 3, 101))
    k = out / s
    np.testing.assert_allclose(k, np.round(k), atol=1e-4)
    assert np.round(k).min() == -4 and np.round(k).max() == 11


def test_identical_to_the_released_grid_when_the_zero_point_is_already_integral():
    rng = np.random.default_rng(0)
    x = rng.uniform(-2, 4, 500)
    # 4 bits, l = -0.75, u = 3.0: s = 0.25, -l/s = 3 exactly
    np.testing.assert_array_equal(_run(4, -0.75, 3.0, x), _run(4, -0.75, 3.0, x, int_zero_point=False))
    # per-channel weights below 8 bits follow the same rule: l = -3s, -7s with s = 0.5, 0.25 (6 bits)
    w = rng.uniform(-3, 3, (2, 3, 3, 3))
    lower, upper = np.array([-1.5, -1.75]), np.array([-1.5 + 63 * 0.5, -1.75 + 63 * 0.25])
    np.testing.assert_array_equal(_run(6, lower, upper, w, channels=2),
                                  _run(6, lower, upper, w, channels=2, int_zero_point=False))


def test_post_relu_lower_bound_above_half_a_step_snaps_to_zero():
    # l = 0.3 > s/2 (s = 3.7/3): no integer zero point reaches it, so the grid starts at 0 and keeps the step
    out = _run(2, 0.3, 4.0, [0.0, 0.2, 1.0, 4.0])
    np.testing.assert_allclose(out, np.array([0, 0, 1, 3]) * np.float32(3.7 / 3), rtol=1e-6)


def test_8bit_weights_sit_on_int8_with_a_step_that_covers_the_bounds():
    lower, upper = np.array([-0.5, -0.2]), np.array([0.3, 0.8])
    scale, zero = integer_grid(lower, upper, 8, weight=True)
    np.testing.assert_allclose(scale, [0.5 / 128, 0.8 / 127], rtol=1e-6)
    assert zero.tolist() == [128, 128]
    w = np.stack([np.linspace(-0.5, 0.3, 27).reshape(3, 3, 3), np.linspace(-0.2, 0.8, 27).reshape(3, 3, 3)])
    out = _run(8, lower, upper, w, channels=2)
    levels = out / scale.reshape(2, 1, 1, 1)
    np.testing.assert_allclose(levels, np.round(levels), atol=1e-3)
    assert np.round(levels).min() >= -128 and np.round(levels).max() <= 127
    np.testing.assert_allclose(out, w, atol=scale.max() / 2 + 1e-7)  # nothing clipped: the extremes are kept


@pytest.mark.parametrize('bits, channels', [(2, 0), (4, 0), (6, 0), (8, 0), (4, 5), (6, 5), (8, 5)])
def test_integer_grid_equals_the_quantizer(bits, channels):
    """The exporter's grid (numpy) and the simulation's (MindSpore) give the same outputs."""
    rng = np.random.default_rng(bits + channels)
    shape = (channels, 1, 1, 1) if channels else ()
    lower = rng.uniform(-2, 0.3, shape).astype(np.float32)
    upper = (lower + rng.uniform(0.1, 4, shape)).astype(np.float32)
    x = rng.uniform(-4, 5, (channels or 3, 4, 3, 3)).astype(np.float32)
    scale, zero = integer_grid(lower, upper, bits, weight=channels > 0)
    expected = (np.clip(np.round(x / scale) + zero, 0, 2 ** bits - 1) - zero) * scale
    np.testing.assert_allclose(_run(bits, lower, upper, x, channels), expected, rtol=0, atol=2e-6)  # float32 ulps


@pytest.mark.parametrize('channels', [0, 3])
def test_straight_through_gradients_reach_the_bounds_in_graph_mode_at_two_shapes(channels):
    """PaC trains the bounds of an int_zero_point network in graph mode, which recompiles per input shape.
    (8-bit weights: the step follows whichever of -l/128, u/127 is larger, here u, so only u gets a gradient.)"""
    q = FakeQuantizer(8 if channels else 4, channels=channels, int_zero_point=True)
    q.set_bounds(np.full(channels or (), -0.7), np.full(channels or (), 2.3))
    def total(x):
        return q(x).sum()
    grad_fn = ms.jit(ms.grad(total, grad_position=None, weights=[q.lower, q.upper]))
    for shape in ((channels or 2, 5, 3, 3), (channels or 4, 2, 3, 3)):
        grads = grad_fn(Tensor(np.linspace(-1, 3, int(np.prod(shape))).reshape(shape).astype(np.float32)))
        lower, upper = (np.abs(g.asnumpy()).sum() for g in grads)
        assert np.isfinite([lower, upper]).all() and upper > 0 and (lower > 0) == (channels == 0)


@pytest.fixture(scope='module')
def intzp_ckpt(files):
    """A tiny PTQ4SR calibration on the integer grid: PaC runs the int_zero_point network in graph mode."""
    import calibrate
    out = files['root'] / 'intzp'
    assert calibrate.main(['--scale', '2', '--pre_trained', files['ckpt'], '--calib_path', files['calib'],
                           '--output_path', str(out), '--method', 'ptq4sr', '--w_bit', '4', '--a_bit', '4',
                           '--int_zero_point', 'True', '--num_calib_images', '4', '--calib_batches', '2',
                           '--calib_batch_size', '2', '--patch_size', '8', '--pac_iters', '2']) == 0
    return out / 'edsr_baseline_x2_w4a4_ptq4sr_intzp.ckpt'


def test_checkpoint_records_the_option_and_old_checkpoints_read_as_released(intzp_ckpt, tmp_path):
    net, meta = load_quant_checkpoint(str(intzp_ckpt))
    assert meta['int_zero_point'] is True
    assert net.body[0].conv1.input_quant.int_zero_point and net.body[0].conv1.weight_quant.int_zero_point
    assert net.body[0].conv1.int_bias
    # a checkpoint written before the option existed has no key: it is the released quantizer
    raw = ms.load_checkpoint(str(intzp_ckpt))
    old = json.loads(raw.pop(META_KEY))
    del old['int_zero_point']
    entries = [{'name': k, 'data': v} for k, v in raw.items() if isinstance(v, ms.Parameter)]
    path = str(tmp_path / 'old.ckpt')
    ms.save_checkpoint(entries, path, append_dict={META_KEY: json.dumps(old), 'arch': old['arch']})
    net, meta = load_quant_checkpoint(path)
    assert meta['int_zero_point'] is False and not net.body[0].conv1.input_quant.int_zero_point


def test_eval_refuses_a_conflicting_option_and_names_the_result(files, intzp_ckpt, tmp_path, capsys):
    import eval as eval_cli
    from conftest import message_line
    args = ['--scale', '2', '--data_path', files['bench'], '--dataset', 'Tiny', '--quant_ckpt', str(intzp_ckpt),
            '--output_path', str(tmp_path)]
    assert eval_cli.main([*args, '--int_zero_point', 'False']) == 2
    assert '--int_zero_point False conflicts with' in message_line(capsys.readouterr().err)
    assert eval_cli.main(args) == 0
    record = json.loads((tmp_path / 'results_edsr_baseline_x2_ptq4sr_w4a4_intzp.json').read_text())
    assert record['int_zero_point'] is True and 'backend' not in record


def test_integer_bias_is_rounded_to_the_accumulator_step():
    from src.models.arch_util import make_conv
    from src.quant.quant_conv import QuantConv2d
    conv = make_conv(2, 3)
    rng = np.random.default_rng(0)
    conv.weight.set_data(Tensor(rng.uniform(-1, 1, (3, 2, 3, 3)).astype(np.float32)))
    conv.bias.set_data(Tensor(np.float32([0.3, -0.26, 0.01])))
    qconv = QuantConv2d.from_float(conv, 4, 4, int_zero_point=True)
    qconv.input_quant.set_bounds(0.0, 1.5)  # step 0.1
    qconv.weight_quant.set_bounds(np.full(3, -1.0), np.full(3, 2.0))  # step 0.2: accumulator step 0.02
    x = Tensor(np.zeros((1, 2, 4, 4), np.float32))  # the output is the bias alone
    np.testing.assert_allclose(qconv(x).asnumpy()[0, :, 0, 0], [0.3, -0.26, 0.0], atol=1e-6)
    qconv.bias.set_data(Tensor(np.float32([0.311, -0.269, 0.011])))
    np.testing.assert_allclose(qconv(x).asnumpy()[0, :, 0, 0], [0.32, -0.26, 0.02], atol=1e-6)


def test_the_integer_grid_keeps_the_composite_quantizer_and_freezes_to_the_same_numbers():
    """The fused CPU kernel knows the released grid only: an int_zero_point quantizer must not use it, and a frozen
    network (inference: weights and integer bias computed once) gives what the unfrozen one gives."""
    from src.models.build import build_net
    from src.quant.convert import QuantSpec, convert_to_quant
    from src.quant.state import all_quantizers, freeze_for_inference
    net = build_net('edsr_baseline', 2, num_feat=8, num_block=2)
    convert_to_quant(net, QuantSpec(4, 4, int_zero_point=True))
    rng = np.random.default_rng(1)
    for _, quant in all_quantizers(net):
        assert quant.int_zero_point and quant.fused is None
        shape = quant.lower.shape
        quant.set_bounds(rng.uniform(-0.6, -0.05, shape).astype(np.float32),
                         rng.uniform(0.3, 1.2, shape).astype(np.float32))
    net.set_train(False)
    x = Tensor(rng.uniform(0, 1, (1, 3, 9, 11)).astype(np.float32))
    before = net(x).asnumpy()
    freeze_for_inference(net)
    assert net.body[0].conv1.frozen_bias is not None
    np.testing.assert_array_equal(net(x).asnumpy(), before)
    released = FakeQuantizer(4)
    assert released.fused is fused_op()  # the released grid keeps the kernel where it can be built


def fused_op():
    from src.quant.fused import fused_fake_quant
    return fused_fake_quant() if ms.get_context('device_target') == 'CPU' else None
