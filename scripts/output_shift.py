"""How much of a quantized network's error is a brightness offset of its output (src/output_shift.py).

    python scripts/output_shift.py --pre_trained ../shared/models/MSRResNet_x4_f64b16.pth \
        --quant_ckpt output/msrresnet_x4_w4a4_minmax.ckpt --dataset Set5,Set14

Prints per set the mean |offset| of the Y output from the FP network's (0..255 scale), the share of the
squared error to FP that the offset explains, and Y-PSNR as scored, without the offset, and of FP.
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from src.cli import run_cli  # noqa: E402


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--pre_trained', required=True, help='the full-precision checkpoint')
    p.add_argument('--quant_ckpt', required=True, help='a quantized checkpoint written by calibrate.py from it')
    p.add_argument('--data_path', default='../shared/datasets/benchmark')
    p.add_argument('--dataset', default='Set5,Set14')
    p.add_argument('--device_target', default='CPU')
    return p.parse_args(argv)


def run(args):
    from src.evaluate import open_sets
    from src.models.load import load_fp_net
    from src.output_shift import offsets_of_set
    from src.quant.checkpoint import load_quant_checkpoint
    from src.runtime import init_env
    init_env(args.device_target)
    q_net, meta = load_quant_checkpoint(args.quant_ckpt)
    fp_net, _ = load_fp_net(args.pre_trained, meta['arch'], meta['scale'])
    print(f"{meta['arch']} x{meta['scale']} W{meta['w_bit']}A{meta['a_bit']} {meta['method']}")
    print(f"{'set':<8} {'|offset|':>8} {'share':>6} {'PSNR':>7} {'no offset':>9} {'FP':>7}")
    out = {}
    for pairs in open_sets(args.data_path, args.dataset, meta['scale']):
        m = offsets_of_set(q_net, fp_net, pairs, meta['scale'])['mean']
        out[pairs.name] = m
        print(f"{pairs.name:<8} {m['abs_offset']:>8.2f} {m['offset_share']:>6.2f} {m['psnr']:>7.3f} "
              f"{m['psnr_no_offset']:>9.3f} {m['psnr_fp']:>7.3f}")
    print(json.dumps(out))
    return 0


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    return run_cli(lambda: run(args), 'nothing was written')


if __name__ == '__main__':
    sys.exit(main())
