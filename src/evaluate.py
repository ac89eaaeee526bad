"""Benchmark evaluation: Y-channel PSNR / SSIM per set (SPEC §5), optional SR images and crop comparisons, table."""
import os
import time
from dataclasses import dataclass

from PIL import Image
from tqdm import tqdm

from src.compare import bicubic_upscale, save_comparison
from src.dataset import BenchmarkPairs
from src.distributed import LOCAL, merge_indexed, shard
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


def score_image(forward, pairs, index, scale, settings=InferenceSettings(), on_image=None):
    """Super-resolve image ``index`` of ``pairs`` and score it: {'name', 'psnr', 'ssim', 'seconds'}.
    ``on_image(name, lr, hr, sr, psnr)`` sees the uint8 SR result."""
    start = time.time()
    name, lr, hr = pairs[index]
    sr = tensor_to_uint8(super_resolve(forward, lr, scale, settings.chop, settings.tile, settings.overlap,
                                       settings.self_ensemble))
    psnr, ssim = float(calculate_psnr(sr, hr, crop_border=scale)), float(calculate_ssim(sr, hr, crop_border=scale))
    if on_image:
        on_image(name, lr, hr, sr, psnr)
    return {'name': name, 'psnr': psnr, 'ssim': ssim, 'seconds': time.time() - start}


def summarize(scores):
    """One set's {psnr, ssim, images, seconds, per_image} from its per-image scores in image order.

    The means are summed in image order, so however the images were shared out, the numbers are the same.
    ``seconds`` adds up the images' own times (the set's wall-clock time in a single process).
    """
    psnrs, ssims = [s['psnr'] for s in scores], [s['ssim'] for s in scores]
    return {'psnr': round(sum(psnrs) / len(psnrs), 4), 'ssim': round(sum(ssims) / len(ssims), 4),
            'images': len(scores), 'seconds': round(sum(s['seconds'] for s in scores), 2),
            'per_image': {s['name']: {'psnr': s['psnr'], 'ssim': s['ssim']} for s in scores}}


def evaluate_set(net, pairs, scale, settings=InferenceSettings(), on_image=None, desc=None):
    """``summarize`` of one set; ``on_image`` as in ``score_image``.
    ``net``: a MindSpore Cell or any forward (NCHW array → NCHW array, see src.inference)."""
    forward = as_forward(net)
    return summarize([score_image(forward, pairs, i, scale, settings, on_image)
                      for i in tqdm(range(len(pairs)), desc=desc or pairs.name, unit='img', leave=False)])


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


def evaluate(net, sets, scale, settings=InferenceSettings(), save_root=None, tag='', label=None, world=LOCAL):
    """{set name: {psnr, ssim, images, seconds, per_image}} over ``sets`` (from ``open_sets``).

    With ``save_root``: SR images in <save_root>/<tag>/<set>/ and crop comparisons labelled ``label``
    (default ``tag``) in <save_root>/<tag>/<set>_compare/.
    Data parallel (``world`` of several ranks): the images of all sets, taken in order, are shared out
    (image i to rank i % size); each rank scores and saves its own, then every rank gathers all per-image
    scores and returns what a single process would.
    """
    forward = as_forward(net)
    savers = [image_saver(os.path.join(save_root, tag, p.name), label or tag, scale) if save_root else None
              for p in sets]
    items = [(s, i) for s, pairs in enumerate(sets) for i in range(len(pairs))]
    mine = []
    for k in tqdm(shard(len(items), world.rank, world.size), desc=f"{tag} {'+'.join(p.name for p in sets)}".strip(),
                  unit='img', leave=False, disable=not world.is_main):
        s, i = items[k]
        mine.append((k, score_image(forward, sets[s], i, scale, settings, savers[s])))
    scores = merge_indexed(world.all_gather(mine))
    results, start = {}, 0
    for pairs in sets:
        results[pairs.name] = summarize(scores[start:start + len(pairs)])
        start += len(pairs)
    return results


def format_table(rows, set_names):
    """Markdown table: one row per (label, {set: {psnr, ssim}}), cells 'PSNR / SSIM'."""
    lines = ['| method | ' + ' | '.join(set_names) + ' |', '|---' * (len(set_names) + 1) + '|']
    for label, results in rows:
        cells = [f"{results[s]['psnr']:.3f} / {results[s]['ssim']:.4f}" if s in results else '-' for s in set_names]
        lines.append(f'| {label} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)
