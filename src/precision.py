"""Mixed-precision evaluation (``--amp_level``, the model zoo's key) through MindSpore's AMP, with every
fake quantizer kept in float32."""
from mindspore import amp

from src.quant.fake_quant import FakeQuantizer

AMP_LEVELS = ('O0', 'O2', 'O3')

# Measured with MindSpore 2.10: the CPU Conv2D kernel has float32 only; for float16 inputs MindSpore casts
# to float32 and back around it. bfloat16 convolutions fail on CPU.
CPU_NOTE = ('note: --amp_level {level} on CPU is an emulation: MindSpore has no float16 convolution on CPU, so '
            'each conv runs in float32 on float16-rounded tensors and its output is rounded to float16 '
            '(the numerics of float16 storage, slower rather than faster)')


def apply_amp(net, level, device_target='CPU', log=print):
    """``net`` for evaluation at ``level``: O0 unchanged; O2 float16 except MindSpore's AMP black list
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
    return amp.custom_mixed_precision(net, black_list=keep_float32)
