"""FakeQuantizer against hand-computed values: forward grid, per-channel bounds, STE gradients, grad scale —
each test for both forms of the quantizer: the fused CPU kernel and the composite of MindSpore ops."""
import src  # noqa: F401  (sets ONEDNN_MAX_CPU_ISA before MindSpore's first conv)
import mindspore as ms
import numpy as np
import pytest
from mindspore import Tensor

import src.quant.fake_quant
from src.quant.fake_quant import FakeQuantizer, grad_scale_for
from src.quant.fused import fused_fake_quant, fused_unavailable_reason


@pytest.fixture(autouse=True, params=['fused', 'composite'])
def implementation(request, monkeypatch):
    """Every quantizer built in a test uses this form (the fused kernel is the CPU default)."""
    if request.param == 'composite':
        monkeypatch.setattr(src.quant.fake_quant, 'fused_fake_quant', lambda: None)
    elif fused_fake_quant() is None:
        pytest.skip(f'fused kernel unavailable: {fused_unavailable_reason()}')
    return request.param


def _quantizer(bits, lower, upper, channels=0):
    q = FakeQuantizer(bits, channels=channels)
    q.set_bounds(lower, upper)
    return q


def _run(q, x):
    return q(Tensor(np.asarray(x, np.float32))).asnumpy()


def _reference(x, lower, upper, bits):
    """The SPEC §3 formula in float32, in the same operation order (np.round is half-to-even)."""
    levels = np.float32(2 ** bits - 1)
    span = np.float32(upper) - np.float32(lower)
    z = np.clip((x - np.float32(lower)) / span, 0, 1) * levels
    return np.round(z) * span / levels + np.float32(lower)


# --- forward ----------------------------------------------------------------------------------------
def test_two_bits_hand_values_round_half_to_even():
    q = _quantizer(2, 0.0, 3.0)  # grid 0, 1, 2, 3
    out = _run(q, [1.4, 1.6, 2.5, 0.5, 1.5, -5.0, 9.0, 3.0, 0.0])
    np.testing.assert_array_equal(out, [1, 2, 2, 0, 2, 0, 3, 3, 0])


def test_four_bits_asymmetric_hand_values():
    # l = −1.5, u = 2.5, R = 15, step 4/15: z·R = (x + 1.5)·15/4
    q = _quantizer(4, -1.5, 2.5)
    x = [0.0, 1.0, -1.4, 2.4, -0.7, 0.5, 3.0, -2.0]
    # z·R = 5.625 → 6; 9.375 → 9; 0.375 → 0; 14.625 → 15; 3 → 3; 7.5 → 8 (half to even); clipped; clipped
    expected = [6 * 4 / 15 - 1.5, 9 * 4 / 15 - 1.5, -1.5, 2.5, -0.7, 8 * 4 / 15 - 1.5, 2.5, -1.5]
    np.testing.assert_allclose(_run(q, x), expected, rtol=0, atol=2e-7)


@pytest.mark.parametrize('bits', [2, 3, 4, 6, 8])
def test_outputs_on_grid_within_bounds_and_nearest(bits):
    rng = np.random.default_rng(bits)
    levels = 2 ** bits - 1
    for _ in range(5):
        lower = np.float32(rng.uniform(-10, 5))
        upper = np.float32(lower + rng.uniform(0.01, 20))
        x = rng.uniform(lower - 5, upper + 5, size=2000).astype(np.float32)
        out = _run(_quantizer(bits, lower, upper), x)
        step = (float(upper) - float(lower)) / levels
        k = (out - float(lower)) / step
        tol = 1e-5 * max(abs(lower), abs(upper))
        np.testing.assert_allclose(k, np.round(k), rtol=0, atol=1e-3)
        assert np.all((np.round(k) >= 0) & (np.round(k) <= levels))
        assert out.min() >= lower - tol and out.max() <= upper + tol
        # the nearest grid point to the clipped input
        assert np.all(np.abs(out - np.clip(x, lower, upper)) <= step / 2 + tol)
        np.testing.assert_allclose(out, _reference(x, lower, upper, bits), rtol=0, atol=tol)


