"""Reproduce the paper-style tables: scales × bit widths × methods × test sets, resumable.

    python scripts/reproduce_tables.py --pre_trained '../shared/models/edsr_baseline_x{scale}.pt' \
        --scales 4,2 --bits 4,6,8 --methods fp,minmax,percentile,dbdc,ptq4sr --out results

Every (scale, bits, method) cell is cached as results/cells/<cell>.json the moment it is done, so an
interrupted run resumes where it stopped (PaC, the longest stage, from its last iteration). MinMax,
Percentile and DBDC of one (scale, bits) share one calibration pass; PTQ4SR continues from the DBDC
bounds. Writes results/tables.md, tables.json and psnr_vs_bits_x<scale>.png (PSNR against bit width,
one panel per test set).
"""
import argparse
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from calibrate import plan_from_config  # noqa: E402
from model_utils.config import get_config  # noqa: E402
from src.errors import UserError  # noqa: E402
from src.evaluate import evaluate, open_sets  # noqa: E402
from src.pipeline import calibrate_methods, load_fp_net  # noqa: E402
from src.plot import save_psnr_chart  # noqa: E402
from src.utils import init_env, package_versions, remove_if_present, run_cli, write_json_atomic  # noqa: E402

LABELS = {'fp': 'FP', 'minmax': 'MinMax', 'percentile': 'Percentile', 'dbdc': 'DBDC', 'ptq4sr': 'DBDC+PaC (PTQ4SR)'}


def _list_of(allowed, cast=str):
    """argparse type: a comma-separated list whose items are all in ``allowed``."""
    def parse(text):
        try:
            items = [cast(t.strip()) for t in text.split(',') if t.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(f'{text!r} is not a comma-separated list of {cast.__name__}') from None
        bad = [i for i in items if i not in allowed]
        if bad or not items:
            raise argparse.ArgumentTypeError(f'{text!r}: choose from {", ".join(map(str, allowed))}')
        return items
    return parse


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--pre_trained', default='../shared/models/edsr_baseline_x{scale}.pt',
                   help='checkpoint path with {scale} in place of the scale')
    p.add_argument('--data_path', default='../shared/datasets/benchmark')
    p.add_argument('--calib_path', default='../shared/datasets/train/BSD200')
    p.add_argument('--datasets', default='Set5,Set14,B100')
    p.add_argument('--scales', default='4,2', type=_list_of((2, 3, 4), int))
    p.add_argument('--bits', default='4,6,8', type=_list_of(tuple(range(2, 9)), int), help='W=A bit widths')
    p.add_argument('--methods', default='fp,minmax,percentile,dbdc,ptq4sr', type=_list_of(tuple(LABELS)))
    p.add_argument('--out', default='results')
    p.add_argument('--device_target', default='CPU')
    p.add_argument('--tables_only', action='store_true',
                   help='only rebuild tables.md, tables.json and the plots from the cached cells')
    p.add_argument('--group', default='', help=argparse.SUPPRESS)  # internal: scale:bits:methods in a child
    p.add_argument('--extra', default='', help='more eval.py/calibrate.py flags for every cell, e.g. "--pac_iters 10"')
    return p.parse_args(argv)


def cell_name(scale, bits, method):
    return f'x{scale}_fp' if method == 'fp' else f'x{scale}_w{bits}a{bits}_{method}'


def cell_path(out, scale, bits, method, suffix='.json'):
    """The cached cell under ``out``; suffix '_pac_state.npz' is PaC's progress for a PTQ4SR cell."""
    return os.path.join(out, 'cells', cell_name(scale, bits, method) + suffix)


def pac_state_path(args, scale, bits):
    return cell_path(args.out, scale, bits, 'ptq4sr', '_pac_state.npz')


