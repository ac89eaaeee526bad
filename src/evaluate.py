"""Benchmark evaluation: Y-channel PSNR / SSIM per set (SPEC §5), optional SR images and crop comparisons, table."""
import os
import time
from dataclasses import dataclass

from PIL import Image
from tqdm import tqdm

from src.compare import bicubic_upscale, save_comparison
from src.dataset import BenchmarkPairs
from src.inference import as_forward, super_resolve
from src.metric import calculate_psnr, calculate_ssim, tensor_to_uint8
from src.files import atomic_path


@dataclass(frozen=True)
class InferenceSettings:
    chop: bool = False
    tile: int = 192
    overlap: int = 16
    self_ensemble: bool = False


def open_sets(data_path, names, scale):
    """BenchmarkPairs for each comma-separated set name; bad names fail before any work starts."""
    names = [n.strip() for n in names.split(',') if n.strip()] if isinstance(names, str) else list(names)
    return [BenchmarkPairs(data_path, name, scale) for name in names]


def evaluate_set(net, pairs, scale, settings=InferenceSettings(), on_image=None, desc=None):
    """Mean PSNR / SSIM over one set; ``on_image(name, lr, hr, sr, psnr)`` sees every uint8 SR result.
    ``net``: a MindSpore Cell or any forward (NCHW array → NCHW array, see src.inference)."""
    start, psnrs, ssims = time.time(), [], []
    forward = as_forward(net)
    for i in tqdm(range(len(pairs)), desc=desc or pairs.name, unit='img', leave=False):
        name, lr, hr = pairs[i]
        sr = tensor_to_uint8(super_resolve(forward, lr, scale, settings.chop, settings.tile,
                                           settings.overlap, settings.self_ensemble))
        psnrs.append(calculate_psnr(sr, hr, crop_border=scale))
        ssims.append(calculate_ssim(sr, hr, crop_border=scale))
        if on_image:
            on_image(name, lr, hr, sr, psnrs[-1])
    return {'psnr': round(sum(psnrs) / len(psnrs), 4), 'ssim': round(sum(ssims) / len(ssims), 4),
            'images': len(psnrs), 'seconds': round(time.time() - start, 2)}


def image_saver(folder, label, scale):
    """``on_image`` callback for --save_sr: the SR PNG in ``folder`` and an HR | bicubic | ``label`` crop
    comparison in ``folder``_compare (atomic writes; an unwritable folder is a UserError)."""
    def save(name, lr, hr, sr, psnr):
        with atomic_path(os.path.join(folder, f'{name}.png')) as tmp:
            Image.fromarray(sr).save(tmp, format='PNG')
        bicubic = bicubic_upscale(lr, scale)
        panels = [('HR', hr, None), ('Bicubic', bicubic, calculate_psnr(bicubic, hr, crop_border=scale)),
                  (label, sr, psnr)]
        save_comparison(os.path.join(f'{folder}_compare', f'{name}.png'), panels)
    return save


def evaluate(net, sets, scale, settings=InferenceSettings(), save_root=None, tag='', label=None):
    """{set name: {psnr, ssim, images, seconds}} over ``sets`` (from ``open_sets``).

    With ``save_root``: SR images in <save_root>/<tag>/<set>/ and crop comparisons labelled ``label``
    (default ``tag``) in <save_root>/<tag>/<set>_compare/.
    """
    results = {}
    for pairs in sets:
        saver = image_saver(os.path.join(save_root, tag, pairs.name), label or tag, scale) if save_root else None
        results[pairs.name] = evaluate_set(net, pairs, scale, settings, saver, desc=f'{tag} {pairs.name}'.strip())
    return results


def format_table(rows, set_names):
    """Markdown table: one row per (label, {set: {psnr, ssim}}), cells 'PSNR / SSIM'."""
    lines = ['| method | ' + ' | '.join(set_names) + ' |', '|---' * (len(set_names) + 1) + '|']
    for label, results in rows:
        cells = [f"{results[s]['psnr']:.3f} / {results[s]['ssim']:.4f}" if s in results else '-' for s in set_names]
        lines.append(f'| {label} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)
