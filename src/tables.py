"""The reproduction tables (Markdown and JSON) and plots, from the cached cells of reproduce_tables.py."""
import json
import os

from src.files import atomic_output, write_json_atomic
from src.models.build import ARCH_NAMES
from src.plot import save_psnr_chart
from src.results import METHOD_LABELS

def cell_name(arch, scale, bits, method):
    """e.g. edsr_baseline_x4_w4a4_dbdc, edsr_baseline_x4_fp."""
    return f'{arch}_x{scale}_fp' if method == 'fp' else f'{arch}_x{scale}_w{bits}a{bits}_{method}'


def cell_path(out, arch, scale, bits, method, suffix='.json'):
    """The cached cell under ``out``; suffix '_pac_state.npz' is PaC's progress for a PTQ4SR cell."""
    return os.path.join(out, 'cells', cell_name(arch, scale, bits, method) + suffix)


def load_cells(out):
    """{cell name: cell record} of every cached cell under ``out``."""
    folder = os.path.join(out, 'cells')
    cells = {}
    for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
        if name.endswith('.json'):
            with open(os.path.join(folder, name), encoding='utf-8') as f:
                cells[name[:-len('.json')]] = json.load(f)
    return cells


def _sections(cells):
    """{(arch, scale, bits): [(method, cell)]} in method order, FP heading every bit width of its network."""
    order = list(METHOD_LABELS)
    groups = {}
    for c in cells.values():
        if c['method'] != 'fp':
            groups.setdefault((c['model'], c['scale'], c['w_bit']), []).append((c['method'], c))
    for (arch, scale, _), rows in groups.items():
        rows += [('fp', c) for c in cells.values() if c['method'] == 'fp' and (c['model'], c['scale']) == (arch, scale)]
        rows.sort(key=lambda row: order.index(row[0]) if row[0] in order else len(order))
    return dict(sorted(groups.items(), key=lambda item: (item[0][0], -item[0][1], item[0][2])))


def markdown_tables(cells):
    """Markdown: a table per (network, scale, bits) with PSNR / SSIM, stage seconds (activation bounds, PaC,
    learned weight rounding) and the git revision; then the commands that produced the cells. Columns: every
    test set of the cells, in order of appearance."""
    set_names = list(dict.fromkeys(name for c in cells.values() for name in c['results']))
    lines = ['# PTQ4SR-MindSpore reproduction', '',
             'Y-PSNR (dB) / SSIM; calibration wall-clock seconds per stage; the code revision of each cell.', '']
    for (arch, scale, bits), rows in _sections(cells).items():
        lines += [f'## {ARCH_NAMES.get(arch, arch)} ×{scale}, W{bits}A{bits}', '',
                  '| method | ' + ' | '.join(set_names) + ' | act bounds s | PaC s | rounding s | revision |',
                  '|---' * (len(set_names) + 5) + '|']
        for method, cell in rows:
            res, t = cell['results'], cell['timings']
            scores = [f"{res[s]['psnr']:.3f} / {res[s]['ssim']:.4f}" if s in res else '-' for s in set_names]
            lines.append(f'| {METHOD_LABELS.get(method, method)} | ' + ' | '.join(scores) +
                         f" | {t.get('act_bounds_seconds', '-')} | {t.get('pac_seconds', '-')} |"
                         f" {t.get('adaround_seconds', '-')} |"
                         f" {cell.get('git_revision', 'not recorded')} |")
        lines.append('')
    commands = {}
    for name, cell in sorted(cells.items()):
        commands.setdefault(cell.get('command', 'not recorded'), []).append(name)
    lines += ['## Commands', '']
    for command, names in commands.items():
        lines += [f'`{command}`', '', 'cells: ' + ', '.join(names), '']
    return '\n'.join(lines)


def write_tables(out, cells):
    """tables.md, tables.json and a psnr_vs_bits_<arch>_x<s>.png per network and scale under ``out``."""
    with atomic_output(os.path.join(out, 'tables.md')) as f:
        f.write(markdown_tables(cells))
    write_json_atomic(os.path.join(out, 'tables.json'), cells)
    for arch, scale in sorted({(c['model'], c['scale']) for c in cells.values()}):
        save_psnr_chart(cells, arch, scale, os.path.join(out, f'psnr_vs_bits_{arch}_x{scale}.png'), METHOD_LABELS)
