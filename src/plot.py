"""PSNR against bit width, one panel per test set (matplotlib), from reproduce_tables.py's cells.

Input is the ``tables.json`` structure: ``{cell name: {'model': arch, 'scale': s, 'w_bit': b, 'method': m,
'results': {set: {'psnr': p, ...}}}}``. Each quantization method is a line with markers over its bit widths;
full precision (``method == 'fp'``) is a dashed horizontal line, since it has no bit width.
"""
import matplotlib

matplotlib.use('Agg')  # files only: no display on servers and CI

import matplotlib.pyplot as plt  # noqa: E402

from src.files import atomic_path  # noqa: E402
from src.models.build import ARCH_NAMES  # noqa: E402

PANEL_INCHES = (4.2, 3.2)


def chart_data(cells, arch, scale):
    """(set names, bit widths, {method: {set: [(bits, psnr), ...]}}, {set: fp psnr}) of one network and scale.
    Where FP was scored, only its sets get a panel: a set one method alone scored (PTQ4SR+'s validation split)
    has nothing to compare."""
    sets, bits, lines, fp = [], set(), {}, {}
    for cell in cells.values():
        if cell['scale'] != scale or cell.get('model', arch) != arch:
            continue
        for name, result in cell['results'].items():
            if name not in sets:
                sets.append(name)
            if cell['method'] == 'fp':
                fp[name] = result['psnr']
            else:
                lines.setdefault(cell['method'], {}).setdefault(name, []).append((cell['w_bit'], result['psnr']))
                bits.add(cell['w_bit'])
    for per_set in lines.values():
        for points in per_set.values():
            points.sort()
    if fp:
        sets = [name for name in sets if name in fp]
        lines = {m: {name: pts for name, pts in per_set.items() if name in fp} for m, per_set in lines.items()}
    return sets, sorted(bits), lines, fp


def psnr_figure(cells, arch, scale, labels=None):
    """The matplotlib Figure of one network and scale (a panel per test set), or None without data."""
    sets, bits, lines, fp = chart_data(cells, arch, scale)
    if not sets:
        return None
    labels = labels or {}
    # methods in the labels' order, each with the same colour in every panel and every chart
    methods = sorted(lines, key=lambda m: list(labels).index(m) if m in labels else len(labels))
    colors = {m: f'C{(list(labels).index(m) if m in labels else len(labels) + methods.index(m)) % 10}'
              for m in methods}
    fig, axes = plt.subplots(1, len(sets), figsize=(PANEL_INCHES[0] * len(sets), PANEL_INCHES[1]), squeeze=False)
    for ax, name in zip(axes[0], sets):
        if name in fp:
            ax.axhline(fp[name], color='0.3', linestyle='--', linewidth=1.2, label=labels.get('fp', 'FP'))
        for method in methods:
            if name in lines[method]:
                x, y = zip(*lines[method][name])
                ax.plot(x, y, marker='o', linewidth=1.6, color=colors[method], label=labels.get(method, method))
        ax.set_title(f'{name}, ×{scale}')
        ax.set_xlabel('bits (W = A)')
        ax.set_xticks(bits)
        ax.grid(True, color='0.9')
    axes[0][0].set_ylabel('Y-PSNR (dB)')
    handles, names = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, names, loc='lower center', ncol=len(names), frameon=False)
    fig.suptitle(f'{ARCH_NAMES.get(arch, arch)} ×{scale}: PSNR against bit width')
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return fig


def save_psnr_chart(cells, arch, scale, path, labels=None):
    """Write the chart to ``path`` (PNG, atomically); returns False when there is nothing to draw."""
    fig = psnr_figure(cells, arch, scale, labels)
    if fig is None:
        return False
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format='png', dpi=100)
    finally:
        plt.close(fig)
    return True
