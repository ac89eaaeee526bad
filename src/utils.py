"""Environment set-up, seeding and atomic file writes."""
import contextlib
import json
import os
import random
import tempfile

import numpy as np

from src.errors import UserError

DEVICES = ('Ascend', 'GPU', 'CPU')
_CPU_THREADS_SET = []  # MindSpore refuses to set thread counts twice per process; main() may run again


def init_env(device_target, device_id=0, threads=None):
    """Select the MindSpore backend; a backend this installation cannot run is an error, not a fallback."""
    import mindspore as ms
    if device_target not in DEVICES:
        raise UserError(f"--device_target {device_target!r} is unknown: use one of {', '.join(DEVICES)}")
    if not ms.hal.is_available(device_target):
        raise UserError(f'--device_target {device_target} is not available in this MindSpore installation '
                        f'(no driver or plugin): install MindSpore for {device_target} or use --device_target CPU')
    current = ms.get_context('device_target')
    try:
        ms.set_device(device_target, device_id)
    except RuntimeError:
        # MindSpore fixes the device at its first kernel; main() run again in one process (a notebook, the
        # tests) then finds it set, which is fine when it is the device asked for.
        if current != device_target:
            raise UserError(f'MindSpore already runs on {current} in this process: '
                            f'start a new process for --device_target {device_target}') from None
    if device_target == 'CPU' and not _CPU_THREADS_SET:
        # Few-core machines: one dispatch thread and all cores for the kernels measured fastest.
        ms.device_context.cpu.op_tuning.threads_num(threads or os.cpu_count() or 1)
        ms.runtime.dispatch_threads_num(1)
        _CPU_THREADS_SET.append(threads or os.cpu_count() or 1)


def set_seed(seed):
    import mindspore as ms
    random.seed(seed)
    np.random.seed(seed)
    ms.set_seed(seed)


def prepare_output_folder(path, flag='--output_path'):
    """Create ``path`` and check that files can be written there, before any long computation starts."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise UserError(f'{flag} {path} is a file, not a folder: choose a folder')
    try:
        os.makedirs(path, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as e:
        raise UserError(f'cannot write to {flag} {path} ({e.strerror}): choose a writable folder') from None


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