def run_group(args, scale, bits, methods, sets):
    """Calibrate and evaluate the missing ``methods`` of one (scale, bits); write each cell as it finishes."""
    flags = ['--scale', str(scale), '--pre_trained', args.pre_trained.format(scale=scale),
             '--calib_path', args.calib_path, '--device_target', args.device_target] + args.extra.split()
    if methods == ['fp']:
        config = get_config(flags)
    else:
        config = get_config(flags + ['--w_bit', str(bits), '--a_bit', str(bits), '--method', methods[-1]])
    fp_net, info = load_fp_net(config.pre_trained, scale=scale)
    if methods == ['fp']:
        nets = {'fp': (fp_net, {'timings': {}})}
    else:
        nets = calibrate_methods(fp_net, info, plan_from_config(config, scale), methods,
                                 pac_resume_file=pac_state_path(args, scale, bits))
    for method, (net, report) in nets.items():
        start = time.time()
        results = evaluate(net, sets, scale, tag=f'{cell_name(scale, bits, method)}')
        report['timings']['eval_seconds'] = round(time.time() - start, 1)
        cell = {'model': info.arch, 'scale': scale, 'w_bit': 32 if method == 'fp' else bits,
                'a_bit': 32 if method == 'fp' else bits, 'method': method, 'results': results,
                'timings': report['timings'], 'seed': config.seed, 'versions': package_versions()}
        if method == 'ptq4sr':
            cell['pac_seed'] = config.pac_seed
        write_json_atomic(cell_path(args.out, scale, bits, method), cell)
        if method == 'ptq4sr':
            remove_if_present(pac_state_path(args, scale, bits))
        print(f"{cell_name(scale, bits, method)}: " + ', '.join(f"{k} {v['psnr']:.3f}" for k, v in results.items()),
              flush=True)


def write_tables(args, scales, bits_list, methods, set_names):
    cells, lines = {}, ['# PTQ4SR-MindSpore reproduction', '',
                        'Y-PSNR (dB) / SSIM; calibration wall-clock seconds per stage on this machine.', '']
    for scale in scales:
        for bits in bits_list:
            rows = []
            for method in methods:
                path = cell_path(args.out, scale, bits, method)
                if os.path.isfile(path):
                    with open(path, encoding='utf-8') as f:
                        cells[cell_name(scale, bits, method)] = cell = json.load(f)
                    rows.append((method, cell))
            if not rows:
                continue
            lines += [f'## EDSR-baseline ×{scale}, W{bits}A{bits}', '',
                      '| method | ' + ' | '.join(set_names) + ' | act bounds s | PaC s |',
                      '|---' * (len(set_names) + 3) + '|']
            for method, cell in rows:
                res, t = cell['results'], cell['timings']
                scores = [f"{res[s]['psnr']:.3f} / {res[s]['ssim']:.4f}" if s in res else '-' for s in set_names]
                lines.append(f'| {LABELS[method]} | ' + ' | '.join(scores) +
                             f" | {t.get('act_bounds_seconds', '-')} | {t.get('pac_seconds', '-')} |")
            lines.append('')
    from src.utils import atomic_output
    with atomic_output(os.path.join(args.out, 'tables.md')) as f:
        f.write('\n'.join(lines))
    write_json_atomic(os.path.join(args.out, 'tables.json'), cells)
    for scale in scales:
        save_psnr_chart(cells, scale, os.path.join(args.out, f'psnr_vs_bits_x{scale}.png'), LABELS)


def run_group_process(argv, scale, bits, methods):
    """``run_group`` in a child process: MindSpore never returns the memory of compiled graphs, so
    one long process evaluating many quantized networks ran out of 24 GB; a child per group does not."""
    group = f"{scale}:{bits}:{','.join(methods)}"
    proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), *argv, '--group', group])
    try:
        code = proc.wait()
    except BaseException:
        proc.terminate()  # SIGTERM, so the child removes its temporary files
        proc.wait()
        raise
    if code in (130, 143):
        raise KeyboardInterrupt
    if code != 0:
        raise UserError(f'cells x{scale} W{bits}A{bits} {group.split(":")[2]} failed (exit {code}): see the message above')


def run_tables(args, argv):
    scales, bits_list, methods = args.scales, args.bits, args.methods
    if args.group:
        scale, bits, group_methods = args.group.split(':')
        init_env(args.device_target)
        sets = open_sets(args.data_path, args.datasets, int(scale))
        return run_group(args, int(scale), int(bits), group_methods.split(','), sets)
    set_names = [s.name for s in open_sets(args.data_path, args.datasets, scales[0])]
    if args.tables_only:
        return write_tables(args, scales, bits_list, methods, set_names)
    for scale in scales:
        for bits in bits_list:
            todo = [m for m in methods if not os.path.isfile(cell_path(args.out, scale, bits, m))]
            if 'fp' in todo:
                run_group_process(argv, scale, bits, ['fp'])
            todo = [m for m in todo if m != 'fp']
            if todo:
                run_group_process(argv, scale, bits, todo)
            write_tables(args, scales, bits_list, methods, set_names)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    return run_cli(lambda: run_tables(args, argv), 'finished cells are cached; run the same command again to resume')


if __name__ == '__main__':
    sys.exit(main())
