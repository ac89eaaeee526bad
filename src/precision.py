"""Mixed-precision evaluation (``--amp_level``, the model zoo's key) through MindSpore's AMP, with every
fake quantizer kept in float32."""
from mindspore import amp

from src.inference import PyNativeForward
from src.quant.convert import quant_convs
from src.quant.fake_quant import FakeQuantizer

AMP_LEVELS = ('O0', 'O2', 'O3')

# Measured with MindSpore 2.10: the CPU Conv2D kernel has float32 only; for float16 inputs MindSpore casts
# to float32 and back around it. bfloat16 convolutions fail on CPU.
CPU_NOTE = ('note: --amp_level {level} on CPU is an emulation: MindSpore has no float16 convolution on CPU, so '
            'each conv runs in float32 on float16-rounded tensors and its output is rounded to float16 '
            '(the numerics of float16 storage, slower rather than faster)')


def apply_amp(net, level, device_target='CPU', log=print):
    """What ``evaluate`` scores at ``level`` (a network or a forward): O0 ``net`` unchanged; O2 float16 except MindSpore's AMP black list
    (normalisation layers, which EDSR and MSRResNet do not have) and the fake quantizers; O3 float16 except
    the fake quantizers. The returned network casts its output back to float32.

    Fake quantizers stay in float32 (AMP's cell black list; their output is cast to float16 for the conv):
    computed in float16, ``(x − l)/(u − l)·R`` would round to other levels and ``q·(u − l)/R + l`` be off
    the calibrated grid, silently changing the quantized network being scored.
    """
    if level not in AMP_LEVELS:
        raise ValueError(f'amp level {level!r}: use one of {AMP_LEVELS}')
    if level == 'O0':
        return net
    if device_target == 'CPU':
        log(CPU_NOTE.format(level=level))
    keep_float32 = [FakeQuantizer] + (amp.get_black_list() if level == 'O2' else [])
    mixed = amp.custom_mixed_precision(net, black_list=keep_float32)
    # ms.jit cannot compile a fake-quantized network under AMP (its functional conv's float32 bias meets
    # float16 activations: "For primitive[BiasAdd], the input type must be same"); op by op it runs
    return PyNativeForward(mixed) if quant_convs(net) else mixed
