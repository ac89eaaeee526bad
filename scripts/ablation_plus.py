"""PTQ4SR+ component by component: each row adds one ingredient of the recipe (src/calibration/plus.py)
to the released PTQ4SR, scored on the validation split and on the test sets. Resumable.

    python scripts/ablation_plus.py --scale 4 --bits 4            # EDSR-baseline ×4 W4A4
    python scripts/ablation_plus.py --tables_only                 # the table from the cached rows

Rows (each one scripts/reproduce_tables.py run into results/ablation/x<s>_w<b>a<b>/<row>/, calibrating once and
scoring every set, so every number is a cached cell with its git revision and command):
  ptq4sr      the release (DBDC p = 1e-4, min/max weights, PaC as released)
  p           + DBDC at the recipe's p
  mse         + per-channel MSE weight bounds (where the recipe uses them: at 4 bits)
  plus        + PaC+ (joint phase, relative learning rates, no LSQ scale, feature loss with gradient,
              as many iterations as the release's two phases together)
  adaround    + learned weight rounding after PaC+ (src/calibration/adaround.py, adaround_iters=300)
The last row the recipe keeps at that width is --method ptq4sr_plus.
The validation split is BSD200 images 101–200 (``BSD200[100:]``): the recipe's values were chosen there.
"""
import argparse
import glob
import json
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from src.calibration.plus import ADAROUND_ITERS, recipe  # noqa: E402

VALIDATION = 'BSD200[100:]'


def rows(bits, scale=4):
    """(row, method, --set values, label) of the ablation at ``bits``; the MSE row only where the recipe uses
    MSE weight bounds (at 6 bits validation kept min/max)."""
    chosen = recipe(bits, scale)
    p = f"dbdc_p={chosen['dbdc_p']}"
    out = [('fp', 'fp', [], 'FP'),
           ('ptq4sr', 'ptq4sr', [], 'PTQ4SR as released'),
           ('p', 'ptq4sr', [p], f"+ DBDC p = {chosen['dbdc_p']:g}")]
    if chosen['weight_bounds'] == 'mse':
        out.append(('mse', 'ptq4sr', [p, 'weight_bounds=mse'], '+ MSE weight bounds'))
    kept = bool(chosen['adaround_iters'])
    return out + [('plus', 'ptq4sr_plus', ['adaround_iters=0'], '+ PaC+' + ('' if kept else ' (= PTQ4SR+)')),
                  ('adaround', 'ptq4sr_plus', [f'adaround_iters={ADAROUND_ITERS}'],
                   '+ learned weight rounding' + (' (= PTQ4SR+)' if kept else ' (not kept)'))]


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--pre_trained', default='../shared/models/edsr_baseline_x{scale}.pt')
    p.add_argument('--scale', default=4, type=int, choices=(2, 3, 4))
    p.add_argument('--bits', default=4, type=int)
    p.add_argument('--shared', default='../shared', help='folder holding datasets/ (benchmark and train/BSD200)')
    p.add_argument('--out', default='results/ablation')
    p.add_argument('--tables_only', action='store_true')
    return p.parse_args(argv)


SETS = (VALIDATION, 'Set5', 'Set14', 'B100')


def row_out(args, row):
    return os.path.join(args.out, f'x{args.scale}_w{args.bits}a{args.bits}', row)


def data_root(args):
    """One folder holding the validation split's set and the test sets (links), so that one calibration
    is scored on all of them."""
    root = os.path.join(args.out, 'data')
    os.makedirs(root, exist_ok=True)
    sources = {'BSD200': os.path.join(args.shared, 'datasets', 'train', 'BSD200')}
    sources.update({name: os.path.join(args.shared, 'datasets', 'benchmark', name) for name in SETS[1:]})
    for name, source in sources.items():
        link = os.path.join(root, name)
        if not os.path.isdir(source):
            raise SystemExit(f'error: {source} does not exist: point --shared at the folder holding datasets/')
        if not os.path.islink(link):
            os.symlink(os.path.abspath(source), link)
    return root


def run_row(args, row, method, sets):
    cmd = [sys.executable, os.path.join(REPO, 'scripts', 'reproduce_tables.py'), '--pre_trained', args.pre_trained,
           '--scales', str(args.scale), '--bits', str(args.bits), '--methods', method, '--data_path', data_root(args),
           '--datasets', ','.join(SETS), '--calib_path', os.path.join(args.shared, 'datasets', 'train', 'BSD200'),
           '--out', row_out(args, row)]
    for value in sets:
        cmd += ['--set', value]
    if subprocess.run(cmd, cwd=REPO).returncode != 0:
        raise SystemExit(f'error: ablation row {row} failed: see the message above')


def row_results(args, row, method):
    """{set: psnr} of the row's cell, from the cache."""
    for path in glob.glob(os.path.join(row_out(args, row), 'cells', f'*_{method}.json')):
        with open(path, encoding='utf-8') as f:
            return {name: r['psnr'] for name, r in json.load(f)['results'].items()}
    return {}


def table(args):
    fp = row_results(args, 'fp', 'fp')
    lines = [f'EDSR x{args.scale} W{args.bits}A{args.bits}: Y-PSNR dB (gap to FP)', '',
             '| recipe | validation (BSD200 101–200) | ' + ' | '.join(SETS[1:]) + ' |', '|---' * (len(SETS) + 1) + '|']
    for row, method, _, label in rows(args.bits, args.scale):
        psnr = row_results(args, row, method)
        cells = [('–' if s not in psnr else f'{psnr[s]:.3f}' if row == 'fp' or s not in fp
                  else f'{psnr[s]:.3f} ({psnr[s] - fp[s]:+.2f})') for s in SETS]
        lines.append(f'| {label} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if not args.tables_only:
        for row, method, sets, _ in rows(args.bits, args.scale):
            run_row(args, row, method, sets)
    print(table(args))
    return 0


if __name__ == '__main__':
    sys.exit(main())
