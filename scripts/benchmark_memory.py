"""Peak memory and time of inference (whole image or tiled, ``--chop``) and of the calibration stages.

    python scripts/benchmark_memory.py                       # full EDSR (256x32) x2, 1000x700 HR, FP inference
    python scripts/benchmark_memory.py --bits 4 --modes plain,chop,dbdc,pac     # the W4A4 network as well
    python scripts/benchmark_memory.py --arch edsr_baseline --scale 4 --hr_size 480x320

Modes: ``plain`` / ``chop`` super-resolve one random LR image of --hr_size / scale (eval.py's ``NetForward`` +
``super_resolve``); ``dbdc`` times calibration batches of the released size (16 LR crops of 192/scale px,
observers included) after the first; ``pac`` times PaC iterations (batch 2, or --pac_batch_size) after the
first (which compiles); ``adaround`` times one whole learned-rounding pass (every layer below 8 bit, --adaround_iters
steps each, on the default 32 crops of 24 px).
Each mode runs in its own child process, so its peak RSS (``ru_maxrss``) is its own. The network has random
weights and the images are random: memory and time do not depend on either.
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
    p.add_argument('--modes', default='plain,chop', help='comma-separated: plain, chop, dbdc, pac, adaround')
    p.add_argument('--bits', default=0, type=int, help='W=A bits of the quantized network (0: full precision; '
                   'dbdc and pac always quantize, at 4 bits unless given)')
    p.add_argument('--repeats', default=3, type=int, help='timed DBDC batches / PaC iterations after the first')
    p.add_argument('--pac_batch_size', default=2, type=int, help='crops per PaC iteration (released: 2)')
    p.add_argument('--adaround_iters', default=300, type=int, help='learned-rounding steps per layer (adaround mode)')
    p.add_argument('--device_target', default='CPU')
    p.add_argument('--child', default='', help=argparse.SUPPRESS)  # internal: run one mode, print JSON
    return p.parse_args(argv)


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def quantized(args, net):
    """``net`` converted at --bits (4 for the calibration modes) with weight bounds and rough activation
    bounds, enough to run it: neither time nor memory depends on the bound values."""
    from src.calibration.bounds import init_weight_bounds
    from src.quant.convert import QuantSpec, quantized_copy
    from src.quant.state import input_quantizers
    bits = args.bits or 4
    qnet = quantized_copy(net, _info(args), QuantSpec(bits, bits))
    init_weight_bounds(qnet)
    for _, quant in input_quantizers(qnet):
        quant.set_bounds(-100.0, 100.0)
        quant.grad_scale = 1e-4
    return qnet


def _info(args):
    from src.checkpoint import CheckpointInfo
    from src.models.build import ARCHS
    kwargs = ARCHS[args.arch][1]
    return CheckpointInfo(args.arch, args.scale, kwargs['num_feat'], kwargs['num_block'], 'ckpt')


def measure(args, mode):
    import numpy as np

    from src.models.build import build_net
    from src.runtime import init_env

    init_env(args.device_target)
    rng = np.random.default_rng(0)
    net = build_net(args.arch, args.scale)
    net.set_train(False)
    before = peak_rss_mb()
    if mode in ('plain', 'chop'):
        from src.inference import NetForward, super_resolve
        width, height = (int(v) for v in args.hr_size.lower().split('x'))
        lr = rng.integers(0, 256, (height // args.scale, width // args.scale, 3), dtype=np.uint8)
        model = quantized(args, net) if args.bits else net
        start = time.time()
        sr = super_resolve(NetForward(model), lr, args.scale, chop=mode == 'chop', tile=args.chop_tile,
                           overlap=args.chop_overlap)
        return {'mode': mode, 'bits': args.bits, 'lr_shape': list(lr.shape[:2]), 'sr_shape': list(sr.shape[:2]),
                'seconds': round(time.time() - start, 1), 'rss_before_mb': round(before),
                'peak_rss_mb': round(peak_rss_mb())}
    patch = 192 // args.scale
    qnet = quantized(args, net)
    if mode == 'dbdc':
        from src.calibration.bounds import ObserverSettings, observe_act_bounds
        batches = [rng.random((16, 3, patch, patch), dtype=np.float32) for _ in range(args.repeats)]
        observe_act_bounds(qnet, batches[:1], ObserverSettings('dbdc'))  # the first call pays for warm-up
        start = time.time()
        observe_act_bounds(qnet, batches, ObserverSettings('dbdc'))
        per = (time.time() - start) / args.repeats
    elif mode == 'adaround':
        from src.calibration.adaround import AdaRoundSettings, adaround
        settings = AdaRoundSettings(iters=args.adaround_iters)
        patch = settings.patch_size
        batches = [rng.random((settings.patches, 3, patch, patch), dtype=np.float32)]
        start = time.time()
        adaround(qnet, net, batches, settings, log=lambda m: None)
        per = time.time() - start
    else:
        from src.calibration.adam import TorchAdam
        from src.calibration.pac import PacSettings, make_pac_step, pac_iteration
        from src.quant.state import bound_parameters
        act = bound_parameters(qnet, 'act')
        step = make_pac_step(qnet, net, act + bound_parameters(qnet, 'weight'), PacSettings())
        adam = TorchAdam([p.shape for p in act])
        batches = [rng.random((args.pac_batch_size, 3, patch, patch), dtype=np.float32)
                   for _ in range(1 + args.repeats)]
        pac_iteration(step, act, adam, batches[0], 5e-3, slice(0, len(act)))  # compiles
        start = time.time()
        for batch in batches[1:]:
            pac_iteration(step, act, adam, batch, 5e-3, slice(0, len(act)))
        per = (time.time() - start) / args.repeats
    return {'mode': mode, 'bits': args.bits or 4, 'lr_shape': [patch, patch], 'sr_shape': [patch * args.scale] * 2,
            'pac_batch_size': args.pac_batch_size, 'seconds': round(per, 2), 'rss_before_mb': round(before),
            'peak_rss_mb': round(peak_rss_mb())}


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
    print('seconds: the whole image (plain, chop), per calibration batch of 16 (dbdc), per iteration (pac), '
          'the whole pass (adaround)')
    print(f"{'mode':<6} {'bits':>4} {'LR':>10} {'seconds':>8} {'RSS before MB':>14} {'peak RSS MB':>12}")
    for r in rows:
        print(f"{r['mode']:<6} {r['bits'] or 'FP':>4} {'x'.join(map(str, r['lr_shape'][::-1])):>10} {r['seconds']:>8} "
              f"{r['rss_before_mb']:>14} {r['peak_rss_mb']:>12}")
    print(json.dumps(rows))
    return 0


if __name__ == '__main__':
    sys.exit(main())
