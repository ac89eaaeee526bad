"""The zero-argument demo of ``python eval.py``: no data, checkpoint or download needed.

The bundled EDSR-baseline ×4 (``assets/edsr_baseline_x4.ckpt``, converted from ../shared/models) is
quantized to W4A4 with MinMax, DBDC and DBDC+PaC (PTQ4SR) from one calibration pass over photos of the
scikit-image wheel, and each method is scored with full precision on three other photos. Calibration
is cut down to finish in minutes on 2 CPU cores; calibrate.py / eval.py run the real protocol.

Writes <output_path>/demo_results.json, ``{"methods": {method: <eval.py's results record>}, "demo": …}``,
and <output_path>/demo_compare/<photo>.png (HR | bicubic | FP | MinMax | DBDC | PTQ4SR crops).
"""
import os
import tempfile
import time
from dataclasses import asdict, dataclass

from model_utils.config import make_config
from src.calibration.plan import plan_from_config
from src.calibration.runner import calibrate_methods
from src.compare import bicubic_upscale, save_comparison
from src.dataset import BenchmarkPairs
from src.evaluate import evaluate_set
from src.files import prepare_output_folder, write_json_atomic
from src.metric import calculate_psnr
from src.models.load import load_fp_net
from src.photos import CALIBRATION_PHOTOS, EVAL_PHOTOS, PHOTO_SET, stage_photos
from src.results import METHOD_LABELS, SHORT_LABELS, RunInfo, results_record
from src.runtime import init_env, set_seed

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO_CHECKPOINT = os.path.join(REPO, 'assets', 'edsr_baseline_x4.ckpt')
SCALE = 4
QUANT_METHODS = ('minmax', 'dbdc', 'ptq4sr')


@dataclass(frozen=True)
class DemoSettings:
    """Reduced calibration for a quick look (the paper: 30 batches × 16 patches, PaC 250 + 250 at ×4).

    PaC dominates the time (~2.5 s per batch-of-2 step on 2 cores, plus one graph compile), hence 10 + 10
    iterations: the whole demo takes ~2 minutes.
    """
    w_bit: int = 4
    a_bit: int = 4
    calib_batches: int = 8
    calib_batch_size: int = 8
    pac_iters: int = 10
    num_eval_images: int = len(EVAL_PHOTOS)
    seed: int = 0
    pac_seed: int = 1
    output_path: str = './output'

    def caption(self):
        photos = ', '.join(os.path.splitext(p)[0] for p in EVAL_PHOTOS[:self.num_eval_images])
        return (f'EDSR-baseline ×{SCALE} (bundled), W{self.w_bit}A{self.a_bit}, Y-PSNR (dB) on scikit-image photos '
                f'({photos}; LR by bicubic ×1/{SCALE}).\nCalibration cut down to run in minutes on 2 CPU cores: '
                f'{self.calib_batches} batches × {self.calib_batch_size} LR patches of {192 // SCALE} px from '
                f'{len(CALIBRATION_PHOTOS)} other photos, PaC {self.pac_iters} + {self.pac_iters} iterations (too few '
                'for PaC to show its gain).\nThe paper: 30 × 16 patches from 100 images, PaC 250 + 250 '
                '(python calibrate.py --help).')

    def run(self, method, arch='edsr_baseline'):
        quant = method != 'fp'
        return RunInfo(arch, SCALE, self.w_bit if quant else 32, self.a_bit if quant else 32, method, self.seed,
                       self.pac_seed if method == 'ptq4sr' else None)

    def label(self, method, labels=METHOD_LABELS):
        return self.run(method).label(labels)


def demo_plan(settings, calib_path, arch):
    """The configuration defaults (released layer map and PaC settings) with the demo's calibration sizes."""
    config = make_config({'method': 'ptq4sr', 'w_bit': settings.w_bit, 'a_bit': settings.a_bit,
                          'calib_path': calib_path, 'num_calib_images': len(CALIBRATION_PHOTOS),
                          'calib_batches': settings.calib_batches, 'calib_batch_size': settings.calib_batch_size,
                          'pac_iters': settings.pac_iters, 'seed': settings.seed, 'pac_seed': settings.pac_seed})
    return plan_from_config(config, arch, SCALE)


