"""How much of a quantized network's error is one brightness offset: per image, the mean of its Y output
minus the FP network's, the share of the squared error to FP that this offset explains, and the PSNR once
it is subtracted. A PSNR drop with SSIM kept (MinMax on MSRResNet, W4A4) suggests such an offset: SSIM
subtracts local means, PSNR does not."""
import numpy as np

from src.inference import as_forward, super_resolve
from src.metric import calculate_psnr, prepare_pair, tensor_to_uint8


def _psnr(y, y_hr):
    """PSNR of two Y planes already cropped (prepare_pair's output)."""
    return calculate_psnr(y, y_hr, crop_border=0, test_y_channel=False)


def offset_of_image(sr_q, sr_fp, hr, scale):
    """{'offset', 'offset_share', 'psnr', 'psnr_no_offset', 'psnr_fp'} of one image (uint8 HWC RGB arrays;
    Y channel, border of ``scale`` px cropped, as the benchmark scores)."""
    y_q, y_hr = prepare_pair(sr_q, hr, scale, True)
    y_fp, _ = prepare_pair(sr_fp, hr, scale, True)
    diff = y_q - y_fp
    offset = float(diff.mean())
    return {'offset': offset, 'offset_share': offset ** 2 / max(float(np.mean(diff ** 2)), 1e-12),
            'psnr': _psnr(y_q, y_hr), 'psnr_no_offset': _psnr(y_q - offset, y_hr), 'psnr_fp': _psnr(y_fp, y_hr)}


def offsets_of_set(q_net, fp_net, pairs, scale):
    """``offset_of_image`` for every image of ``pairs``, and their means under 'mean'."""
    q, fp = as_forward(q_net), as_forward(fp_net)
    rows = {}
    for i in range(len(pairs)):
        name, lr, hr = pairs[i]
        rows[name] = offset_of_image(tensor_to_uint8(super_resolve(q, lr, scale)),
                                     tensor_to_uint8(super_resolve(fp, lr, scale)), hr, scale)
    keys = next(iter(rows.values())).keys()
    mean = {k: float(np.mean([r[k] for r in rows.values()])) for k in keys}
    mean['abs_offset'] = float(np.mean([abs(r['offset']) for r in rows.values()]))
    return {'images': rows, 'mean': mean}
