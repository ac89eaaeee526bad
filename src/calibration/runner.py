"""Calibration end to end: calibration crops → weight bounds → activation bounds → PaC → learned rounding
(if asked), for one or several methods sharing one observation pass."""
import os
import time

import mindspore as ms
import numpy as np

from src.calibration.adaround import adaround
from src.calibration.bounds import apply_act_bounds, init_weight_bounds, observe_act_bounds
from src.calibration.memory import check_pac_memory
from src.calibration.pac import pixel_aware_calibration
from src.calibration.plan import METHODS, PAC_METHODS, observed_as
from src.dataset import CalibrationImages, random_crop_batches
from src.distributed import LOCAL, batch_share, check_even_split
from src.errors import UserError
from src.files import remove_if_present
from src.quant.convert import quantized_copy
from src.quant.state import input_quantizers


def calibrate(fp_net, info, plan, log=print, pac_resume_file=None, world=LOCAL):
    """A calibrated fake-quantized copy of ``fp_net`` and a report of bounds and stage timings."""
    return calibrate_methods(fp_net, info, plan, (plan.method,), log, pac_resume_file, world)[plan.method]


def calibration_batches(plan, scale, count, batch_size, seed, patch_size=None):
    images = CalibrationImages(plan.calib_path, scale, plan.num_calib_images)
    size = patch_size or plan.patch_size
    return [images.patches(c, size) for c in random_crop_batches(images, size, batch_size, count, seed)]


def calibrate_methods(fp_net, info, plan, methods, log=print, pac_resume_file=None, world=LOCAL):
    """{method: (qnet, report)} for several methods sharing one observation pass over the data.

    MinMax, Percentile and DBDC see the same activations (weights are calibrated identically), so
    their statistics come from one pass; PTQ4SR continues from the DBDC bounds with PaC, saving its
    progress to ``pac_resume_file`` (if given) and continuing from it. ``fp_net`` is left unchanged.
    With a ``world`` of several ranks both stages run data parallel (each rank takes its share of the
    batches, see src/distributed.py) and every rank returns the same bounds.
    """
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise UserError(f"unknown method '{unknown[0]}': use one of {', '.join(METHODS)}")
    if 'ptq4sr_plus' in methods and len(methods) > 1:
        raise ValueError('ptq4sr_plus has a plan of its own (weight bounds, DBDC p): calibrate it alone')
    if any(m in PAC_METHODS for m in methods):
        check_even_split(plan.pac_batch_size, world.size)  # before the minutes of DBDC, not after
        if ms.get_context('device_target') == 'CPU':
            check_pac_memory(fp_net, info, plan.patch_size, plan.pac_batch_size // world.size)
    start = time.time()
    batches = calibration_batches(plan, info.scale, plan.calib_batches, plan.calib_batch_size, plan.seed)
    data_seconds = round(time.time() - start, 1)
    observed = sorted({observed_as(m) for m in methods})
    start = time.time()
    probe = quantized_copy(fp_net, info, plan.spec)
    init_weight_bounds(probe, plan.weight_bounds)
    bounds = observe_act_bounds(probe, batches, plan.observer, observed, world)
    observe_seconds = round(time.time() - start, 1)
    results = {}
    for i, method in enumerate(methods):
        qnet = probe if i == len(methods) - 1 else quantized_copy(fp_net, info, plan.spec)
        if qnet is not probe:
            init_weight_bounds(qnet, plan.weight_bounds)
        apply_act_bounds(qnet, bounds[observed_as(method)])
        for (_, src), (_, dst) in zip(input_quantizers(probe), input_quantizers(qnet)):
            dst.grad_scale = src.grad_scale
        timings = {'data_seconds': data_seconds, 'act_bounds_seconds': observe_seconds}
        report = {'timings': timings}
        if method in PAC_METHODS:
            report['pac_loss'] = _run_pac(qnet, fp_net, info, plan, timings, log, pac_resume_file, world)
        if plan.adaround.iters:
            # ranks would write one progress file together: no resuming there, as for PaC
            report['adaround'] = _run_adaround(qnet, fp_net, info, plan, timings, log,
                                               pac_resume_file if world.size == 1 else None)
        qnet.set_train(False)
        report['act_bounds'] = {name: [float(v) for v in q.bounds()] for name, q in input_quantizers(qnet)}
        results[method] = (qnet, report)
    return results


def _run_pac(qnet, fp_net, info, plan, timings, log, resume_file, world):
    start = time.time()
    # every rank draws the same crops (same seed) and trains on its share of each batch
    batches = [batch_share(b, world.rank, world.size)
               for b in calibration_batches(plan, info.scale, 2 * plan.pac.iters, plan.pac_batch_size, plan.pac_seed)]
    data_seconds = time.time() - start
    # ranks saving their progress separately could be interrupted at different iterations: no resuming there
    pac = pixel_aware_calibration(qnet, fp_net, batches, plan.pac, log, resume_file if world.size == 1 else None,
                                  world.average)
    # phase times include iterations done before a resume, so the total is summed, not timed
    timings.update({f'pac_{phase}_seconds': result['seconds'] for phase, result in pac.items()})
    timings['pac_seconds'] = round(data_seconds + sum(result['seconds'] for result in pac.values()), 1)
    return {k: {'l1_first': v['l1'][0], 'l1_last': v['l1'][-1], 'l1_mean': float(np.mean(v['l1']))}
            for k, v in pac.items()}


def _run_adaround(qnet, fp_net, info, plan, timings, log, pac_resume_file):
    # every rank of a data-parallel run computes the same rounding from the same crops: no exchange needed.
    # Its progress sits next to PaC's and goes once the rounding is in the network (a later rerun repeats it).
    start, settings = time.time(), plan.adaround
    resume_file = pac_resume_file and os.path.splitext(pac_resume_file)[0] + '_adaround.npz'
    per_batch = min(settings.patches, plan.num_calib_images)  # a batch draws each patch from another image
    batches = calibration_batches(plan, info.scale, -(-settings.patches // per_batch), per_batch, settings.seed,
                                  min(settings.patch_size, plan.patch_size))
    errors = adaround(qnet, fp_net, batches, settings, log, resume_file)
    if resume_file:
        remove_if_present(resume_file)
    timings['adaround_seconds'] = round(time.time() - start, 1)
    return {name: {'nearest': nearest, 'learned': learned} for name, (nearest, learned) in errors.items()}
