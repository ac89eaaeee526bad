"""Asymmetric fake quantizer with learnable lower/upper bounds (PTQ4SR's ``Quantization``)."""
import mindspore as ms
import numpy as np
from mindspore import Parameter, Tensor, nn, ops

from src.quant.fused import fused_fake_quant

# Floor of the bound span, so a degenerate quantizer (lower == upper) gives finite outputs and
# gradients; far below any real span, so it never changes a calibrated quantizer.
MIN_SPAN = 1e-8


def grad_scale_for(numel, bits):
    """LSQ gradient scale ``1 / sqrt(N · (2^(b−1) − 1))`` for a quantizer first fed N elements."""
    return 1.0 / np.sqrt(numel * (2.0 ** (bits - 1) - 1))


class FakeQuantizer(nn.Cell):
    """Quantize-dequantize ``x`` on an unsigned grid of ``2^bits`` levels between ``lower`` and ``upper``.

    ``z = clip((x − l)/(u − l), 0, 1)``, ``x̂ = round(z·R)·(u − l)/R + l`` with ``R = 2^b − 1``;
    the zero point is not rounded to an integer. ``round`` is half-to-even with a straight-through
    gradient; ``clip`` has its ordinary gradient, so inside [l, u] ∂x̂/∂u = q/R − z and ∂x̂/∂l = z − q/R,
    above u ∂x̂/∂u = 1, below l ∂x̂/∂l = 1. The bounds' gradients are multiplied by ``grad_scale``
    (their values are not), which calibration fixes from the first tensor seen (LSQ).

    Example (2 bits, l = 0, u = 3): 1.4 → 1.0, 1.6 → 2.0, −5 → 0.0, 9 → 3.0.

    With ``int_zero_point`` (off in the release) the grid is the one an integer kernel runs on
    (``src/quant/integer_grid.py``): ``l`` snapped to ``−z·s`` with an integer zero point ``z`` (``s`` kept),
    and 8-bit weights on int8's [−128, 127]·s. The bounds themselves are stored unchanged.

    Args:
        bits (int): 2..8.
        channels (int): 0 for one per-tensor pair of bounds, else bounds of shape (channels, 1, 1, 1)
            that broadcast over a conv weight (per output channel).
        int_zero_point (bool): quantize on the deployed integer grid.
    """

    def __init__(self, bits, channels=0, int_zero_point=False):
        super().__init__()
        if not 2 <= bits <= 8:
            raise ValueError(f'bits {bits} out of range: use 2..8 (32 means no quantizer)')
        shape = (channels, 1, 1, 1) if channels else ()
        self.bits = bits
        self.levels = float(2 ** bits - 1)
        self.lower = Parameter(Tensor(np.zeros(shape, np.float32)), name='lower')
        self.upper = Parameter(Tensor(np.ones(shape, np.float32)), name='upper')
        self.grad_scale = 1.0
        self.int_zero_point = int_zero_point
        self.int8_weight = int_zero_point and bits == 8 and channels > 0
        self.bypass = False  # True: pass x through unchanged (float weights, or an observed activation)
        self.inference = False  # True: no gradients will be asked for (see QuantConv2d.freeze)
        # the same arithmetic as one CPU kernel where it can be built (src/quant/fused.py), else composite; the
        # kernel knows the released grid only, so the integer grid (int_zero_point) keeps the composite form
        self.fused = (fused_fake_quant() if ms.get_context('device_target') == 'CPU' and not int_zero_point
                      else None)
        self.levels_tensor = Tensor(np.float32(self.levels))

    def construct(self, x):
        if self.bypass:
            return x
        # LSQ gradient scale: value of the bound, gradient × grad_scale (the release's operation order).
        # Written inline: MindSpore 2.10's graph compiler mis-resolved a helper function called here
        # when recompiling for a new input shape late in a run.
        lower_s, upper_s = self.lower * self.grad_scale, self.upper * self.grad_scale
        lower = ops.stop_gradient(self.lower - lower_s) + lower_s
        upper = ops.stop_gradient(self.upper - upper_s) + upper_s
        if self.fused is not None:
            return self.fused(x, lower, upper, self.levels_tensor)
        if self.int_zero_point:
            lower, span = self.integer_grid(lower, upper)
        else:
            span = ops.maximum(upper - lower, MIN_SPAN)
        z = ops.clamp((x - lower) / span, 0.0, 1.0) * self.levels
        # (round(z) − z) + z is round(z) exactly in float32 (Sterbenz), so inference may skip the two terms
        q = ops.round(z) if self.inference else ops.stop_gradient(ops.round(z) - z) + z
        return q * span / self.levels + lower

    def integer_grid(self, lower, upper):
        """(lower, span) of the deployed grid for bounds ``lower``/``upper``: the rule of
        src/quant/integer_grid.py (the exporter's numpy copy; keep the two in step), STE through the rounding."""
        if self.int8_weight:
            step = ops.maximum(ops.maximum(-lower / 128, upper / 127), MIN_SPAN / self.levels)
            return -128 * step, step * self.levels
        span = ops.maximum(upper - lower, MIN_SPAN)
        step = span / self.levels
        zero_point = -lower / step
        zero_point = ops.clamp(ops.stop_gradient(ops.round(zero_point) - zero_point) + zero_point, 0.0, self.levels)
        return -zero_point * step, span

    def step(self):
        """The deployed grid's step (``int_zero_point``), without gradient: what integer kernels scale by."""
        return ops.stop_gradient(self.integer_grid(self.lower, self.upper)[1] / self.levels)

    def set_bounds(self, lower, upper):
        # In place (ops.assign): a graph compiled by ms.jit keeps reading the original Parameter
        # memory, so set_data after compilation would be silently ignored there.
        shape = self.lower.shape
        ops.assign(self.lower, Tensor(np.asarray(lower, np.float32).reshape(shape)))
        ops.assign(self.upper, Tensor(np.asarray(upper, np.float32).reshape(shape)))

    def bounds(self):
        return self.lower.asnumpy(), self.upper.asnumpy()

    def extend_repr(self):
        kind = f'per-channel({self.lower.shape[0]})' if self.lower.shape else 'per-tensor'
        grid = ', integer zero point' if self.int_zero_point else ''
        return f'bits={self.bits}, {kind}{grid}, grad_scale={self.grad_scale:.3g}'

