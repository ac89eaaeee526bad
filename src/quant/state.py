"""Finding a converted network's quantizers, and switching them between quantizing and bypassing."""
import contextlib
from concurrent.futures import ThreadPoolExecutor

from src.quant.convert import quant_convs
from src.quant.fake_quant import grad_scale_for


def input_quantizers(net):
    """[(layer name, FakeQuantizer)] of every quantized conv input."""
    return [(name, conv.input_quant) for name, conv in quant_convs(net) if conv.input_quant is not None]


def weight_quantizers(net):
    """[(layer name, FakeQuantizer, weight Parameter)] of every quantized conv weight."""
    return [(name, conv.weight_quant, conv.weight) for name, conv in quant_convs(net) if conv.weight_quant is not None]


def all_quantizers(net):
    """[('body.0.conv1.input_quant', FakeQuantizer), ('body.0.conv1.weight_quant', …), …]."""
    return ([(f'{name}.input_quant', q) for name, q in input_quantizers(net)]
            + [(f'{name}.weight_quant', q) for name, q, _ in weight_quantizers(net)])


def bound_parameters(net, kind):
    """The lower/upper Parameters of the ``'act'`` or ``'weight'`` quantizers (what PaC trains)."""
    quantizers = ([q for _, q in input_quantizers(net)] if kind == 'act'
                  else [q for _, q, _ in weight_quantizers(net)])
    return [p for q in quantizers for p in (q.lower, q.upper)]


def freeze_for_inference(net):
    """Quantize every weight once and drop the gradient-only terms of the activation quantizers (see
    QuantConv2d.freeze)."""
    for _, conv in quant_convs(net):
        conv.freeze()


def use_composite_quantizers(net):
    """Run every quantizer in its composite form (MindSpore ops only, the same numbers): what an exported graph
    can hold, since the fused CPU kernel is a Custom op bound to a library compiled on this machine."""
    for _, quant in all_quantizers(net):
        quant.fused = None


def set_weight_quant(net, enabled):
    """Fake-quantize the weights (True) or let them bypass their quantizers unchanged (False)."""
    for _, quant, _ in weight_quantizers(net):
        quant.bypass = not enabled


class Observation(dict):
    """{layer name: observer} of an ``observing`` block. Observers are fed in one background thread, in
    call order, while MindSpore computes the next layers (numpy releases the GIL): ``wait()`` returns
    once every activation seen so far has been counted, and re-raises an observer's error."""

    def __init__(self):
        super().__init__()
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix='observer')
        self._pending = []

    def feed(self, observer, x):
        self._pending.append(self._worker.submit(observer.update, x))

    def wait(self):
        pending, self._pending = self._pending, []
        for future in pending:
            future.result()

    def close(self):
        self._worker.shutdown(wait=True, cancel_futures=True)


@contextlib.contextmanager
def observing(net, make_observer):
    """Inside the block every conv input bypasses its quantizer and is fed to an observer of its own.

    Yields an ``Observation`` ({layer name: observer}; call ``wait()`` before reading bounds). Each input
    quantizer's gradient scale is fixed from the first batch it sees. Weights bypass their quantizers too
    until the caller switches them on with ``set_weight_quant``. Forward pre-hooks only run in PyNative
    mode, which calibration uses.
    """
    observation, handles = Observation(), []
    for name, quant in input_quantizers(net):
        observation[name] = make_observer(quant.bits)
        handles.append(quant.register_forward_pre_hook(_recorder(quant, observation[name], observation)))
        quant.bypass = True
    set_weight_quant(net, False)
    try:
        yield observation
        observation.wait()
    finally:
        observation.close()
        for handle in handles:
            handle.remove()
        for _, quant in input_quantizers(net):
            quant.bypass = False
        set_weight_quant(net, True)


def _recorder(quant, observer, observation):
    state = {'first': True}

    def hook(cell, args):
        x = args[0].asnumpy()
        if state['first']:
            quant.grad_scale = grad_scale_for(x.size, quant.bits)
            state['first'] = False
        observation.feed(observer, x)
    return hook
