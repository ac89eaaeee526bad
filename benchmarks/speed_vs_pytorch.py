"""MindSpore (this project) against PyTorch doing the same work, side by side on this machine.

    python benchmarks/speed_vs_pytorch.py                  # every row, 2 threads, median of 5 after warm-up
    python benchmarks/speed_vs_pytorch.py --work pac_act,dbdc --repeats 9 --json speed.json

Rows (EDSR-baseline ×4, the shared weights or the bundled copy of them, real photo crops):
  fp          full-precision forward, 1×3×128×128, through eval.py's inference path
  quant       W4A4 fake-quantized forward, same input, same path (DBDC bounds)
  pac         one PaC iteration, batch 2×3×48×48: teacher forward, quantized forward and backward to every
              bound, Adam step on the activation bounds (the release's loop body)
  dbdc        one DBDC calibration batch, 16×3×48×48 (forward with observers, 2048-bin histograms, peeling)
Each row runs in a child process per framework (so its peak RSS is its own): warm-up first (MindSpore
compiles its graphs there), then the median of --repeats timed runs. The PyTorch side is
benchmarks/torch_reference.py (written from ../shared/SPEC.md); without torch installed
(pip install -r benchmarks/requirements.txt) its column is skipped.
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

WORK = ('fp', 'quant', 'pac', 'dbdc')
SCALE, BITS = 4, 4


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def checkpoint_path():
    shared = os.path.join(os.path.dirname(REPO), 'shared', 'models', 'edsr_baseline_x4.pt')
    return shared if os.path.isfile(shared) else os.path.join(REPO, 'assets', 'edsr_baseline_x4.ckpt')


def inputs():
    """(1×3×128×128 image, 2×3×48×48 PaC batch, 16×3×48×48 DBDC batch) from the scikit-image photos."""
    import numpy as np

    from src.dataset import read_image
    from src.photos import CALIBRATION_PHOTOS, photo_folder
    rng = np.random.RandomState(0)
    photos = [read_image(os.path.join(photo_folder(), name)) for name in CALIBRATION_PHOTOS]

    def crops(count, size):
        out = []
        for i in range(count):
            img = photos[i % len(photos)]
            top, left = rng.randint(0, img.shape[0] - size + 1), rng.randint(0, img.shape[1] - size + 1)
            out.append(img[top:top + size, left:left + size])
        return (np.stack(out).transpose(0, 3, 1, 2) / 255.0).astype(np.float32)
    return crops(1, 128), crops(2, 48), crops(16, 48)


def timed(fn, warmup, repeats):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


# --- MindSpore: the project's own code paths ------------------------------------------------------------
def mindspore_row(work, threads, repeats):
    from src.calibration.adam import TorchAdam
    from src.calibration.bounds import ObserverSettings, apply_act_bounds, init_weight_bounds, observe_act_bounds
    from src.calibration.pac import PacSettings, make_pac_step, pac_iteration
    from src.inference import as_forward
    from src.models.load import load_fp_net
    from src.quant.convert import QuantSpec, quantized_copy
    from src.quant.state import bound_parameters
    from src.runtime import init_env
    init_env('CPU', num_threads=threads)
    image, pac_batch, dbdc_batch = inputs()
    fp, info = load_fp_net(checkpoint_path())
    qnet = quantized_copy(fp, info, QuantSpec(BITS, BITS))
    init_weight_bounds(qnet)
    observer = ObserverSettings('dbdc')
    if work == 'dbdc':
        return _dbdc_times(qnet, dbdc_batch, observer, repeats)
    apply_act_bounds(qnet, observe_act_bounds(qnet, [dbdc_batch[:4]], observer)['dbdc'])
    if work in ('fp', 'quant'):
        forward = as_forward(fp if work == 'fp' else qnet)
        return timed(lambda: forward(image), 2, repeats)
    act = bound_parameters(qnet, 'act')
    step = make_pac_step(qnet, fp, act + bound_parameters(qnet, 'weight'), PacSettings())
    adam = TorchAdam([p.shape for p in act])
    return timed(lambda: pac_iteration(step, act, adam, pac_batch, 5e-3, slice(0, len(act))), 3, repeats)


def _dbdc_times(qnet, batch, observer, repeats):
    """Seconds per DBDC batch after the first (which runs with float weights, as released):
    (time of 3 batches − time of 1 batch) / 2."""
    from src.calibration.bounds import observe_act_bounds
    observe_act_bounds(qnet, [batch] * 2, observer)  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        observe_act_bounds(qnet, [batch], observer)
        one = time.perf_counter() - start
        start = time.perf_counter()
        observe_act_bounds(qnet, [batch] * 3, observer)
        times.append((time.perf_counter() - start - one) / 2)
    return times


# --- PyTorch: benchmarks/torch_reference.py --------------------------------------------------------------
def torch_row(work, threads, repeats):
    import torch

    import benchmarks.torch_reference as ref
    from src.checkpoint import read_checkpoint
    torch.set_num_threads(threads)
    image, pac_batch, dbdc_batch = (torch.from_numpy(a) for a in inputs())
    params, _ = read_checkpoint(checkpoint_path())

    def net():
        n = ref.build_edsr(scale=SCALE)
        ref.load_params(n, params)
        return n.eval()
    fp, qnet = net(), ref.convert_to_quant(net(), BITS, BITS)
    ref.init_weight_bounds(qnet)
    if work == 'dbdc':
        ref.dbdc_batch(qnet, dbdc_batch)  # the first batch runs with float weights, as released
        return timed(lambda: ref.dbdc_batch(qnet, dbdc_batch), 1, repeats)
    ref.dbdc_batch(qnet, dbdc_batch[:4])
    if work in ('fp', 'quant'):
        model = fp if work == 'fp' else qnet

        def forward():
            with torch.no_grad():
                model(image)
        return timed(forward, 2, repeats)
    optimizer = ref.make_act_optimizer(qnet)
    return timed(lambda: ref.pac_step(qnet, fp, pac_batch, optimizer), 3, repeats)


# --- driver ------------------------------------------------------------------------------------------------
def run_child(framework, work, args):
    """One row of one framework in a fresh process: {'times': [...], 'peak_rss_mb': ...} or None."""
    cmd = [sys.executable, os.path.abspath(__file__), '--child', f'{framework}:{work}',
           '--threads', str(args.threads), '--repeats', str(args.repeats)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    lines = [line for line in proc.stdout.splitlines() if line.startswith('RESULT ')]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ['no output'])[-1]
        print(f'error: {framework} {work} failed (exit {proc.returncode}): {tail}', file=sys.stderr)
        return None
    return json.loads(lines[-1][len('RESULT '):])


def torch_available():
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--work', default=','.join(WORK), help=f'comma-separated rows of {", ".join(WORK)}')
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--repeats', type=int, default=5)
    p.add_argument('--json', default='', help='also write the figures here')
    p.add_argument('--child', default='', help=argparse.SUPPRESS)  # internal: framework:work
    args = p.parse_args(argv)
    if args.child:
        framework, work = args.child.split(':')
        times = (mindspore_row if framework == 'mindspore' else torch_row)(work, args.threads, args.repeats)
        print('RESULT ' + json.dumps({'times': times, 'peak_rss_mb': round(peak_rss_mb())}), flush=True)
        return 0
    rows = [w for w in args.work.split(',') if w]
    unknown = [w for w in rows if w not in WORK]
    if unknown:
        print(f"error: unknown row '{unknown[0]}': choose from {', '.join(WORK)}", file=sys.stderr)
        return 2
    with_torch = torch_available()
    if not with_torch:
        print('torch is not installed: the PyTorch column is skipped (pip install -r benchmarks/requirements.txt)')
    results = {}
    for work in rows:
        results[work] = {fw: run_child(fw, work, args) for fw in (['torch'] if with_torch else []) + ['mindspore']}
    print(f'EDSR-baseline x{SCALE}, {args.threads} threads, median of {args.repeats} (seconds; peak RSS MB)')
    print('| work | PyTorch | MindSpore (this project) | ratio MS/PT |')
    print('|---|---|---|---|')
    for work, per in results.items():
        cells = []
        for fw in ('torch', 'mindspore'):
            r = per.get(fw)
            cells.append(f"{statistics.median(r['times']):.3f} s ({r['peak_rss_mb']} MB)" if r else '–')
        ratio = (f"{statistics.median(per['mindspore']['times']) / statistics.median(per['torch']['times']):.2f}×"
                 if per.get('torch') and per.get('mindspore') else '–')
        print(f'| {work} | {cells[0]} | {cells[1]} | {ratio} |')
    if args.json:
        with open(args.json, 'w', encoding='utf-8') as f:
            json.dump({'threads': args.threads, 'repeats': args.repeats, 'rows': results}, f, indent=1)
    return 0 if all(r is not None for per in results.values() for r in per.values()) else 1


if __name__ == '__main__':
    sys.exit(main())
