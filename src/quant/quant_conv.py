"""``QuantConv2d``: a float conv whose input and weight pass through fake quantizers; bias stays float."""
from mindspore import Tensor, nn, ops

from src.quant.fake_quant import FakeQuantizer


class QuantConv2d(nn.Cell):
    """input_quant (per tensor) → weight_quant (per output channel) → conv2d + float bias.

    Built by ``from_float`` around the float conv's own ``weight`` and ``bias`` Parameters, so a
    converted network keeps the float parameter names (``body.0.conv1.weight``) and adds
    ``body.0.conv1.input_quant.lower`` / ``.upper`` and ``body.0.conv1.weight_quant.lower`` / ``.upper``.
    A bit width of 32 means that side is not quantized (its quantizer is None). ``int_zero_point``
    puts both quantizers on the deployed integer grid (see ``FakeQuantizer``) and rounds the bias to the
    accumulator's step (input step × weight step), as an integer conv adds it (an int32, in QLinearConv).
    """

    def __init__(self, conv, w_bit, a_bit, int_zero_point=False):
        super().__init__()
        self.weight, self.bias = conv.weight, conv.bias
        self.stride, self.padding, self.dilation, self.group = conv.stride, conv.padding, conv.dilation, conv.group
        self.pad_mode = conv.pad_mode
        self.w_bit, self.a_bit = w_bit, a_bit
        self.input_quant = FakeQuantizer(a_bit, int_zero_point=int_zero_point) if a_bit < 32 else None
        self.weight_quant = (FakeQuantizer(w_bit, channels=conv.out_channels, int_zero_point=int_zero_point)
                             if w_bit < 32 else None)
        self.int_bias = int_zero_point and w_bit < 32 and a_bit < 32
        self.frozen_weight = None  # set by freeze(): the quantized weight as a constant
        self.frozen_bias = None  # set by freeze() with int_bias: the bias on the accumulator's step

    @classmethod
    def from_float(cls, conv, w_bit, a_bit, int_zero_point=False):
        if conv.pad_mode != 'pad' or conv.group != 1:
            raise ValueError("QuantConv2d expects pad_mode='pad', group=1 convs (see src/arch_util.make_conv)")
        return cls(conv, w_bit, a_bit, int_zero_point)

    def quantized_weight(self):
        if self.frozen_weight is not None:
            return self.frozen_weight
        return self.weight if self.weight_quant is None else self.weight_quant(self.weight)

    def freeze(self):
        """For inference: quantize the weight once (the same values as every forward would compute), and
        let the input quantizer skip the straight-through terms, which only serve gradients. Calibration
        is over once a network is frozen."""
        if self.weight_quant is not None:
            self.frozen_weight = Tensor(self.weight_quant(self.weight).asnumpy())
        if self.int_bias:
            self.frozen_bias = Tensor(self.integer_bias().asnumpy())
        if self.input_quant is not None:
            self.input_quant.inference = True

    def integer_bias(self):
        """The bias rounded to the accumulator's step (input step × weight step), as an integer conv adds it."""
        step = self.input_quant.step() * self.weight_quant.step().reshape((-1,))
        return ops.round(self.bias / step) * step

    def construct(self, x):
        if self.input_quant is not None:
            x = self.input_quant(x)
        bias = self.bias
        if self.frozen_bias is not None:
            bias = self.frozen_bias
        elif self.int_bias:
            bias = self.integer_bias()
        return ops.conv2d(x, self.quantized_weight(), bias, self.stride, self.pad_mode,
                          self.padding, self.dilation, self.group)

    def extend_repr(self):
        return f'w_bit={self.w_bit}, a_bit={self.a_bit}, weight={tuple(self.weight.shape)}'
