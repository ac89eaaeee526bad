"""Convert EDSR-PyTorch / BasicSR / MindSpore-zoo weights into a MindSpore .ckpt with our parameter names.

    python scripts/convert_checkpoint.py --input edsr_baseline_x2.pt --output edsr_baseline_x2.ckpt

The output holds the weights (checked by loading them into the network they fit) plus metadata entries
``arch``, ``scale``, ``num_feat``, ``num_block``, ``source_format``, ``source_file`` and ``source_sha256``.
Needs no PyTorch. Bad input: one line on stderr and exit status 2.
"""
import argparse
import hashlib
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from src.models.build import ARCHS, SCALES, build_net  # noqa: E402  (needs the repo root on sys.path)
from src.checkpoint import (assign_params, check_compatible, read_checkpoint,  # noqa: E402
                            save_mindspore_checkpoint)
from src.errors import UserError  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--input', required=True, help='.pt/.pth (EDSR-PyTorch or BasicSR) or zoo .ckpt')
    parser.add_argument('--output', required=True, help='MindSpore .ckpt to write (replaced atomically)')
    parser.add_argument('--arch', choices=list(ARCHS), help='expected architecture (checked against the file)')
    parser.add_argument('--scale', type=int, choices=SCALES, help='expected scale (checked against the file)')
    parser.add_argument('--param_key', choices=('params', 'params_ema'),
                        help="BasicSR entry to read (default: 'params' when present)")
    return parser.parse_args(argv)


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def convert_checkpoint(src, dst, arch=None, scale=None, param_key=None):
    """Read ``src``, check it against ``arch``/``scale`` and its network, write ``dst``; returns (info, count)."""
    params, info = read_checkpoint(src, param_key=param_key, arch=arch)
    check_compatible(info, src, arch, scale)
    assign_params(build_net(info.arch, info.scale, **info.overrides), params, os.path.basename(src))
    metadata = {'arch': info.arch, 'scale': info.scale, 'num_feat': info.num_feat, 'num_block': info.num_block,
                'source_format': info.fmt, 'source_file': os.path.basename(src), 'source_sha256': sha256_of(src)}
    save_mindspore_checkpoint(params, dst, metadata)
    return info, sum(v.size for v in params.values())


def main(argv=None):
    args = parse_args(argv)
    try:
        info, count = convert_checkpoint(args.input, args.output, args.arch, args.scale, args.param_key)
    except UserError as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    print(f'{args.input} ({info.fmt}) -> {args.output}: {info.describe()}, {count:,} parameters')
    return 0


if __name__ == '__main__':
    sys.exit(main())
