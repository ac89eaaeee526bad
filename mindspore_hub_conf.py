"""MindSpore Hub entry: ``create_network(name, **kwargs)`` for EDSR, QuantEDSR and MSRResNet."""
from src.models.build import build_net
from src.quant.convert import RELEASED_INT8_SCOPE, QuantSpec, convert_to_quant


def create_network(name, scale=4, variant='baseline', w_bit=4, a_bit=4,
                   int8_scope=RELEASED_INT8_SCOPE, fp_scope=(), **kwargs):
    """An untrained network (load weights with ``src.checkpoint.load_weights`` or a quantized .ckpt).

    name: 'EDSR' (``variant`` 'baseline' F64 B16 or 'full' F256 B32), 'QuantEDSR' (EDSR converted to fake
    quantization at ``w_bit``/``a_bit``) or 'MSRResNet'. Other keyword arguments override widths.
    """
    if name in ('EDSR', 'QuantEDSR'):
        arch = 'edsr_baseline' if variant == 'baseline' else 'edsr'
    elif name == 'MSRResNet':
        arch = 'msrresnet'
    else:
        raise ValueError(f"unknown network '{name}': use EDSR, QuantEDSR or MSRResNet")
    net = build_net(arch, scale, **kwargs)
    if name == 'QuantEDSR':
        convert_to_quant(net, QuantSpec(w_bit, a_bit, tuple(int8_scope), tuple(fp_scope)))
    return net
