"""PaC's memory on CPU, estimated before calibration starts, so a setting that cannot fit is refused in one
line (with what would fit) instead of being killed by the kernel after the minutes of DBDC.

The estimate is fitted to the peak RSS of one PaC iteration measured with ``python scripts/benchmark_memory.py
--arch A --scale S --modes pac [--pac_batch_size 1]`` (MindSpore 2.10, CPU, 192/S px LR crops): at batch 2
EDSR-baseline ×4 2.0 GB, ×2 3.8 GB, full EDSR ×4 8.2 GB (full EDSR ×2 passed 15 GB and was stopped); full EDSR
×2 at batch 1 14.9 GB. The fit is within 8 % of each. The differentiated graph keeps every block's activations for
the backward pass, so memory grows with channels × blocks × crop pixels × batch.
"""
import numpy as np

from src.errors import UserError

PROCESS_BYTES = 1.2e9        # interpreter, MindSpore runtime, compiled graphs
BYTES_PER_PARAM = 43         # parameters, their quantized copies and the graphs' constants
BYTES_PER_ACTIVATION = 150   # per (feature channel × block × LR crop pixel × crop in the batch)


def pac_peak_bytes(num_feat, num_block, patch_size, batch, num_params):
    return (PROCESS_BYTES + BYTES_PER_PARAM * num_params
            + BYTES_PER_ACTIVATION * num_feat * num_block * patch_size ** 2 * batch)


def available_bytes():
    """MemAvailable from /proc/meminfo, or None where there is no such file (not Linux)."""
    try:
        with open('/proc/meminfo', encoding='utf-8') as f:
            for line in f:
                if line.startswith('MemAvailable:'):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def check_pac_memory(fp_net, info, patch_size, batch, available=None):
    """Raise UserError when PaC on this CPU process would need more memory than is available."""
    available = available_bytes() if available is None else available
    if available is None:
        return
    num_params = sum(int(np.prod(p.shape)) for p in fp_net.get_parameters())

    def need(b):
        return pac_peak_bytes(info.num_feat, info.num_block, patch_size, b, num_params)
    if need(batch) <= available:
        return
    fits = [b for b in range(batch - 1, 0, -1) if need(b) <= available]
    fix = f'--pac_batch_size {fits[0]} (about {need(fits[0]) / 1e9:.0f} GB) or ' if fits else ''
    raise UserError(f'PaC on {info.arch} ×{info.scale} (batch {batch} of {patch_size}×{patch_size} LR crops) needs about '
                    f'{need(batch) / 1e9:.0f} GB of memory on CPU, {available / 1e9:.0f} GB is available: use {fix}a '
                    f'smaller --patch_size, free memory, or calibrate on a GPU / Ascend device')
