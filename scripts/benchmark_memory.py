"""Peak memory and time of whole-image vs tiled (``--chop``) inference on one large image.

    python scripts/benchmark_memory.py                       # full EDSR (256x32) x2, 1000x700 HR
    python scripts/benchmark_memory.py --arch edsr_baseline --scale 4 --hr_size 480x320

Each mode runs in its own child process, so its peak RSS (``ru_maxrss``) is its own. The network has
random weights and the LR image is random: memory and time do not depend on either. Inference goes
through the same ``NetForward`` + ``super_resolve`` as eval.py.
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--arch', default='edsr', choices=('edsr', 'edsr_baseline', 'msrresnet'))
    p.add_argument('--scale', default=2, type=int, choices=(2, 3, 4))
    p.add_argument('--hr_size', default='1000x700', help='WIDTHxHEIGHT of the HR image (LR = HR / scale)')
    p.add_argument('--chop_tile', default=192, type=int)
    p.add_argument('--chop_overlap', default=16, type=int)
    p.add_argument('--modes', default='plain,chop', help='comma-separated: plain, chop')
    p.add_argument('--device_target', default='CPU')
    p.add_argument('--child', default='', help=argparse.SUPPRESS)  # internal: run one mode, print JSON
    return p.parse_args(argv)


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def measure(args, mode):
    import numpy as np

    from src.models.build import build_net
    from src.inference import NetForward, super_resolve
    from src.runtime import init_env

    init_env(args.device_target)
    width, height = (int(v) for v in args.hr_size.lower().split('x'))
    lr = np.random.default_rng(0).integers(0, 256, (height // args.scale, width // args.scale, 3), dtype=np.uint8)
    net = build_net(args.arch, args.scale)
    net.set_train(False)
    before = peak_rss_mb()
    start = time.time()
    sr = super_resolve(NetForward(net), lr, args.scale, chop=mode == 'chop',
                       tile=args.chop_tile, overlap=args.chop_overlap)
    return {'mode': mode, 'lr_shape': list(lr.shape[:2]), 'sr_shape': list(sr.shape[:2]),
            'seconds': round(time.time() - start, 1), 'rss_before_mb': round(before), 'peak_rss_mb': round(peak_rss_mb())}


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    if args.child:
        print('RESULT ' + json.dumps(measure(args, args.child)), flush=True)
        return 0
    rows = []
    for mode in args.modes.split(','):
        proc = subprocess.run([sys.executable, os.path.abspath(__file__), *argv, '--child', mode],
                              capture_output=True, text=True)
        lines = [l for l in proc.stdout.splitlines() if l.startswith('RESULT ')]
        if proc.returncode != 0 or not lines:
            tail = (proc.stderr.strip().splitlines() or ['no output'])[-1]
            print(f'error: mode {mode} failed (exit {proc.returncode}): {tail}', file=sys.stderr)
            return 1
        rows.append(json.loads(lines[0][len('RESULT '):]))
    print(f'{args.arch} x{args.scale}, HR {args.hr_size}, tile {args.chop_tile}+{args.chop_overlap} ({args.device_target})')
    print(f"{'mode':<6} {'LR':>10} {'seconds':>8} {'RSS before MB':>14} {'peak RSS MB':>12}")
    for r in rows:
        print(f"{r['mode']:<6} {'x'.join(map(str, r['lr_shape'][::-1])):>10} {r['seconds']:>8} "
              f"{r['rss_before_mb']:>14} {r['peak_rss_mb']:>12}")
    print(json.dumps(rows))
    return 0


if __name__ == '__main__':
    sys.exit(main())
