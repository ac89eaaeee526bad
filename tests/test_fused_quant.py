"""The fused CPU kernel of the fake quantizer against the composite form it replaces: the same forward bit
for bit (random tensors, ties at .5, values on the bounds, per-channel, degenerate spans), the same
gradients to float rounding, and the fall-back when it cannot be built."""
import src  # noqa: F401  (sets ONEDNN_MAX_CPU_ISA before MindSpore's first conv)
import mindspore as ms
import numpy as np
import pytest
from mindspore import Tensor, ops

import src.quant.fused as fused
from src.quant.fake_quant import MIN_SPAN

op = fused.fused_fake_quant()
pytestmark = pytest.mark.skipif(op is None, reason=f'fused kernel unavailable: {fused.fused_unavailable_reason()}')


def composite(x, lower, upper, levels):
    """fake_quant.FakeQuantizer.construct's composite form (without the grad-scale wrapper)."""
    span = ops.maximum(upper - lower, MIN_SPAN)
    z = ops.clamp((x - lower) / span, 0.0, 1.0) * levels
    q = ops.stop_gradient(ops.round(z) - z) + z
    return q * span / levels + lower


def cases():
    rng = np.random.default_rng(0)
    for bits, channels in ((2, 0), (4, 0), (6, 0), (8, 0), (4, 16), (8, 3)):
        shape = (channels, 8, 3, 3) if channels else (2, 8, 17, 13)
        bshape = (channels, 1, 1, 1) if channels else ()
        lower = rng.uniform(-80, -1, bshape).astype(np.float32)
        upper = rng.uniform(1, 90, bshape).astype(np.float32)
        x = (rng.standard_normal(shape) * 60).astype(np.float32)
        flat, lo, hi = x.reshape(len(lower.ravel()), -1), lower.reshape(-1, 1), upper.reshape(-1, 1)
        levels = np.float32(2 ** bits - 1)
        flat[:, 0], flat[:, 1] = lo[:, 0], hi[:, 0]  # exactly on the bounds (clamp's closed interval)
        flat[:, 2] = lo[:, 0] + (hi[:, 0] - lo[:, 0]) * (np.float32(3.5) / levels)  # near a .5 tie
        yield f'{bits}bit-{channels or "tensor"}', x, lower, upper, levels


CASES = list(cases())


@pytest.mark.parametrize('name, x, lower, upper, levels', CASES, ids=[c[0] for c in CASES])
def test_forward_is_bit_identical(name, x, lower, upper, levels):
    args = Tensor(x), Tensor(lower), Tensor(upper)
    np.testing.assert_array_equal(op(*args, Tensor(levels)).asnumpy(), composite(*args, float(levels)).asnumpy())


@pytest.mark.parametrize('name, x, lower, upper, levels', CASES, ids=[c[0] for c in CASES])
def test_gradients_match_automatic_differentiation(name, x, lower, upper, levels):
    dout = Tensor(np.random.default_rng(1).standard_normal(x.shape).astype(np.float32))
    args = Tensor(x), Tensor(lower), Tensor(upper)
    got = ms.grad(lambda x, l, u: (op(x, l, u, Tensor(levels)) * dout).sum(), (0, 1, 2))(*args)
    want = ms.grad(lambda x, l, u: (composite(x, l, u, float(levels)) * dout).sum(), (0, 1, 2))(*args)
    for g, w in zip(got, want):
        g, w = g.asnumpy(), w.asnumpy()
        assert g.shape == w.shape
        np.testing.assert_allclose(g, w, rtol=0, atol=1e-6 * np.abs(w).max())


def test_degenerate_span_gradients_match():
    x = Tensor(np.float32([-3.0, 1.0, 1.0 + 1e-9, 7.0]))
    lower, upper = Tensor(np.float32(1.0)), Tensor(np.float32(1.0))
    got = ms.grad(lambda x, l, u: op(x, l, u, Tensor(np.float32(15))).sum(), (0, 1, 2))(x, lower, upper)
    want = ms.grad(lambda x, l, u: composite(x, l, u, 15.0).sum(), (0, 1, 2))(x, lower, upper)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g.asnumpy(), w.asnumpy(), atol=1e-6)


def test_graph_mode_runs_the_kernel():
    x = Tensor(np.float32([1.4, 1.6, 2.5, 9.0]))

    @ms.jit
    def forward(x, lower, upper):
        return op(x, lower, upper, Tensor(np.float32(3)))
    np.testing.assert_array_equal(forward(x, Tensor(np.float32(0)), Tensor(np.float32(3))).asnumpy(), [1, 2, 2, 3])


def test_unavailable_kernel_falls_back_with_a_reason(monkeypatch, tmp_path):
    monkeypatch.setattr(fused.shutil, 'which', lambda name: None)
    assert fused.build_library() == (None, 'g++ not found')
    monkeypatch.setenv('PTQ4SR_FUSED_QUANT', '0')
    assert fused.fused_fake_quant() is None
    assert 'PTQ4SR_FUSED_QUANT=0' in fused.fused_unavailable_reason()


def test_library_is_built_once_into_the_cache(monkeypatch, tmp_path):
    monkeypatch.setenv('PTQ4SR_CACHE', str(tmp_path))
    path, reason = fused.build_library()
    assert reason is None and path.startswith(str(tmp_path)) and path.endswith('.so')
    stamp = (tmp_path / path.split('/')[-1]).stat().st_mtime_ns
    assert fused.build_library() == (path, None)
    assert (tmp_path / path.split('/')[-1]).stat().st_mtime_ns == stamp
    assert [p.name for p in tmp_path.iterdir()] == [path.split('/')[-1]]  # no temporary file left
