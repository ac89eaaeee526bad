"""The steps that eval.py and calibrate.py chain: load FP net → convert → calibrate → save / load."""
import json
import os
import time
from dataclasses import dataclass, field

import numpy as np

from src.build import build_net
from src.calibration.bounds import ObserverSettings, apply_act_bounds, init_weight_bounds, observe_act_bounds
from src.calibration.pac import PacSettings, pixel_aware_calibration
from src.checkpoint import assign_params, check_compatible, read_checkpoint, save_mindspore_checkpoint
from src.dataset import CalibrationImages, random_crop_batches
from src.errors import UserError
from src.quant.convert import QuantSpec, convert_to_quant
from src.quant.state import input_quantizers, weight_quantizers
from src.utils import package_versions

METHODS = ('minmax', 'percentile', 'dbdc', 'ptq4sr')
META_KEY = 'ptq4sr_meta'


def load_fp_net(path, arch=None, scale=None):
    """(network, CheckpointInfo) for a full-precision checkpoint, checked against ``arch``/``scale``."""
    if not path:
        raise UserError('no checkpoint given: pass --pre_trained PATH (.pt, .pth or .ckpt)')
    params, info = read_checkpoint(path, arch=arch)
    if any('_quant.' in name for name in params):  # else assign_params blames --arch/--scale
        raise UserError(f'{path} is a quantized checkpoint (written by calibrate.py): pass it as --quant_ckpt')
    check_compatible(info, path, arch, scale)
    net = build_net(info.arch, info.scale, **info.overrides)
    assign_params(net, params, os.path.basename(path))
    net.set_train(False)
    return net, info


@dataclass(frozen=True)
class CalibrationPlan:
    """Everything a calibration run needs, resolved from the config (no zeros meaning 'default')."""
    method: str
    spec: QuantSpec
    calib_path: str
    num_calib_images: int
    patch_size: int
    seed: int
    calib_batches: int
    calib_batch_size: int
    observer: ObserverSettings
    pac: PacSettings = field(default_factory=PacSettings)
    pac_batch_size: int = 2
    pac_seed: int = 1


def calibrate(fp_net, info, plan, log=print, pac_resume_file=None):
    """A calibrated fake-quantized copy of ``fp_net`` and a report of bounds and stage timings."""
    return calibrate_methods(fp_net, info, plan, (plan.method,), log, pac_resume_file)[plan.method]


def calibration_batches(plan, scale, count, batch_size, seed):
    images = CalibrationImages(plan.calib_path, scale, plan.num_calib_images)
    crops = random_crop_batches(images, plan.patch_size, batch_size, count, seed)
    return [images.patches(c, plan.patch_size) for c in crops]


def calibrate_methods(fp_net, info, plan, methods, log=print, pac_resume_file=None):
    """{method: (qnet, report)} for several methods sharing one observation pass over the data.

    MinMax, Percentile and DBDC see the same activations (weights are calibrated identically), so
    their statistics come from one pass; PTQ4SR continues from the DBDC bounds with PaC, saving its
    progress to ``pac_resume_file`` (if given) and continuing from it.
    """
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise UserError(f"unknown method '{unknown[0]}': use one of {', '.join(METHODS)}")
    start = time.time()
    batches = calibration_batches(plan, info.scale, plan.calib_batches, plan.calib_batch_size, plan.seed)
    data_seconds = round(time.time() - start, 1)
    observed = sorted({'dbdc' if m == 'ptq4sr' else m for m in methods})
    start = time.time()
    probe = quantized_copy(fp_net, info, plan.spec)
    init_weight_bounds(probe)
    bounds = observe_act_bounds(probe, batches, plan.observer, observed)
    observe_seconds = round(time.time() - start, 1)
    results = {}
    for i, method in enumerate(methods):
        qnet = probe if i == len(methods) - 1 else quantized_copy(fp_net, info, plan.spec)
        if qnet is not probe:
            init_weight_bounds(qnet)
        apply_act_bounds(qnet, bounds['dbdc' if method == 'ptq4sr' else method])
        for (_, src), (_, dst) in zip(input_quantizers(probe), input_quantizers(qnet)):
            dst.grad_scale = src.grad_scale
        timings = {'data_seconds': data_seconds, 'act_bounds_seconds': observe_seconds}
        report = {'timings': timings}
        if method == 'ptq4sr':
            report['pac_loss'] = _run_pac(qnet, fp_net, info, plan, timings, log, pac_resume_file)
        qnet.set_train(False)
        report['act_bounds'] = {name: [float(v) for v in q.bounds()] for name, q in input_quantizers(qnet)}
        results[method] = (qnet, report)
    return results


