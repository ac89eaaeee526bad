"""The integer grid a deployed quantizer runs on: a scale and an integer zero point from (lower, upper).

PTQ4SR's quantizer (``FakeQuantizer``) puts its 2^b levels at ``l + k·(u − l)/R``, so its zero point
``−l/s`` is a real number. Integer kernels (ONNX QuantizeLinear, onnxruntime's QLinearConv) store
``q = round(x/s) + z`` with an integer ``z`` in the storage type's range, so a deployed model runs on this
grid instead (``FakeQuantizer(int_zero_point=True)`` simulates it; ``src/deploy`` exports it):

* activations (uint8 storage): ``s = (u − l)/R`` kept, ``z = clip(round(−l/s), 0, R)``;
* weights below 8 bit (int8 storage, zero point 0): the same rule; ``k − z`` lies in [−R, R] ⊂ int8;
* 8-bit weights: an int8 tensor holds [−128, 127] only and onnxruntime's QLinearConv needs one zero
  point for all output channels, so ``z = 128`` and ``s = max(−l/128, u/127)``, the finest step whose
  grid still covers [l, u] (keeping ``s`` there would clip an asymmetric channel's extreme weights).

Arithmetic is float32 in FakeQuantizer's operation order, so the two agree on every rounding decision.
Example (4 bit, l = −0.8, u = 2.2): s = 0.2, −l/s = 4 → z = 4, grid −0.8 … 2.2 unchanged;
l = −0.75 → s = 0.19667, −l/s = 3.81 → z = 4, grid −0.7867 … 2.1633.
"""
import numpy as np

from src.quant.fake_quant import MIN_SPAN

INT8_WEIGHT_ZERO_POINT = 128


def integer_grid(lower, upper, bits, weight=False):
    """(scale, zero_point) arrays (float32, int64) of the deployed grid for bounds ``lower``/``upper``."""
    lower, upper = np.asarray(lower, np.float32), np.asarray(upper, np.float32)
    levels = np.float32(2 ** bits - 1)
    if weight and bits == 8:
        scale = np.maximum(np.maximum(-lower / np.float32(128), upper / np.float32(127)), np.float32(MIN_SPAN) / levels)
        return scale, np.full(scale.shape, INT8_WEIGHT_ZERO_POINT, np.int64)
    scale = np.maximum(upper - lower, np.float32(MIN_SPAN)) / levels
    return scale, np.clip(np.round(-lower / scale), 0, levels).astype(np.int64)
