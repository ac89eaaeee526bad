"""The MindSpore runtime of one process: backend and threads, seeds, and the versions that decide numbers."""
import os
import random
import subprocess
import sys

import numpy as np

from src.distributed import check_launcher, join_world, workers_here
from src.errors import UserError

DEVICES = ('Ascend', 'GPU', 'CPU')
_THREADS_SET = []  # MindSpore refuses to set thread counts twice per process; main() may run again
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cpu_threads(requested=0, workers=1):
    """Kernel threads for ``--num_threads`` (0: this process's share of the cores it may use, when
    ``workers`` processes share them; more threads than cores only make the workers wait on each other)."""
    if requested:
        return requested
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, cores // workers)


def init_env(device_target, device_id=0, num_threads=0, run_distribute=False):
    """Select the MindSpore backend (a backend this installation cannot run is an error, not a fallback)
    and, with ``run_distribute``, join the msrun cluster. Returns the process's ``src.distributed.World``."""
    import mindspore as ms
    check_launcher(run_distribute)
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
    if device_target == 'CPU' and not _THREADS_SET:
        threads = cpu_threads(num_threads, workers_here() if run_distribute else 1)
        # Kernel threads only: MindSpore warns ("total num of thread pool is 3, but the num of cpu core
        # is 2") once dispatch threads are set too and the sum exceeds the cores.
        ms.device_context.cpu.op_tuning.threads_num(threads)
        _THREADS_SET.append(threads)
    return join_world(run_distribute)


def set_seed(seed):
    import mindspore as ms
    random.seed(seed)
    np.random.seed(seed)
    ms.set_seed(seed)


def package_versions():
    """Versions that decide the numbers, recorded in every results JSON and quantized checkpoint."""
    import mindspore as ms
    return {'python': sys.version.split()[0], 'mindspore': ms.__version__, 'numpy': np.__version__}


def git_revision():
    """The repository's commit (with '+dirty' when tracked files differ from it), or 'unknown' outside git."""
    def git(*args):
        return subprocess.run(['git', *args], cwd=REPO, capture_output=True, text=True, timeout=10)
    try:
        head = git('rev-parse', '--short=12', 'HEAD')
        if head.returncode != 0:
            return 'unknown'
        dirty = git('status', '--porcelain', '--untracked-files=no').stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return 'unknown'
    return head.stdout.strip() + ('+dirty' if dirty else '')