def test_per_channel_bounds_quantize_each_channel_with_its_own():
    rng = np.random.default_rng(0)
    lower = np.array([-1.0, -0.2, 0.0, -3.0], np.float32)
    upper = np.array([1.0, 0.6, 0.5, 0.25], np.float32)
    w = rng.normal(0, 1, size=(4, 3, 3, 3)).astype(np.float32)
    q = _quantizer(3, lower, upper, channels=4)
    assert q.lower.shape == (4, 1, 1, 1)
    out = _run(q, w)
    for c in range(4):
        np.testing.assert_allclose(out[c], _reference(w[c], lower[c], upper[c], 3), rtol=0, atol=1e-6)
        assert len(np.unique(out[c])) <= 8 and out[c].min() >= lower[c] - 1e-6 and out[c].max() <= upper[c] + 1e-6


def test_bypass_passes_input_through():
    q = _quantizer(2, 0.0, 3.0)
    q.bypass = True
    np.testing.assert_array_equal(_run(q, [1.4, -5.0, 9.0]), np.float32([1.4, -5.0, 9.0]))


def test_graph_mode_forward_reads_bounds_at_call_time():
    # MindSpore 2.10 graphs ignore Parameter.set_data after compiling; set_bounds must write in place.
    q = _quantizer(2, 0.0, 3.0)
    forward = ms.jit(q.construct)
    x = Tensor(np.float32([1.4, 1.6, 2.5, 9.0]))
    np.testing.assert_array_equal(forward(x).asnumpy(), [1, 2, 2, 3])
    q.set_bounds(0.0, 6.0)  # grid 0, 2, 4, 6
    np.testing.assert_array_equal(forward(x).asnumpy(), [2, 2, 2, 6])


@pytest.mark.parametrize('bits', [1, 9, 32])
def test_bits_out_of_range(bits):
    with pytest.raises(ValueError, match='2..8'):
        FakeQuantizer(bits)


# --- backward ---------------------------------------------------------------------------------------
def _grads(q, x, mode):
    """(x̂, ∂Σx̂/∂x, ∂Σx̂/∂lower, ∂Σx̂/∂upper) in PyNative or graph mode (a fresh ms.jit each call)."""
    def fn(x):
        return q(x).sum(), q(x)
    grad_fn = ms.value_and_grad(fn, grad_position=0, weights=[q.lower, q.upper], has_aux=True)
    if mode == 'graph':
        grad_fn = ms.jit(grad_fn)
    (_, out), (gx, (gl, gu)) = grad_fn(Tensor(np.asarray(x, np.float32)))
    return out.asnumpy(), gx.asnumpy(), gl.asnumpy(), gu.asnumpy()


# l = −1.5, u = 2.5, 4 bits: (x, ∂x̂/∂x, ∂x̂/∂l, ∂x̂/∂u), with z and q = round(z·R) worked out by hand
CASES = [
    (1.0, 1.0, 0.025, -0.025),   # z = 0.625, q = 9: q/R − z = 0.6 − 0.625
    (0.0, 1.0, -0.025, 0.025),   # z = 0.375, q = 6: 0.4 − 0.375
    (-1.0, 1.0, -0.0083333, 0.0083333),  # z = 0.125, q = 2: 2/15 − 0.125
    (3.0, 0.0, 0.0, 1.0),        # above u
    (-2.0, 0.0, 1.0, 0.0),       # below l
]


@pytest.mark.parametrize('mode', ['pynative', 'graph'])
@pytest.mark.parametrize('x, dx, dl, du', CASES)
def test_ste_gradients_per_element(mode, x, dx, dl, du):
    out, gx, gl, gu = _grads(_quantizer(4, -1.5, 2.5), [x], mode)
    np.testing.assert_allclose(out, _reference(np.float32([x]), -1.5, 2.5, 4), atol=2e-7)
    np.testing.assert_allclose(gx, [dx], atol=1e-6)
    np.testing.assert_allclose([gl, gu], [dl, du], atol=1e-6)


