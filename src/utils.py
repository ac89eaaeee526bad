"""Environment set-up, seeding and atomic file writes."""
import contextlib
import json
import os
import random
import tempfile

import numpy as np

from src.errors import UserError

DEVICES = ('Ascend', 'GPU', 'CPU')


def init_env(device_target, device_id=0, threads=None):
    """Select the MindSpore backend; a backend this installation cannot run is an error, not a fallback."""
    import mindspore as ms
    if device_target not in DEVICES:
        raise UserError(f"--device_target {device_target!r} is unknown: use one of {', '.join(DEVICES)}")
    if not ms.hal.is_available(device_target):
        raise UserError(f'--device_target {device_target} is not available in this MindSpore installation '
                        f'(no driver or plugin): install MindSpore for {device_target} or use --device_target CPU')
    ms.set_device(device_target, device_id)
    if device_target == 'CPU':
        # Few-core machines: one dispatch thread and all cores for the kernels measured fastest.
        ms.device_context.cpu.op_tuning.threads_num(threads or os.cpu_count() or 1)
        ms.runtime.dispatch_threads_num(1)


def set_seed(seed):
    import mindspore as ms
    random.seed(seed)
    np.random.seed(seed)
    ms.set_seed(seed)


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary name beside ``path``; rename it onto ``path`` only if the block succeeds.

    An interrupted run therefore leaves the previous file or nothing, never half of a new one.
    """
    folder = os.path.dirname(os.path.abspath(path))
    base, ext = os.path.splitext(os.path.basename(path))
    try:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f'.{base}.', suffix=f'.tmp{ext}', dir=folder)
        os.close(fd)
    except OSError as e:
        raise UserError(f'cannot write to {folder} ({e.strerror}): choose a writable --output_path') from None
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


@contextlib.contextmanager
def atomic_output(path, mode='w'):
    """An open file that becomes ``path`` only when the block succeeds (see ``atomic_path``)."""
    with atomic_path(path) as tmp, open(tmp, mode, encoding=None if 'b' in mode else 'utf-8') as f:
        yield f


def write_json_atomic(path, data):
    with atomic_output(path) as f:
        json.dump(data, f, indent=1)
        f.write('\n')


def package_versions():
    """Versions that decide the numbers, recorded in every results JSON and quantized checkpoint."""
    import sys
    import mindspore as ms
    return {'python': sys.version.split()[0], 'mindspore': ms.__version__, 'numpy': np.__version__}
