"""Deployment benchmark: latency, file size and PSNR of MindSpore FP, onnxruntime FP32 and onnxruntime int8.

    python scripts/benchmark_deploy.py --pre_trained ../shared/models/edsr_baseline_x4.pt \
        --quant_ckpts output/edsr_baseline_x4_w8a8_dbdc.ckpt,output/edsr_baseline_x4_w4a4_dbdc.ckpt \
        --out output/deploy_bench

Exports the FP network (MINDIR and ONNX) and each quantized checkpoint's integer ONNX model into --out with
export.py's code (verified as export.py does), then measures
* latency: the median of --repeats forwards of one fixed 1×3×S×S input after 2 warm-up runs, MindSpore FP in
  graph mode and every ONNX model in onnxruntime, at each --threads count, each in a process of its own;
* PSNR on --dataset of every model and, in a second table, of each checkpoint's fake-quant simulation
  (MindSpore) beside its integer model: the gap between the two.
Prints Markdown tables and writes <out>/benchmark_deploy.json. Latency depends on what else the machine runs:
the load average before and after the timings is recorded beside them.
"""
import argparse
import json
import os
import platform
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from model_utils.config import make_config, parse_assignment  # noqa: E402
from src.cli import run_cli  # noqa: E402
from src.deploy.benchmark import format_deploy_table, format_gap_table, median_ms  # noqa: E402
from src.errors import UserError  # noqa: E402
from src.files import write_json_atomic  # noqa: E402
from src.results import command_line, run_info_from_meta  # noqa: E402


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--pre_trained', default='../shared/models/edsr_baseline_x4.pt')
    p.add_argument('--quant_ckpts', default='', help='comma-separated quantized checkpoints (calibrate.py)')
    p.add_argument('--out', default='output/deploy_bench', help='folder for the exported models and the JSON')
    p.add_argument('--data_path', default='../shared/datasets/benchmark')
    p.add_argument('--dataset', default='Set5,Set14,B100')
    p.add_argument('--calib_path', default='../shared/datasets/train/BSD200',
                   help='calibration images: the integer export measures its requantization bounds on them')
    p.add_argument('--size', default=128, type=int, help='LR side of the fixed latency input')
    p.add_argument('--repeats', default=7, type=int)
    p.add_argument('--threads', default='1,2', help='comma-separated thread counts')
    p.add_argument('--set', action='append', default=[], metavar='KEY=VALUE',
                   help='a DIV2K_config.yaml key for every export, e.g. --set calib_batches=4 (repeatable)')
    p.add_argument('--simulation', default='True', choices=('True', 'False'),
                   help='also score each checkpoint\'s fake-quant simulation (minutes per checkpoint)')
    p.add_argument('--child', nargs=2, metavar=('MODEL', 'THREADS'), help=argparse.SUPPRESS)  # one latency
    p.add_argument('--child_simulation', metavar='CKPT', help=argparse.SUPPRESS)  # one simulation's PSNR
    return p.parse_args(argv)


def child_latency(model, threads, size, repeats):
    """Median ms of one exported model at ``threads``: .onnx in onnxruntime, .mindir in MindSpore (a graph)."""
    import numpy as np
    x = np.random.RandomState(0).rand(1, 3, size, size).astype(np.float32)
    if model.endswith('.onnx'):
        from src.deploy.ort_forward import OrtForward
        forward = OrtForward(model, threads)
    else:
        import mindspore as ms
        from mindspore import Tensor
        from src.runtime import init_env
        init_env('CPU', 0, threads)
        graph = ms.nn.GraphCell(ms.load(model))

        def forward(array):
            return graph(Tensor(array)).asnumpy()
    median, times = median_ms(forward, x, repeats)
    return {'median_ms': round(median, 1), 'times_ms': [round(t, 1) for t in times]}


def _child_result(cmd, what):
    proc = subprocess.run(cmd, capture_output=True, text=True)
    lines = [line for line in proc.stdout.splitlines() if line.startswith('RESULT ')]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ['no output'])[-1]
        raise UserError(f'{what} failed (exit {proc.returncode}): {tail}')
    return json.loads(lines[0][len('RESULT '):])


def measure_latency(args, model, threads):
    cmd = [sys.executable, os.path.abspath(__file__), '--size', str(args.size), '--repeats', str(args.repeats),
           '--child', model, str(threads)]
    return _child_result(cmd, f'latency of {model} at {threads} threads')


def child_simulation(ckpt, data_path, dataset):
    """{set: PSNR} of a checkpoint's fake-quant simulation (eval.py's inference path)."""
    from src.evaluate import open_sets
    from src.quant.checkpoint import load_quant_checkpoint
    from src.runtime import init_env
    init_env('CPU', 0, 0)
    qnet, meta = load_quant_checkpoint(ckpt)
    return score(qnet, open_sets(data_path, dataset, meta['scale']), meta['scale'])


