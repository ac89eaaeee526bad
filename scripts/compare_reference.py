"""Markdown tables of our cached reproduction cells next to the reference run's PSNR (the README's tables).

    python scripts/compare_reference.py --results results --reference ../shared/reference/README.md

The reference README holds tables headed "## EDSR-baseline ×<s>, W<b>A<b> …" with rows
"| <method> | <psnr> / <ssim> | …" for Set5, Set14, B100; its FP rows sit in the W4A4 tables.
Prints one table per (scale, bits) that has quantized cells, and the largest |ours − ref| over shared cells.
"""
import argparse
import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from scripts.reproduce_tables import LABELS, cell_path  # noqa: E402

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
            if table and row and row.group(1) in LABELS.values():
                values = [v.strip().split(' / ')[0] for v in row.group(2).split('|')]
                ref[(*table, row.group(1))] = [v if re.match(r'^[\d.]+$', v) else '–' for v in values]
    return ref


def comparison(results, ref, scales=(4, 2), bits_list=(4, 6, 8)):
    """(markdown lines, list of |ours − ref| over shared cells; FP counted once per scale)."""
    lines, diffs = [], []
    for scale in scales:
        for bits in bits_list:
            rows = []
            for method, label in LABELS.items():
                path = cell_path(results, scale, bits, method)
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


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--results', default='results')
    p.add_argument('--reference', default='../shared/reference/README.md')
    args = p.parse_args(argv)
    if not os.path.isfile(args.reference):
        print(f'error: reference file {args.reference} does not exist: pass --reference', file=sys.stderr)
        return 2
    lines, diffs = comparison(args.results, read_reference(args.reference))
    print('\n'.join(lines))
    if diffs:
        print(f'largest |ours - ref| over {len(diffs)} shared cells: {max(diffs):.3f} dB')
    return 0


if __name__ == '__main__':
    sys.exit(main())
