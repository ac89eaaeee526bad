"""Latency of one forward on a fixed input, and the deployment table of scripts/benchmark_deploy.py."""
import time

import numpy as np


def median_ms(forward, x, repeats=7, warmup=2):
    """(median, all) wall-clock milliseconds of ``forward(x)`` over ``repeats`` runs after ``warmup`` runs
    (the first runs pay for graph compilation, weight packing and allocation)."""
    for _ in range(warmup):
        forward(x)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        forward(x)
        times.append((time.perf_counter() - start) * 1000)
    return float(np.median(times)), times


def format_deploy_table(rows, thread_counts, set_names):
    """Markdown: one row per model with its runtime, file size, latency per thread count and PSNR per set."""
    head = ['model', 'runtime', 'file', 'MB'] + [f'ms, {t} thread{"s" * (t > 1)}' for t in thread_counts] + set_names
    lines = ['| ' + ' | '.join(head) + ' |', '|---' * len(head) + '|']
    for row in rows:
        cells = [row['model'], row['runtime'], row.get('file') or '–',
                 f"{row['megabytes']:.2f}" if row.get('megabytes') else '–']
        cells += [f"{row['latency_ms'][str(t)]:.0f}" if str(t) in row.get('latency_ms', {}) else '–'
                  for t in thread_counts]
        cells += [f"{row['psnr'][s]:.3f}" if s in row.get('psnr', {}) else '–' for s in set_names]
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def format_gap_table(gaps, set_names):
    """Markdown: per checkpoint, PSNR of the simulation, of the integer model and their difference, per set."""
    lines = ['| checkpoint | ' + ' | '.join(f'{s} simulation → integer (gap)' for s in set_names) + ' |',
             '|---' * (len(set_names) + 1) + '|']
    for label, simulation, integer in gaps:
        cells = [f'{simulation[s]:.3f} → {integer[s]:.3f} ({integer[s] - simulation[s]:+.3f})' for s in set_names]
        lines.append(f'| {label} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)
