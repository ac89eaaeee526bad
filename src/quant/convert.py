"""Turn a float network into a fake-quantized one: every ``nn.Conv2d`` becomes a ``QuantConv2d``."""
from dataclasses import dataclass

from mindspore import nn

from src.quant.quant_conv import QuantConv2d

# The released W4A4 / W6A6 configs keep the first and last convs at 8 bit (DIV2K_config.yaml's default too).
RELEASED_INT8_SCOPE = ('conv_first', 'conv_last')


@dataclass(frozen=True)
class QuantSpec:
    """Global bit widths plus the released per-layer scopes (layer-name substrings).

    ``fp_scope`` layers stay float; ``int8_scope`` layers get 8-bit weights and activations (the
    released W4A4 / W6A6 configs keep ``conv_first`` and ``conv_last`` there); a global width of 32
    switches that side off everywhere. ``int_zero_point`` (not in the release) quantizes on the integer
    grid a deployed model runs on (``src/quant/integer_grid.py``).
    """
    w_bit: int
    a_bit: int
    int8_scope: tuple = RELEASED_INT8_SCOPE
    fp_scope: tuple = ()
    int_zero_point: bool = False

    def bits_for(self, name):
        """(w_bit, a_bit) of layer ``name``."""
        if any(s in name for s in self.fp_scope):
            return 32, 32
        w_bit, a_bit = (8, 8) if any(s in name for s in self.int8_scope) else (self.w_bit, self.a_bit)
        return (32 if self.w_bit == 32 else w_bit), (32 if self.a_bit == 32 else a_bit)


def convert_to_quant(net, spec):
    """Replace, in place, every ``nn.Conv2d`` of ``net`` by ``QuantConv2d.from_float`` and return ``net``.

    The float weights are shared, not copied. Parameter names are then reset to their full paths
    (``body.0.conv1.input_quant.upper``): MindSpore names a Parameter when its cell is first attached,
    so cells swapped in later would otherwise carry short, clashing names.
    """
    targets = [(name, cell) for name, cell in net.cells_and_names() if isinstance(cell, nn.Conv2d)]
    if not targets:
        raise ValueError('network has no nn.Conv2d to quantize (already converted?)')
    for name, conv in targets:
        parent_name, _, attr = name.rpartition('.')
        parent = net if not parent_name else dict(net.cells_and_names())[parent_name]
        quant = QuantConv2d.from_float(conv, *spec.bits_for(name), spec.int_zero_point)
        if isinstance(parent, nn.SequentialCell):
            parent[int(attr)] = quant
        else:
            setattr(parent, attr, quant)
    for name, param in net.parameters_and_names():
        param.name = name
    return net


def quantized_copy(fp_net, info, spec):
    """A fake-quantized copy of ``fp_net`` (described by CheckpointInfo ``info``); ``fp_net`` is unchanged."""
    from src.models.load import copy_net  # loading checkpoints needs the quantizer-free models only
    return convert_to_quant(copy_net(fp_net, info), spec)


def quant_convs(net):
    """[(name, QuantConv2d)] in network order."""
    return [(name, cell) for name, cell in net.cells_and_names() if isinstance(cell, QuantConv2d)]