@pytest.mark.parametrize('mode', ['pynative', 'graph'])
def test_grad_scale_scales_bound_gradients_only(mode):
    x = [c[0] for c in CASES]
    dl, du = sum(c[2] for c in CASES), sum(c[3] for c in CASES)
    q = _quantizer(4, -1.5, 2.5)
    out1, gx1, gl1, gu1 = _grads(q, x, mode)
    np.testing.assert_allclose([gl1, gu1], [dl, du], atol=2e-6)
    q.grad_scale = 0.25
    out2, gx2, gl2, gu2 = _grads(q, x, mode)
    np.testing.assert_array_equal(out2, out1)
    np.testing.assert_array_equal(gx2, gx1)
    np.testing.assert_allclose([gl2, gu2], [0.25 * dl, 0.25 * du], atol=1e-6)
    np.testing.assert_array_equal(q.lower.asnumpy(), np.float32(-1.5))  # the value is not scaled


def test_per_channel_bound_gradients_sum_over_their_channel():
    # channel 0: l = 0, u = 3, 2 bits (z·R = x); channel 1: l = −1, u = 1 (z·R = 1.5(x + 1))
    x = np.array([[1.4, 5.0, -1.0], [0.5, -2.0, 0.2]], np.float32).reshape(2, 1, 1, 3)
    q = _quantizer(2, [0.0, -1.0], [3.0, 1.0], channels=2)
    out, gx, gl, gu = _grads(q, x, 'pynative')
    np.testing.assert_allclose(out.ravel(), [1, 3, 0, 1 / 3, -1, 1 / 3], atol=1e-6)
    np.testing.assert_array_equal(gx.ravel(), [1, 0, 0, 1, 0, 1])
    # ch 0: x=1.4: z=1.4/3, q=1 → ∂u = 1/3 − 1.4/3 = −0.4/3; x=5 above: ∂u = 1; x=−1 below: ∂l = 1
    # ch 1: x=0.5: z=0.75, q=2 → ∂u = 2/3 − 0.75; x=−2 below: ∂l = 1; x=0.2: z=0.6, q=2 → ∂u = 2/3 − 0.6
    du = [-0.4 / 3 + 1, (2 / 3 - 0.75) + (2 / 3 - 0.6)]
    dl = [0.4 / 3 + 1, 1 - (2 / 3 - 0.75) - (2 / 3 - 0.6)]
    np.testing.assert_allclose(gu.ravel(), du, atol=1e-6)
    np.testing.assert_allclose(gl.ravel(), dl, atol=1e-6)


@pytest.mark.parametrize('lower, upper', [(1.0, 1.0), (2.0, 1.0), (0.0, 0.0)])
def test_degenerate_bounds_stay_finite(lower, upper):
    x = [-3.0, 0.0, 1.0, 1.5, 2.0, 7.0]
    out, gx, gl, gu = _grads(_quantizer(4, lower, upper), x, 'pynative')
    for a in (out, gx, gl, gu):
        assert np.all(np.isfinite(a))
    if lower == upper:  # a single grid point: everything maps to it
        np.testing.assert_allclose(out, lower, atol=1e-6)


# --- LSQ gradient scale -----------------------------------------------------------------------------
@pytest.mark.parametrize('numel, bits, expected', [
    (4, 2, 0.5),                                  # 1/sqrt(4·1)
    (8, 3, 1 / np.sqrt(24)),                      # 1/sqrt(8·3)
    (16 * 64 * 48 * 48, 4, 1 / (1536 * np.sqrt(7))),  # N = 1536², 2^3 − 1 = 7
    (576, 8, 1 / (24 * np.sqrt(127))),
])
def test_grad_scale_for_known_values(numel, bits, expected):
    assert grad_scale_for(numel, bits) == pytest.approx(expected, rel=1e-12)
