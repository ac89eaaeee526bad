"""The fake quantizer as one fused CPU kernel (kernels/fake_quant.cc through ``ops.Custom``, "aot").

MindSpore's CPU backend runs the composite quantizer as ~10 elementwise kernels forward and ~30 with
reductions backward; in a PaC step they took about half the time, more than the convolutions. The fused
kernel does one pass each way, with the composite form's float32 arithmetic (bit-identical forward).

The library is compiled on first use with the system's g++ into a cache folder (``PTQ4SR_CACHE``, default
~/.cache/ptq4sr), keyed by the source, the flags and the CPU. Where it cannot be built, or on GPU/Ascend,
the quantizer keeps its composite form, which gives the same numbers.
"""
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile

from mindspore import ops

SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'kernels', 'fake_quant.cc')
# -ffp-contract=off: a fused multiply-add would round differently from the composite form's Mul then Add
FLAGS = ('-std=c++17', '-O3', '-march=native', '-ffp-contract=off', '-shared', '-fPIC')


def _cpu_model():
    try:
        with open('/proc/cpuinfo', encoding='utf-8') as f:
            return next((line for line in f if line.startswith('model name')), '')
    except OSError:
        return platform.processor()


def cache_folder():
    return os.environ.get('PTQ4SR_CACHE') or os.path.join(os.path.expanduser('~'), '.cache', 'ptq4sr')


def build_library():
    """Path of the compiled kernel library (built once per source, flags and CPU), or None with the reason."""
    compiler = shutil.which('g++')
    if compiler is None:
        return None, 'g++ not found'
    with open(SOURCE, 'rb') as f:
        key = hashlib.sha256(f.read() + ' '.join(FLAGS).encode() + _cpu_model().encode()).hexdigest()[:16]
    folder = cache_folder()
    path = os.path.join(folder, f'fake_quant_{key}.so')
    if os.path.isfile(path):
        return path, None
    try:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(suffix='.so', dir=folder)
        os.close(fd)
        result = subprocess.run([compiler, *FLAGS, '-o', tmp, SOURCE], capture_output=True, text=True, timeout=300)
        if result.returncode != 0:
            os.remove(tmp)
            return None, f'g++ failed: {result.stderr.strip()[:200]}'
        os.replace(tmp, path)  # atomic: concurrent builders (distributed workers) never load half a file
    except (OSError, subprocess.SubprocessError) as e:
        return None, f'cannot build in {folder}: {e}'
    return path, None


def fused_fake_quant():
    """``fake_quant(x, lower, upper, levels)`` as a Custom op with its backward, or None where unavailable
    or switched off with PTQ4SR_FUSED_QUANT=0 (the reason: ``fused_unavailable_reason()``)."""
    if os.environ.get('PTQ4SR_FUSED_QUANT', '1') == '0':
        return None
    return _custom_op()[0]


def fused_unavailable_reason():
    if os.environ.get('PTQ4SR_FUSED_QUANT', '1') == '0':
        return 'switched off by PTQ4SR_FUSED_QUANT=0'
    return _custom_op()[1]


@functools.lru_cache(maxsize=None)
def _custom_op():
    """(Custom op, None), or (None, why not); built once per process."""
    path, reason = build_library()
    if path is None:
        return None, reason
    backward = ops.Custom(f'{path}:FakeQuantBackward', out_shape=lambda x, lower, upper, levels, dout: (x, lower, upper),
                          out_dtype=lambda x, lower, upper, levels, dout: (x, lower, upper), func_type='aot')

    def bprop(x, lower, upper, levels, out, dout):
        dx, dlower, dupper = backward(x, lower, upper, levels, dout)
        return dx, dlower, dupper, ops.zeros_like(levels)

    return ops.Custom(f'{path}:FakeQuantForward', out_shape=lambda x, lower, upper, levels: x,
                      out_dtype=lambda x, lower, upper, levels: x, func_type='aot', bprop=bprop), None
