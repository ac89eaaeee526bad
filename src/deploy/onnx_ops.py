"""What one MindSpore operation becomes in ONNX: ``FloatOps`` for the full-precision network, ``IntegerOps``
for the integer model of a fake-quantized one. ``src/deploy/onnx_net.py`` walks a network through either."""
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from src.quant.integer_grid import integer_grid


def _conv_attrs(cell):
    """ONNX Conv attributes of a pad-mode conv; MindSpore pads are (top, bottom, left, right)."""
    pad = cell.padding
    top, bottom, left, right = (pad,) * 4 if isinstance(pad, int) else pad
    return dict(pads=[top, left, bottom, right], strides=list(cell.stride[-2:]), dilations=list(cell.dilation[-2:]),
                kernel_shape=list(cell.weight.shape[2:]), group=cell.group)


class FloatOps:
    """Full-precision ops; each method mirrors one MindSpore operation and returns the output tensor name."""

    def __init__(self, graph):
        self.graph = graph

    def conv(self, x, name, cell):
        weight = self.graph.const(f'{name}.weight', cell.weight.asnumpy())
        bias = self.graph.const(f'{name}.bias', cell.bias.asnumpy())
        return self.graph.op('Conv', [self.as_float(x), weight, bias], name, **_conv_attrs(cell))

    def relu(self, x, name):
        return self.graph.op('Relu', [self.as_float(x)], name)

    def leaky_relu(self, x, name, alpha):
        return self.graph.op('LeakyRelu', [self.as_float(x)], name, alpha=float(alpha))

    def pixel_shuffle(self, x, name, factor):
        # DepthToSpace CRD reads channel c·r² + i·r + j for output (c, h·r+i, w·r+j): nn.PixelShuffle's order
        return self.graph.op('DepthToSpace', [self.as_float(x)], name, blocksize=int(factor), mode='CRD')

    def bilinear(self, x, name, factor):
        """ops.interpolate(..., 'bilinear', align_corners=False) to ``factor``× the size: half-pixel centres."""
        scales = self.graph.const(f'{name}.scales', np.array([1, 1, factor, factor], np.float32))
        return self.graph.op('Resize', [self.as_float(x), '', scales], name, mode='linear',
                             coordinate_transformation_mode='half_pixel')

    def binary(self, op_type, a, b, name):
        """``a <op> b`` for tensors or float constants (Add, Sub, Mul, Div)."""
        inputs = [self.graph.const(f'{name}.const', np.asarray(v, np.float32)) if isinstance(v, (float, np.ndarray))
                  else self.as_float(v) for v in (a, b)]
        return self.graph.op(op_type, inputs, name)

    def as_float(self, x):
        return x


@dataclass
class _ConvOutput:
    """A quantized conv's float output, kept open until its consumer is known: a quantizer of the next conv
    (then the quantize node follows the conv directly and onnxruntime fuses both into one QLinearConv) or
    float arithmetic. A ReLU and pixel shuffles in between are recorded rather than emitted."""
    layer: str
    tensor: str
    relu: bool = False
    shuffles: tuple = ()
    float_name: Optional[str] = field(default=None)


