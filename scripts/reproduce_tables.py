"""Reproduce the paper-style tables: scales × bit widths × methods × test sets, resumable.

    python scripts/reproduce_tables.py --pre_trained '../shared/models/edsr_baseline_x{scale}.pt' \
        --scales 4,2 --bits 4,6,8 --methods fp,minmax,percentile,dbdc,ptq4sr --out results

Every (network, scale, bits, method) cell is cached as results/cells/<cell>.json the moment it is done,
with the git revision and this command, so an interrupted run resumes where it stopped (PaC, the longest
stage, from its last iteration). MinMax, Percentile and DBDC of one (scale, bits) share one calibration
pass; PTQ4SR continues from the DBDC bounds. Writes results/tables.md, tables.json and
psnr_vs_bits_<arch>_x<scale>.png (PSNR against bit width, one panel per test set) from every cached cell
under --out (other networks' cells included); --tables_only does only that.
"""
import argparse
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from model_utils.config import make_config, parse_assignment  # noqa: E402
from src.checkpoint import read_checkpoint  # noqa: E402
from src.cli import run_cli  # noqa: E402
from src.errors import UserError  # noqa: E402
from src.evaluate import open_sets  # noqa: E402
from src.reproduction import run_group  # noqa: E402
from src.results import METHOD_LABELS, command_line  # noqa: E402
from src.runtime import init_env  # noqa: E402
from src.tables import cell_path, load_cells, write_tables  # noqa: E402


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
    p.add_argument('--methods', default='fp,minmax,percentile,dbdc,ptq4sr', type=_list_of(tuple(METHOD_LABELS)))
    p.add_argument('--out', default='results')
    p.add_argument('--device_target', default='CPU')
    p.add_argument('--set', action='append', default=[], metavar='KEY=VALUE',
                   help='a DIV2K_config.yaml key for every cell, e.g. --set pac_iters=10 (repeatable)')
    p.add_argument('--tables_only', action='store_true',
                   help='only rebuild tables.md, tables.json and the plots from the cached cells')
    p.add_argument('--group', default='', help=argparse.SUPPRESS)  # internal: scale:bits:methods in a child
    return p.parse_args(argv)


def group_config(args, scale, bits, methods):
    """The validated config of one group: the grid's settings plus the --set keys."""
    overrides = dict(parse_assignment(text) for text in args.set)
    overrides.update(scale=scale, pre_trained=args.pre_trained.format(scale=scale), calib_path=args.calib_path,
                     data_path=args.data_path, dataset=args.datasets, device_target=args.device_target)
    if methods != ['fp']:
        overrides.update(w_bit=bits, a_bit=bits, method=methods[-1])
    return make_config(overrides)


def run_group_process(argv, scale, bits, methods):
    """A group in a child process: MindSpore never returns the memory of compiled graphs, so one long
    process evaluating many quantized networks ran out of 24 GB; a child per group does not."""
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
    if args.group:
        scale, bits, methods = args.group.split(':')
        config = group_config(args, int(scale), int(bits), methods.split(','))
        init_env(config.device_target, config.device_id, config.num_threads)
        sets = open_sets(config.data_path, config.dataset, config.scale)
        command = command_line(__file__, argv[:argv.index('--group')])
        return run_group(config, methods.split(','), args.out, sets, command)
    for scale in [] if args.tables_only else args.scales:
        # bad paths and --set values fail here, before any long group starts
        open_sets(args.data_path, args.datasets, scale)
        group_config(args, scale, args.bits[0], ['dbdc'])
        arch = read_checkpoint(args.pre_trained.format(scale=scale))[1].arch
        for bits in args.bits:
            todo = [m for m in args.methods if not os.path.isfile(cell_path(args.out, arch, scale, bits, m))]
            if 'fp' in todo:
                run_group_process(argv, scale, bits, ['fp'])
            # PTQ4SR+ starts from bounds of its own (weights, DBDC p): a calibration pass of its own
            shared = [m for m in todo if m not in ('fp', 'ptq4sr_plus')]
            for group in (shared, [m for m in todo if m == 'ptq4sr_plus']):
                if group:
                    run_group_process(argv, scale, bits, group)
            write_tables(args.out, load_cells(args.out))
    write_tables(args.out, load_cells(args.out))


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    return run_cli(lambda: run_tables(args, argv), 'finished cells are cached; run the same command again to resume')


if __name__ == '__main__':
    sys.exit(main())
