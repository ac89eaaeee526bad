"""The authors' reference run (../shared/reference/README.md) beside our cached cells: the README's tables."""
import json
import os
import re

from src.results import METHOD_LABELS
from src.tables import cell_path

ARCH = 'edsr_baseline'  # the reference run quantized EDSR-baseline only
SETS = ('Set5', 'Set14', 'B100')


def read_reference(path):
    """{(scale, bits, label): [psnr text per set]} from the reference README ('–' where not run)."""
    table, ref = None, {}
    with open(path, encoding='utf-8') as f:
        for line in f:
            head = re.match(r'## EDSR-baseline ×(\d), W(\d)A', line)
            if head:
                table = int(head.group(1)), int(head.group(2))
                continue
            row = re.match(r'\| ([^|]+?) \| (.*)\|\s*$', line)
            if table and row and row.group(1) in METHOD_LABELS.values():
                values = [v.strip().split(' / ')[0] for v in row.group(2).split('|')]
                ref[(*table, row.group(1))] = [v if re.match(r'^[\d.]+$', v) else '–' for v in values]
    return ref


def comparison(results, ref, scales=(4, 2), bits_list=(4, 6, 8)):
    """(markdown lines, list of |ours − ref| over shared cells; FP counted once per scale)."""
    lines, diffs = [], []
    for scale in scales:
        for bits in bits_list:
            rows = []
            for method, label in METHOD_LABELS.items():
                path = cell_path(results, ARCH, scale, bits, method)
                if not os.path.isfile(path):
                    continue
                with open(path, encoding='utf-8') as f:
                    ours = json.load(f)['results']
                theirs = ref.get((scale, 4 if method == 'fp' else bits, label), ['–'] * len(SETS))
                cells = []
                for name, value in zip(SETS, theirs):
                    cells += [f"{ours[name]['psnr']:.3f}", value]
                    if value != '–' and (method != 'fp' or bits == bits_list[0]):
                        diffs.append(abs(ours[name]['psnr'] - float(value)))
                rows.append(f'| {label} | ' + ' | '.join(cells) + ' |')
            if any(not r.startswith('| FP ') for r in rows):
                lines += [f'**×{scale}, W{bits}A{bits}**', '',
                          '| method | ' + ' | '.join(f'{s} ours | {s} ref' for s in SETS) + ' |',
                          '|---' * (2 * len(SETS) + 1) + '|', *rows, '']
    return lines, diffs
