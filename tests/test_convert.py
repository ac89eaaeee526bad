"""Conversion of float nets to fake-quantized ones: bit map, names, shared weights, W32A32 identity, error bound."""
import src  # noqa: F401  (sets ONEDNN_MAX_CPU_ISA before MindSpore's first conv)
import numpy as np
import pytest
from mindspore import Tensor, nn

from src.models.arch_util import make_conv
from src.models.build import build_net
from src.quant.convert import QuantSpec, convert_to_quant, quant_convs
from src.quant.quant_conv import QuantConv2d

EDSR_X4_CONVS = ['conv_first', 'body.0.conv1', 'body.0.conv2', 'body.1.conv1', 'body.1.conv2',
                 'conv_after_body', 'upsample.0', 'upsample.2', 'conv_last']
MSRRESNET_X4_CONVS = ['conv_first', 'body.0.conv1', 'body.0.conv2', 'body.1.conv1', 'body.1.conv2',
                      'upconv1', 'upconv2', 'conv_hr', 'conv_last']


def _tiny(arch, scale=4):
    return build_net(arch, scale, num_feat=8, num_block=2)


def _twin(net, arch, scale=4):
    """A second tiny net holding copies of ``net``'s parameter values."""
    other = _tiny(arch, scale)
    values = {name: p.asnumpy() for name, p in net.parameters_and_names()}
    for name, p in other.parameters_and_names():
        p.set_data(Tensor(values[name]))
    return other


# --- QuantSpec.bits_for -----------------------------------------------------------------------------
@pytest.mark.parametrize('spec, name, bits', [
    (QuantSpec(4, 4), 'conv_first', (8, 8)),
    (QuantSpec(4, 4), 'conv_last', (8, 8)),
    (QuantSpec(4, 4), 'body.3.conv1', (4, 4)),
    (QuantSpec(4, 4), 'upsample.0', (4, 4)),
    (QuantSpec(6, 4), 'conv_hr', (6, 4)),
    (QuantSpec(4, 4, fp_scope=('conv_last',)), 'conv_last', (32, 32)),  # fp wins over int8
    (QuantSpec(4, 4, fp_scope=('body.1.',)), 'body.1.conv2', (32, 32)),
    (QuantSpec(4, 4, fp_scope=('body.1.',)), 'body.11.conv2', (4, 4)),
    (QuantSpec(4, 4, int8_scope=('upsample',)), 'upsample.2', (8, 8)),
    (QuantSpec(4, 4, int8_scope=('upsample',)), 'conv_first', (4, 4)),
    (QuantSpec(32, 4), 'conv_first', (32, 8)),  # a global 32 switches that side off, int8 scope too
    (QuantSpec(32, 4), 'body.0.conv1', (32, 4)),
    (QuantSpec(4, 32), 'conv_last', (8, 32)),
    (QuantSpec(32, 32), 'conv_first', (32, 32)),
])
def test_bits_for(spec, name, bits):
    assert spec.bits_for(name) == bits


# --- convert_to_quant -------------------------------------------------------------------------------
def test_edsr_w4a4_layers_bits_names_and_shared_weights():
    net = _tiny('edsr_baseline')
    floats = {name: cell for name, cell in net.cells_and_names() if isinstance(cell, nn.Conv2d)}
    assert list(floats) == EDSR_X4_CONVS
    assert convert_to_quant(net, QuantSpec(4, 4)) is net
    convs = quant_convs(net)
    assert [name for name, _ in convs] == EDSR_X4_CONVS
    assert not any(isinstance(c, nn.Conv2d) for _, c in net.cells_and_names())
    for name, conv in convs:
        assert isinstance(conv, QuantConv2d)
        expected = (8, 8) if name in ('conv_first', 'conv_last') else (4, 4)
        assert (conv.w_bit, conv.a_bit) == expected
        assert (conv.input_quant.bits, conv.weight_quant.bits) == (expected[1], expected[0])
        assert conv.weight_quant.lower.shape == (floats[name].out_channels, 1, 1, 1)
        assert conv.input_quant.lower.shape == ()
        assert conv.weight is floats[name].weight and conv.bias is floats[name].bias
    names = [p.name for p in net.get_parameters()]
    assert len(names) == len(set(names)) == 9 * 6
    assert names == [name for name, _ in net.parameters_and_names()]  # each name is its full path
    for needed in ('body.1.conv2.input_quant.upper', 'body.1.conv2.weight_quant.lower', 'body.1.conv2.weight',
                   'upsample.2.bias', 'conv_first.input_quant.lower'):
        assert needed in names


