"""Switching a converted network between calibration (observe, pass through) and quantization."""
import contextlib

from src.quant.convert import quant_convs
from src.quant.fake_quant import grad_scale_for


def input_quantizers(net):
    """[(layer name, FakeQuantizer)] of every quantized conv input."""
    return [(name, conv.input_quant) for name, conv in quant_convs(net) if conv.input_quant is not None]


def weight_quantizers(net):
    """[(layer name, FakeQuantizer, weight Parameter)] of every quantized conv weight."""
    return [(name, conv.weight_quant, conv.weight) for name, conv in quant_convs(net) if conv.weight_quant is not None]


def bound_parameters(net, kind):
    """The lower/upper Parameters of the ``'act'`` or ``'weight'`` quantizers (what PaC trains)."""
    quantizers = ([q for _, q in input_quantizers(net)] if kind == 'act'
                  else [q for _, q, _ in weight_quantizers(net)])
    return [p for q in quantizers for p in (q.lower, q.upper)]


def set_weight_quant(net, enabled):
    """Fake-quantize the weights (True) or pass them through unchanged (False)."""
    for _, quant, _ in weight_quantizers(net):
        quant.observing = not enabled


@contextlib.contextmanager
def observing(net, make_observer):
    """Inside the block every conv input passes through unquantized and is fed to its own observer.

    Yields {layer name: observer}. Each input quantizer's gradient scale is fixed from the first batch
    it sees. Weights pass through too until the caller switches them on with ``set_weight_quant``.
    Forward pre-hooks only run in PyNative mode, which calibration uses.
    """
    observers, handles = {}, []
    for name, quant in input_quantizers(net):
        observers[name] = make_observer(quant.bits)
        handles.append(quant.register_forward_pre_hook(_recorder(quant, observers[name])))
        quant.observing = True
    set_weight_quant(net, False)
    try:
        yield observers
    finally:
        for handle in handles:
            handle.remove()
        for _, quant in input_quantizers(net):
            quant.observing = False
        set_weight_quant(net, True)


def _recorder(quant, observer):
    state = {'first': True}

    def hook(cell, args):
        x = args[0].asnumpy()
        if state['first']:
            quant.grad_scale = grad_scale_for(x.size, quant.bits)
            state['first'] = False
        observer.update(x)
    return hook
