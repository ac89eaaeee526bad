"""Learned weight rounding (src/calibration/adaround.py): known answers on toy layers, and the calibration
pipeline that runs it."""
import itertools

import numpy as np
import pytest
from mindspore import Tensor, nn, ops

from src.calibration.adaround import (AdaRoundSettings, LayerRounding, adaround, inverse_rectified_sigmoid,
                                      rectified_sigmoid, reconstruct_layer)
from src.quant.convert import QuantSpec, quant_convs
from src.quant.quant_conv import QuantConv2d


def toy_layer(seed, c_in=6, c_out=2, kernel=1, w_bit=3, a_bit=32):
    rng = np.random.default_rng(seed)
    conv = nn.Conv2d(c_in, c_out, kernel, pad_mode='pad', padding=kernel // 2, has_bias=True)
    w = rng.normal(size=(c_out, c_in, kernel, kernel)).astype(np.float32)
    conv.weight.set_data(Tensor(w))
    conv.bias.set_data(Tensor(rng.normal(size=c_out).astype(np.float32)))
    layer = QuantConv2d.from_float(conv, w_bit, a_bit)
    layer.weight_quant.set_bounds(w.min(axis=(1, 2, 3)), w.max(axis=(1, 2, 3)))
    return layer, w


def correlated_inputs(seed, n, channels, size):
    """Channels sharing one signal: the rounding errors of a channel's weights add up, so rounding each weight
    to its nearest grid point is not the layer's best rounding."""
    rng = np.random.default_rng(seed)
    common = rng.normal(size=(n, 1, size, size))
    return (common + 0.1 * rng.normal(size=(n, channels, size, size))).astype(np.float32)


def output(layer, x, weight):
    return ops.conv2d(Tensor(x), Tensor(weight), layer.bias, 1, 'pad', layer.padding).asnumpy()


def test_rectified_sigmoid_inverts_and_saturates():
    h = np.array([0.01, 0.25, 0.5, 0.9, 0.99], np.float32)
    np.testing.assert_allclose(rectified_sigmoid(Tensor(inverse_rectified_sigmoid(h))).asnumpy(), h, atol=1e-6)
    np.testing.assert_array_equal(rectified_sigmoid(Tensor(np.array([-20.0, 20.0], np.float32))).asnumpy(), [0, 1])


@pytest.mark.parametrize('seed', [3, 5])
def test_learned_rounding_of_a_toy_layer_reaches_the_brute_force_optimum(seed):
    layer, w = toy_layer(seed)
    x = correlated_inputs(seed, 64, 6, 4)
    y = output(layer, x, w)
    rounding = LayerRounding(layer)

    def error(weight):
        return float(((output(layer, x, weight) - y) ** 2).mean())

    # every up/down choice of the 12 weights (the two output channels are independent, but 4096 is cheap)
    best = min(error(np.clip(rounding.floor + np.array(ups, np.float32).reshape(w.shape), 0, rounding.levels)
                     * rounding.step + rounding.lower) for ups in itertools.product((0, 1), repeat=w.size))
    nearest = error(rounding.nearest_weight())
    assert nearest > 1.3 * best  # the toy is one where nearest rounding is not optimal
    before, after = reconstruct_layer(layer, x, y, AdaRoundSettings(iters=300, batch_size=16))
    assert before == pytest.approx(nearest, rel=1e-5)
    assert after == pytest.approx(best, rel=1e-4)
    learned = layer.weight.asnumpy()
    assert error(learned) == pytest.approx(best, rel=1e-4)
    # the written weight lies on the quantizer's grid: the unchanged quantizer reproduces it
    np.testing.assert_allclose(layer.weight_quant(layer.weight).asnumpy(), learned, atol=1e-6)
    assert np.all(np.abs(learned - w) <= rounding.step + 1e-6)  # one grid step at most: a rounding, not a new weight


def test_layer_reconstruction_lowers_the_output_error_on_inputs_it_never_saw():
    layer, w = toy_layer(7, c_in=8, c_out=4, kernel=3, w_bit=4, a_bit=8)
    layer.input_quant.set_bounds(-3.0, 3.0)
    x_train, x_test = correlated_inputs(1, 32, 8, 8), correlated_inputs(2, 32, 8, 8)

    def quantized(x):
        return layer.input_quant(Tensor(x)).asnumpy()

    def error(x):
        return float(((output(layer, quantized(x), layer.weight.asnumpy()) - output(layer, x, w)) ** 2).mean())

    nearest_weight = LayerRounding(layer).nearest_weight()
    layer.weight.set_data(Tensor(nearest_weight))
    nearest_test = error(x_test)
    layer.weight.set_data(Tensor(w))
    reconstruct_layer(layer, quantized(x_train), output(layer, x_train, w), AdaRoundSettings(iters=200))
    assert error(x_test) < 0.9 * nearest_test


def test_adaround_rounds_the_low_bit_layers_of_a_network_and_keeps_8_bit_ones(files):
    from src.calibration.bounds import ObserverSettings, calibrate_act_bounds, init_weight_bounds
    from src.models.load import load_fp_net
    from src.quant.convert import quantized_copy
    fp, info = load_fp_net(files['ckpt'])
    qnet = quantized_copy(fp, info, QuantSpec(4, 4))
    batches = [np.random.default_rng(0).uniform(0, 1, (8, 3, 12, 12)).astype(np.float32)]
    init_weight_bounds(qnet, 'minmax')
    calibrate_act_bounds(qnet, batches, ObserverSettings('minmax'))
    before = {name: conv.weight.asnumpy().copy() for name, conv in quant_convs(qnet)}
    y_fp = fp(Tensor(batches[0])).asnumpy()

    def net_error():
        return float(((qnet(Tensor(batches[0])).asnumpy() - y_fp) ** 2).mean())

    nearest = net_error()
    report = adaround(qnet, fp, batches, AdaRoundSettings(iters=100, patch_size=12), log=lambda m: None)
    low_bit = [name for name, conv in quant_convs(qnet) if conv.w_bit < 8]
    assert sorted(report) == sorted(low_bit) and all(learned <= near for near, learned in report.values())
    for name, conv in quant_convs(qnet):
        if conv.w_bit == 8:  # conv_first and conv_last (the released bit map)
            np.testing.assert_array_equal(conv.weight.asnumpy(), before[name])
        else:
            np.testing.assert_allclose(conv.weight_quant(conv.weight).asnumpy(), conv.weight.asnumpy(), atol=1e-5)
    assert net_error() < nearest


def test_calibration_runs_it_when_asked_and_reports_it(files):
    from model_utils.config import make_config
    from src.calibration.plan import plan_from_config
    from src.calibration.runner import calibrate
    from src.models.load import load_fp_net
    fp, info = load_fp_net(files['ckpt'])
    settings = {'scale': 2, 'method': 'dbdc', 'w_bit': 4, 'a_bit': 4, 'calib_path': files['calib'],
                'num_calib_images': 4, 'calib_batches': 1, 'calib_batch_size': 2, 'patch_size': 8}
    plain = plan_from_config(make_config(settings), info.arch, 2)
    assert plain.adaround.iters == 0  # off unless asked: the release rounds to nearest
    plan = plan_from_config(make_config({**settings, 'adaround_iters': 5}), info.arch, 2)
    assert plan.adaround.iters == 5
    _, report = calibrate(fp, info, plan, log=lambda m: None)
    assert sorted(report['adaround']) == ['body.0.conv1', 'body.0.conv2', 'body.1.conv1', 'body.1.conv2',
                                          'conv_after_body', 'upsample.0']
    assert report['timings']['adaround_seconds'] > 0


def test_an_interrupted_run_resumes_after_its_last_layer_with_the_same_result(files, tmp_path, monkeypatch):
    import src.calibration.adaround as module
    from src.calibration.bounds import ObserverSettings, calibrate_act_bounds, init_weight_bounds
    from src.models.load import load_fp_net
    from src.quant.convert import quantized_copy
    fp, info = load_fp_net(files['ckpt'])
    batches = [np.random.default_rng(1).uniform(0, 1, (4, 3, 10, 10)).astype(np.float32)]
    settings = AdaRoundSettings(iters=20, patch_size=10)

    def calibrated():
        qnet = quantized_copy(fp, info, QuantSpec(4, 4))
        init_weight_bounds(qnet, 'minmax')
        calibrate_act_bounds(qnet, batches, ObserverSettings('minmax'))
        return qnet

    whole = calibrated()
    expected = adaround(whole, fp, batches, settings, log=lambda m: None)
    state = str(tmp_path / 'run_adaround.npz')
    calls, real = [], module.reconstruct_layer

    def interrupted(*args, **kwargs):
        if len(calls) == 3:
            raise KeyboardInterrupt
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, 'reconstruct_layer', interrupted)
    with pytest.raises(KeyboardInterrupt):
        adaround(calibrated(), fp, batches, settings, log=lambda m: None, resume_file=state)
    monkeypatch.setattr(module, 'reconstruct_layer', real)
    messages = []
    resumed = calibrated()
    assert adaround(resumed, fp, batches, settings, log=messages.append, resume_file=state) == expected
    assert 'after 3 layers' in messages[0]
    for (_, a), (_, b) in zip(quant_convs(whole), quant_convs(resumed)):
        np.testing.assert_array_equal(a.weight.asnumpy(), b.weight.asnumpy())
