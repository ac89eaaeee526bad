"""Markdown tables of our cached reproduction cells next to the reference run's PSNR (the README's tables).

    python scripts/compare_reference.py --results results --reference ../shared/reference/README.md

The reference README holds tables headed "## EDSR-baseline ×<s>, W<b>A<b> …" with rows
"| <method> | <psnr> / <ssim> | …" for Set5, Set14, B100; its FP rows sit in the W4A4 tables.
Prints one table per (scale, bits) that has quantized cells, and the largest |ours − ref| over shared cells.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from src.reference import comparison, read_reference  # noqa: E402


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
