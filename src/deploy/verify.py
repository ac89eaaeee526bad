"""Every export is checked before it appears: written to a temporary file, reloaded, run on one input and
compared with MindSpore. The file is renamed into place only when the check passes, so a failed export
leaves no output file (and an earlier one, if any, unchanged)."""
from dataclasses import dataclass
from typing import Optional

import numpy as np

from src.errors import UserError
from src.files import atomic_path


@dataclass(frozen=True)
class Tolerance:
    """Largest accepted |exported − MindSpore|: per element (absolute), and/or on average as a fraction of
    the range (max − min) of MindSpore's output."""
    max_abs: Optional[float] = None
    mean_of_range: Optional[float] = None


def write_verified(path, write, run_exported, x, reference, tolerance, what):
    """``write(tmp)`` the export, ``run_exported(tmp, x)`` it and compare with ``reference`` (MindSpore's output
    for ``x``); raise UserError (no file at ``path``) when it differs by more than ``tolerance``."""
    with atomic_path(path) as tmp:
        write(tmp)
        diff = np.abs(np.asarray(run_exported(tmp, x), np.float64) - reference)
        if diff.shape != reference.shape:
            raise UserError(f'{what}: the reloaded model returned shape {diff.shape}, MindSpore {reference.shape}')
        worst, mean, span = float(diff.max()), float(diff.mean()), float(reference.max() - reference.min())
        limits = []
        if tolerance.max_abs is not None:
            limits.append((worst > tolerance.max_abs, f'max {tolerance.max_abs:g}'))
        if tolerance.mean_of_range is not None:
            limits.append((mean > tolerance.mean_of_range * span,
                           f'mean {tolerance.mean_of_range:g} of the output range {span:.3g}'))
        failed = any(exceeded for exceeded, _ in limits)
        summary = (f'{what} on a {"×".join(map(str, x.shape))} input: max |diff| {worst:.3g}, mean {mean:.3g} '
                   f'against MindSpore (tolerance {", ".join(text for _, text in limits)})')
        if failed:
            raise UserError(f'verification failed: {summary}: nothing was written; report this with the command')
    print(f'verified {summary}: passed', flush=True)
    return worst, mean