def _run_pac(qnet, fp_net, info, plan, timings, log, resume_file):
    start = time.time()
    batches = calibration_batches(plan, info.scale, 2 * plan.pac.iters, plan.pac_batch_size, plan.pac_seed)
    data_seconds = time.time() - start
    pac = pixel_aware_calibration(qnet, fp_net, batches, plan.pac, log, resume_file)
    # phase times include iterations done before a resume, so the total is summed, not timed
    timings['pac_act_seconds'], timings['pac_weight_seconds'] = pac['act']['seconds'], pac['weight']['seconds']
    timings['pac_seconds'] = round(data_seconds + pac['act']['seconds'] + pac['weight']['seconds'], 1)
    return {k: {'l1_first': v['l1'][0], 'l1_last': v['l1'][-1], 'l1_mean': float(np.mean(v['l1']))}
            for k, v in pac.items()}


def quantized_copy(fp_net, info, spec):
    """A second network with ``fp_net``'s weights, converted to fake quantization.

    The FP net stays intact as PaC's teacher; its parameters are renamed ``fp.*`` so the two networks
    have distinct names (graph mode requires globally unique Parameter names).
    """
    qnet = build_net(info.arch, info.scale, **info.overrides)
    assign_params(qnet, {name: p.asnumpy() for name, p in fp_net.parameters_and_names()}, 'the FP network')
    if not next(iter(fp_net.get_parameters())).name.startswith('fp.'):
        fp_net.update_parameters_name('fp.')
    return convert_to_quant(qnet, spec)


def _all_quantizers(qnet):
    """[('body.0.conv1.input_quant', FakeQuantizer), ('body.0.conv1.weight_quant', …), …]."""
    return ([(f'{name}.input_quant', q) for name, q in input_quantizers(qnet)]
            + [(f'{name}.weight_quant', q) for name, q, _ in weight_quantizers(qnet)])


def save_quant_checkpoint(qnet, info, plan, path, extra=None):
    """Weights, every bound and the metadata needed to rebuild ``qnet`` (written atomically)."""
    params = {name: p.asnumpy() for name, p in qnet.parameters_and_names()}
    meta = {'arch': info.arch, 'scale': info.scale, 'num_feat': info.num_feat, 'num_block': info.num_block,
            'method': plan.method, 'w_bit': plan.spec.w_bit, 'a_bit': plan.spec.a_bit,
            'int8_scope': list(plan.spec.int8_scope), 'fp_scope': list(plan.spec.fp_scope),
            'seed': plan.seed, 'pac_seed': plan.pac_seed, 'versions': package_versions(),
            'grad_scales': {name: q.grad_scale for name, q in _all_quantizers(qnet)}}
    meta.update(extra or {})
    save_mindspore_checkpoint(params, path, {META_KEY: json.dumps(meta), 'arch': info.arch})


def load_quant_checkpoint(path, arch=None, scale=None):
    """(qnet, metadata) from a checkpoint written by ``save_quant_checkpoint``."""
    import mindspore as ms
    if not os.path.isfile(path):
        raise UserError(f'quantized checkpoint {path} does not exist: run calibrate.py first or fix --quant_ckpt')
    try:
        raw = ms.load_checkpoint(path)
    except (ValueError, RuntimeError, OSError) as e:
        raise UserError(f"{path} is not a readable MindSpore checkpoint ({' '.join(str(e).split())}): "
                        'pass a file written by calibrate.py') from None
    if META_KEY not in raw:
        raise UserError(f'{path} is not a quantized checkpoint (no {META_KEY}): pass it as --pre_trained instead')
    meta = json.loads(raw.pop(META_KEY))  # append_dict strings come back as str
    if (arch and arch != meta['arch']) or (scale and int(scale) != meta['scale']):
        raise UserError(f"{path} holds {meta['arch']} ×{meta['scale']}: pass --arch {meta['arch']} --scale {meta['scale']}")
    net = build_net(meta['arch'], meta['scale'], num_feat=meta['num_feat'], num_block=meta['num_block'])
    spec = QuantSpec(meta['w_bit'], meta['a_bit'], tuple(meta['int8_scope']), tuple(meta['fp_scope']))
    convert_to_quant(net, spec)
    params = {k: v.asnumpy() for k, v in raw.items() if isinstance(v, ms.Parameter)}
    assign_params(net, params, os.path.basename(path))
    for name, q in _all_quantizers(net):
        q.grad_scale = meta['grad_scales'][name]
    net.set_train(False)
    return net, meta