class IntegerOps(FloatOps):
    """Ops of the integer model: every conv input quantized at its calibrated bounds on the deployed grid
    (``integer_grid``: uint8 activations, int8 per-channel weights, int32 bias), so onnxruntime runs QLinearConv.

    ``requant`` maps a conv to (lower, upper) bounds for its float output: a fused integer conv must write
    integers, so an output that feeds float arithmetic (a residual add, a LeakyReLU, the image) is
    requantized to 8 bits there; convs absent from it keep a float output (a float Conv in onnxruntime).
    ``float_outputs`` maps the convs whose outputs were needed as float to their (unrequantized) tensors.
    """

    def __init__(self, graph, requant=None):
        super().__init__(graph)
        self.requant = requant or {}
        self.float_outputs = {}

    def conv(self, x, name, cell):
        if cell.input_quant is None:
            x_in, x_scale = self.as_float(x), None
        else:
            x_scale, x_zero, levels = self._act_grid(cell.input_quant)
            x_in = self._dequantize(self._quantized(x, x_scale, x_zero, levels, name), x_scale, x_zero, name)
        weight, w_scale = self._weight(name, cell)
        if w_scale is None or x_scale is None:
            bias = self.graph.const(f'{name}.bias', cell.bias.asnumpy())
        else:
            # int32 bias on the accumulator's scale: QLinearConv adds it before requantizing
            b_scale = (x_scale * w_scale).astype(np.float32)
            b_int = np.round(cell.bias.asnumpy().astype(np.float64) / b_scale).astype(np.int32)
            bias = self.graph.op('DequantizeLinear', [self.graph.const(f'{name}.bias_int32', b_int),
                                                      self.graph.const(f'{name}.bias_scale', b_scale),
                                                      self.graph.const(f'{name}.bias_zero', np.zeros_like(b_int))],
                                 f'{name}.bias', axis=0)
        return _ConvOutput(name, self.graph.op('Conv', [x_in, weight, bias], name, **_conv_attrs(cell)))

    def relu(self, x, name):
        if isinstance(x, _ConvOutput):  # ReLU commutes with pixel shuffle
            return _ConvOutput(x.layer, x.tensor, True, x.shuffles)
        return super().relu(x, name)

    def pixel_shuffle(self, x, name, factor):
        if isinstance(x, _ConvOutput):
            return _ConvOutput(x.layer, x.tensor, x.relu, x.shuffles + (factor,))
        return super().pixel_shuffle(x, name, factor)

    def as_float(self, x):
        if not isinstance(x, _ConvOutput):
            return x
        if x.float_name is None:
            self.float_outputs[x.layer] = x.tensor
            y = x.tensor
            if x.layer in self.requant:
                scale, zero = integer_grid(*self.requant[x.layer], 8)
                y = self._dequantize(self._quantize(y, scale, zero, f'{x.layer}.out'), scale, zero, f'{x.layer}.out')
            y = FloatOps.relu(self, y, f'{x.layer}.relu') if x.relu else y
            for factor in x.shuffles:
                y = FloatOps.pixel_shuffle(self, y, f'{x.layer}.shuffle', factor)
            x.float_name = y
        return x.float_name

    # --- quantize / dequantize ------------------------------------------------------------------------
    @staticmethod
    def _act_grid(quant):
        scale, zero = integer_grid(*quant.bounds(), quant.bits)
        return scale, zero, 2 ** quant.bits - 1

    def _quantize(self, x, scale, zero, name):
        scale, zero = self.graph.const(f'{name}.scale', scale), self.graph.const(f'{name}.zero', zero.astype(np.uint8))
        return self.graph.op('QuantizeLinear', [x, scale, zero], f'{name}.q')

    def _dequantize(self, q, scale, zero, name):
        scale, zero = self.graph.const(f'{name}.scale', scale), self.graph.const(f'{name}.zero', zero.astype(np.uint8))
        return self.graph.op('DequantizeLinear', [q, scale, zero], f'{name}.dq')

    def _clip(self, q, low, high, name):
        """Integer clip to the b-bit levels a uint8 tensor carries (and ReLU: levels below the zero point)."""
        if (low, high) == (0, 255):
            return q
        return self.graph.op('Clip', [q, self.graph.const(f'{name}.min', np.uint8(low)),
                                      self.graph.const(f'{name}.max', np.uint8(high))], f'{name}.clip')

    def _quantized(self, x, scale, zero, levels, name):
        """uint8 levels of ``x`` on the grid (scale, zero) of ``name``'s input quantizer."""
        where = f'{name}.in'
        if not isinstance(x, _ConvOutput) or x.float_name is not None:
            return self._clip(self._quantize(self.as_float(x), scale, zero, where), 0, levels, where)
        # clip(q, z, R) after quantizing = ReLU then quantize (ReLU output 0 is level z), so the ReLU folds
        # away; a pixel shuffle only moves values, so it runs after quantizing, on the dequantized levels.
        q = self._clip(self._quantize(x.tensor, scale, zero, where), int(zero) if x.relu else 0, levels, where)
        for factor in x.shuffles:
            shuffled = FloatOps.pixel_shuffle(self, self._dequantize(q, scale, zero, where), f'{where}.shuffle', factor)
            q = self._quantize(shuffled, scale, zero, where)  # exact: the values are on this grid already
        return q

    def _weight(self, name, cell):
        """(weight tensor name, per-channel scale or None): int8 levels and DequantizeLinear(axis=0)."""
        weight = cell.weight.asnumpy()
        if cell.weight_quant is None:
            return self.graph.const(f'{name}.weight', weight), None
        quant = cell.weight_quant
        scale, zero = integer_grid(*quant.bounds(), quant.bits, weight=True)
        scale, zero = scale.reshape(-1), zero.reshape(-1)
        levels = np.round(weight / scale.reshape(-1, 1, 1, 1))
        levels = np.clip(levels, -zero.reshape(-1, 1, 1, 1), 2 ** quant.bits - 1 - zero.reshape(-1, 1, 1, 1))
        tensor = self.graph.op('DequantizeLinear', [self.graph.const(f'{name}.weight_int8', levels.astype(np.int8)),
                                                    self.graph.const(f'{name}.weight_scale', scale),
                                                    self.graph.const(f'{name}.weight_zero',
                                                                     np.zeros(scale.shape, np.int8))],
                               f'{name}.weight', axis=0)
        return tensor, scale