def evaluate_methods(nets, pairs, settings):
    """({method: {set: results}}, {photo: {'lr', 'hr', method: (sr, psnr)}}) for every network."""
    results, photos = {}, {}
    for method, (net, _) in nets.items():
        def keep(name, lr, hr, sr, psnr, method=method):
            photos.setdefault(name, {'lr': lr, 'hr': hr})[method] = (sr, psnr)
        desc = f'{settings.label(method, SHORT_LABELS)} {pairs.name}'
        results[method] = {pairs.name: evaluate_set(net, pairs, SCALE, on_image=keep, desc=desc)}
    return results, photos


def write_pictures(photos, folder, settings):
    """One HR | bicubic | every method crop comparison per photo; returns the paths."""
    paths = []
    for name, shots in photos.items():
        bicubic = bicubic_upscale(shots['lr'], SCALE)
        panels = [('HR', shots['hr'], None), ('Bicubic', bicubic, calculate_psnr(bicubic, shots['hr'], SCALE))]
        panels += [(settings.label(m, SHORT_LABELS), *shots[m]) for m in ('fp',) + QUANT_METHODS]
        paths.append(os.path.join(folder, f'{name}.png'))
        save_comparison(paths[-1], panels)
    return paths


def format_demo_table(record, photos, settings):
    """Markdown table, one column per method: PSNR per photo, then the mean PSNR / SSIM."""
    methods = list(record['methods'])
    lines = ['| photo | ' + ' | '.join(settings.label(m) for m in methods) + ' |', '|---' * (len(methods) + 1) + '|']
    for name, shots in photos.items():
        lines.append(f'| {name} | ' + ' | '.join(f'{shots[m][1]:.2f}' for m in methods) + ' |')
    means = [record['methods'][m]['results'][PHOTO_SET] for m in methods]
    lines.append('| mean PSNR / SSIM | ' + ' | '.join(f"{r['psnr']:.2f} / {r['ssim']:.4f}" for r in means) + ' |')
    return '\n'.join(lines)


def run_demo(settings=DemoSettings(), log=print):
    """Calibrate, evaluate, print the table and write the JSON and pictures; returns the JSON record."""
    start = time.time()
    log(f'PTQ4SR demo (no arguments given; `python eval.py --help` for real runs)\n{settings.caption()}')
    prepare_output_folder(settings.output_path)
    init_env('CPU')
    set_seed(settings.seed)
    with tempfile.TemporaryDirectory(prefix='ptq4sr_demo_') as tmp:
        calib_path, data_path = stage_photos(tmp, SCALE, settings.num_eval_images)
        fp_net, info = load_fp_net(DEMO_CHECKPOINT)
        nets = {'fp': (fp_net, {'timings': {}}),
                **calibrate_methods(fp_net, info, demo_plan(settings, calib_path, info.arch), QUANT_METHODS, log)}
        results, photos = evaluate_methods(nets, BenchmarkPairs(data_path, PHOTO_SET, SCALE), settings)
    folder = os.path.join(settings.output_path, 'demo_compare')
    pictures = write_pictures(photos, folder, settings)
    record = {'demo': {**asdict(settings), 'checkpoint': os.path.relpath(DEMO_CHECKPOINT, REPO),
                       'eval_photos': list(photos), 'calibration_photos': list(CALIBRATION_PHOTOS)},
              'methods': {m: results_record(settings.run(m, info.arch), results[m],
                                            {**nets[m][1]['timings'], 'eval_seconds': results[m][PHOTO_SET]['seconds']})
                          for m in nets},
              'pictures': pictures, 'total_seconds': round(time.time() - start, 1)}
    path = os.path.join(settings.output_path, 'demo_results.json')
    write_json_atomic(path, record)
    log(f'\n{settings.caption()}\n{format_demo_table(record, photos, settings)}\n'
        f"results written to {path}; crop comparisons in {folder}; {record['total_seconds']:.0f} s in all")
    return record