def measure_simulation(args, ckpt):
    """In a process of its own: MindSpore keeps every compiled graph until the process ends, and one
    process scoring several fake-quantized networks on B100 ran out of memory (12 GB) here."""
    cmd = [sys.executable, os.path.abspath(__file__), '--data_path', args.data_path, '--dataset', args.dataset,
           '--child_simulation', ckpt]
    return _child_result(cmd, f'the simulation of {ckpt}')


def export_models(args, info):
    """{key: path} of the exported FP MINDIR / ONNX and each checkpoint's integer ONNX."""
    from src.export_task import run_export
    base = {'scale': info.scale, 'output_path': args.out, 'calib_path': args.calib_path,
            **dict(parse_assignment(text) for text in args.set)}
    fp_name = os.path.join(args.out, f'{info.arch}_x{info.scale}_fp')
    paths = {fmt: run_export(make_config({**base, 'pre_trained': args.pre_trained, 'file_format': fmt.upper(),
                                          'file_name': fp_name}))
             for fmt in ('mindir', 'onnx')}
    for ckpt in filter(None, args.quant_ckpts.split(',')):
        name = os.path.splitext(os.path.basename(ckpt))[0]
        paths[ckpt] = run_export(make_config({**base, 'quant_ckpt': ckpt, 'file_format': 'ONNX',
                                              'file_name': os.path.join(args.out, name)}))
    return paths


def score(net, sets, scale):
    from src.evaluate import evaluate
    return {name: result['psnr'] for name, result in evaluate(net, sets, scale).items()}


def benchmark(args, argv):
    from src.deploy.ort_forward import OrtForward
    from src.evaluate import open_sets
    from src.models.load import load_fp_net
    from src.quant.checkpoint import load_quant_checkpoint
    from src.runtime import cpu_threads
    threads = [int(t) for t in args.threads.split(',')]
    os.makedirs(args.out, exist_ok=True)
    fp_net, info = load_fp_net(args.pre_trained)
    sets = open_sets(args.data_path, args.dataset, info.scale)
    paths = export_models(args, info)
    models = [('FP', 'MindSpore (graph)', paths['mindir']), ('FP', 'onnxruntime FP32', paths['onnx'])]
    quant = {}
    for ckpt in filter(None, args.quant_ckpts.split(',')):
        quant[ckpt] = load_quant_checkpoint(ckpt)
        models.append((run_info_from_meta(quant[ckpt][1]).label(), 'onnxruntime int8', paths[ckpt]))
    load_before = os.getloadavg()
    rows = [{'model': label, 'runtime': runtime, 'file': os.path.basename(path),
             'megabytes': round(os.path.getsize(path) / 1e6, 2),
             'latency': {str(t): measure_latency(args, path, t) for t in threads}}
            for label, runtime, path in models]
    load_after = os.getloadavg()
    for row in rows:
        row['latency_ms'] = {t: v['median_ms'] for t, v in row['latency'].items()}
    rows[0]['psnr'] = score(fp_net, sets, info.scale)
    for row, (_, _, path) in zip(rows[1:], models[1:]):
        row['psnr'] = score(OrtForward(path, cpu_threads(0)), sets, info.scale)
    names = [s.name for s in sets]
    table = format_deploy_table(rows, threads, names)
    simulation = {}
    if args.simulation == 'True':
        simulation = {row['model']: measure_simulation(args, ckpt) for row, ckpt in zip(rows[2:], quant)}
        table += '\n\n' + format_gap_table([(row['model'], simulation[row['model']], row['psnr'])
                                             for row in rows[2:]], names)
    record = {'rows': rows, 'simulation_psnr': simulation, 'threads': threads,
              'input': [1, 3, args.size, args.size], 'repeats': args.repeats,
              'load_average_before': load_before, 'load_average_after': load_after,
              'machine': {'cpus': os.cpu_count(), 'processor': platform.processor() or platform.machine()},
              'table': table, 'command': command_line(__file__, argv)}
    path = os.path.join(args.out, 'benchmark_deploy.json')
    write_json_atomic(path, record)
    print(table)
    print(f'load average {load_before[0]:.1f} before and {load_after[0]:.1f} after the timings; written {path}')


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    if args.child:
        print('RESULT ' + json.dumps(child_latency(args.child[0], int(args.child[1]), args.size, args.repeats)),
              flush=True)
        return 0
    if args.child_simulation:
        print('RESULT ' + json.dumps(child_simulation(args.child_simulation, args.data_path, args.dataset)), flush=True)
        return 0
    return run_cli(lambda: benchmark(args, argv), 'the benchmark JSON was not written')


if __name__ == '__main__':
    sys.exit(main())