def test_converting_twice_or_a_same_padded_conv_is_refused():
    net = convert_to_quant(_tiny('edsr_baseline'), QuantSpec(4, 4))
    with pytest.raises(ValueError, match='no nn.Conv2d'):
        convert_to_quant(net, QuantSpec(4, 4))
    with pytest.raises(ValueError, match="pad_mode='pad'"):
        QuantConv2d.from_float(nn.Conv2d(3, 4, 3, pad_mode='same'), 4, 4)


@pytest.mark.parametrize('arch, convs', [('edsr_baseline', EDSR_X4_CONVS), ('msrresnet', MSRRESNET_X4_CONVS)])
def test_w32a32_output_equals_float_output_exactly(arch, convs):
    fp = _tiny(arch)
    qnet = convert_to_quant(_twin(fp, arch), QuantSpec(32, 32))
    assert [name for name, _ in quant_convs(qnet)] == convs
    assert all(c.input_quant is None and c.weight_quant is None for _, c in quant_convs(qnet))
    x = Tensor(np.random.default_rng(0).uniform(0, 1, (2, 3, 12, 10)).astype(np.float32))
    y_fp, y_q = fp(x).asnumpy(), qnet(x).asnumpy()
    assert y_fp.shape == (2, 3, 48, 40)
    np.testing.assert_array_equal(y_q, y_fp)


def test_msrresnet_x2_w4a4_has_no_upconv2():
    qnet = convert_to_quant(_tiny('msrresnet', 2), QuantSpec(4, 4))
    names = [name for name, _ in quant_convs(qnet)]
    assert names == [n for n in MSRRESNET_X4_CONVS if n != 'upconv2']
    assert [(c.w_bit, c.a_bit) for _, c in quant_convs(qnet)] == [(8, 8)] + [(4, 4)] * 6 + [(8, 8)]


# --- QuantConv2d at 8 bits versus the float conv ----------------------------------------------------
def _fake_quant(x, lower, upper, bits):
    levels = 2 ** bits - 1
    span = upper - lower
    return np.round(np.clip((x - lower) / span, 0, 1) * levels) * span / levels + lower


def _conv_nchw(x, w, b):
    """3×3, stride 1, zero padding 1 cross-correlation in float64."""
    n, _, h, wd = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    out = np.zeros((n, w.shape[0], h, wd))
    for i in range(3):
        for j in range(3):
            out += np.einsum('nchw,oc->nohw', xp[:, :, i:i + h, j:j + wd], w[:, :, i, j])
    return out + b.reshape(1, -1, 1, 1)


def test_quant_conv_8bit_minmax_error_within_step_bound():
    rng = np.random.default_rng(1)
    conv = make_conv(5, 6)
    w = rng.normal(0, 0.2, (6, 5, 3, 3)).astype(np.float32)
    b = rng.normal(0, 0.1, 6).astype(np.float32)
    conv.weight.set_data(Tensor(w))
    conv.bias.set_data(Tensor(b))
    x = rng.normal(0.5, 1.0, (2, 5, 7, 9)).astype(np.float32)
    y_fp = conv(Tensor(x)).asnumpy()

    qconv = QuantConv2d.from_float(conv, 8, 8)
    w_lo, w_hi = w.reshape(6, -1).min(1), w.reshape(6, -1).max(1)
    qconv.weight_quant.set_bounds(w_lo, w_hi)
    qconv.input_quant.set_bounds(x.min(), x.max())
    y_q = qconv(Tensor(x)).asnumpy()

    # per output element: |Σ x̂ŵ − Σ xw| ≤ Σ |x̂ − x||ŵ| + |x||ŵ − w| ≤ (Δa/2)·Σ|ŵ_c| + (Δw_c/2)·Σ|x| over its taps
    step_a = (float(x.max()) - float(x.min())) / 255
    step_w = (w_hi.astype(np.float64) - w_lo) / 255
    w_hat = _fake_quant(w.astype(np.float64), w_lo.reshape(-1, 1, 1, 1), w_hi.reshape(-1, 1, 1, 1), 8)
    taps = np.broadcast_to(step_w.reshape(-1, 1, 1, 1) / 2, w.shape)
    bound = _conv_nchw(np.abs(x).astype(np.float64), taps, step_a / 2 * np.abs(w_hat).reshape(6, -1).sum(1))
    err = np.abs(y_q - y_fp)
    assert np.all(err <= bound + 1e-5)
    assert err.max() > 0 and bound.max() < 0.1 * np.abs(y_fp).max()
    # and exactly: the float conv of the fake-quantized input and weights
    x_hat = _fake_quant(x.astype(np.float64), float(x.min()), float(x.max()), 8)
    np.testing.assert_allclose(y_q, _conv_nchw(x_hat, w_hat, b), rtol=0, atol=2e-5)
