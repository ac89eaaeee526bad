"""Environment set-up, seeding, atomic file writes and termination by signal."""
import contextlib
import json
import os
import random
import signal
import sys
import tempfile
import threading

import numpy as np

from src.errors import UserError

DEVICES = ('Ascend', 'GPU', 'CPU')
_UMASK = os.umask(0)
os.umask(_UMASK)
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
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the usual permissions of a new file
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


def remove_if_present(path):
    if os.path.exists(path):
        os.remove(path)


class Terminated(KeyboardInterrupt):
    """SIGTERM as an exception: it unwinds like Ctrl-C, so ``atomic_path`` removes its temp file."""


@contextlib.contextmanager
def handle_termination():
    """Within the block, SIGTERM raises ``Terminated`` (once; later ones are ignored so cleanup can
    finish). The previous handler is restored on exit. Outside the main thread this does nothing.

    This also covers Ctrl-C: once MindSpore has run a kernel, its own SIGINT handler sends the process
    SIGTERM (checked with 2.10), which by default would kill it before any temp file is removed.
    """
    def raise_terminated(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise Terminated()
    installed = threading.current_thread() is threading.main_thread()  # else signal.signal fails
    previous = signal.signal(signal.SIGTERM, raise_terminated) if installed else None
    try:
        yield
    finally:
        if installed:  # None: the previous handler was not set from Python, i.e. the default
            signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


def print_last_line(text):
    """Print the run's closing message on stderr on a line of its own: when an exception ends a loop,
    its progress bar is still drawn (without a newline); ``tqdm.write`` clears the bars around the write."""
    from tqdm import tqdm
    tqdm.write(text, file=sys.stderr)


def interrupted_exit_code(exc):
    """The shell convention 128 + signal number: 143 after SIGTERM, 130 after a KeyboardInterrupt
    (Ctrl-C before MindSpore's first kernel; afterwards MindSpore turns Ctrl-C into SIGTERM)."""
    return 128 + (signal.SIGTERM if isinstance(exc, Terminated) else signal.SIGINT)


def package_versions():
    """Versions that decide the numbers, recorded in every results JSON and quantized checkpoint."""
    import mindspore as ms
    return {'python': sys.version.split()[0], 'mindspore': ms.__version__, 'numpy': np.__version__}


def run_cli(body, interrupted_note):
    """Run an entry point's ``body()``: a UserError becomes one ``error:`` line and exit code 2, an
    interruption one ``interrupted:`` line and 130 / 143; otherwise 0."""
    try:
        with handle_termination():
            body()
    except UserError as e:
        print_last_line(f'error: {e}')
        return 2
    except KeyboardInterrupt as e:  # Ctrl-C, or SIGTERM as Terminated
        print_last_line(f'interrupted: {interrupted_note}')
        return interrupted_exit_code(e)
    return 0
