"""Pixel-aware calibration (PaC): fine-tune only the quantizer bounds so the quantized network
reproduces the full-precision network's output pixel by pixel (SPEC §4.4).

As released: two phases over one stream of calibration batches, activation bounds first, then weight
bounds, each with PyTorch-formula Adam and cosine-annealed learning rate. The loss is
``mean|y_fp − y_q| + fea_weight · L_fea``; ``L_fea`` is computed on detached features, so only the L1 term
drives the gradient unless ``fea_grad`` is set. Options beyond the release (``joint``, ``relative_lr``,
``grad_scale``) are what PTQ4SR+ uses; their defaults are the release.
"""
import time
from dataclasses import dataclass, replace

import mindspore as ms
import numpy as np
from mindspore import ParameterTuple, Tensor, ops
from tqdm import tqdm

from src.calibration.adam import TorchAdam, cosine_lr
from src.calibration.losses import attention_feature_loss, pixel_l1_loss
from src.quant.state import all_quantizers, bound_parameters
from src.files import load_resume_state, save_resume_state, state_key


@dataclass(frozen=True)
class PacSettings:
    iters: int = 250          # per phase (the joint phase runs 2 × iters)
    lr_act: tuple = (5e-3, 2e-3)
    lr_weight: tuple = (5e-6, 2e-6)
    fea_weight: float = 5.0
    fea_grad: bool = False
    log_every: int = 10
    joint: bool = False       # one phase training every bound (activation bounds at lr_act, weights at lr_weight)
    relative_lr: bool = False  # a bound's learning rate is lr × its quantizer's span when PaC starts
    grad_scale: bool = True   # the released LSQ scale of the bounds' gradients (else 1)


@dataclass
class _Phase:
    """The bounds one phase trains: ``params``, whose gradients are ``grads`` of the step's, each with its
    (start, end) learning rate and the scale that multiplies it, over ``batches``."""
    name: str
    params: list
    grads: slice
    lrs: list
    scales: list
    batches: list

    def lr(self, k):
        """Per parameter: the cosine-annealed learning rate of iteration ``k``."""
        return [scale * cosine_lr(lr0, lr_min, k, len(self.batches)) for (lr0, lr_min), scale in zip(self.lrs, self.scales)]


def _spans(params):
    """Per bound Parameter (lower, upper, lower, upper, …): its quantizer's span u − l as it is now."""
    pairs = [(params[i].asnumpy(), params[i + 1].asnumpy()) for i in range(0, len(params), 2)]
    return [np.maximum(u - l, np.float32(1e-8)) for l, u in pairs for _ in range(2)]


def _phases(qnet, batches, settings):
    """The phases in order; the step returns the gradients of act + weight bounds."""
    act, weight = bound_parameters(qnet, 'act'), bound_parameters(qnet, 'weight')
    n, iters = len(act), settings.iters
    spans = _spans(act + weight) if settings.relative_lr else [1.0] * (len(act) + len(weight))
    lrs = [settings.lr_act] * n + [settings.lr_weight] * len(weight)
    if settings.joint:
        return [_Phase('all', act + weight, slice(None), lrs, spans, batches[:2 * iters])]
    return [_Phase('act', act, slice(0, n), lrs[:n], spans[:n], batches[:iters]),
            _Phase('weight', weight, slice(n, None), lrs[n:], spans[n:], batches[iters:2 * iters])]


def make_pac_step(qnet, fp_net, params, settings):
    """One PaC step: the FP teacher's output and block features (a graph of its own, outside
    differentiation), then the quantized forward, the loss and the gradients of ``params``.

    Both phases share one differentiated graph for the gradients of every bound (each phase applies its
    own): a graph for the activation bounds alone would skip the weight-gradient convolutions, but MindSpore
    never returns a compiled graph's memory, and a second graph cost 2–3x the first (measured: +0.9 GB at
    x4, +2.0 GB at x2 on top of ~0.5 GB). The teacher runs in a graph of its own, which also keeps the two
    networks' Parameter names apart (one graph needs them unique): the teacher is never renamed.
    """
    def loss_fn(x, y_fp, feats_fp):
        y_q, feats_q = qnet.forward_features(x)
        if not settings.fea_grad:
            feats_q = [ops.stop_gradient(f) for f in feats_q]
        l1 = pixel_l1_loss(y_q, y_fp)
        fea = attention_feature_loss(feats_q, feats_fp)
        return l1 + settings.fea_weight * fea, l1, fea

    teacher = ms.jit(fp_net.forward_features)
    grad_fn = ms.value_and_grad(loss_fn, None, ParameterTuple(params), has_aux=True)

    @ms.jit
    def student(x, y_fp, feats_fp):
        return grad_fn(x, y_fp, feats_fp)

    def step(x):
        y_fp, feats_fp = teacher(x)
        # mutable: a tuple of tensors is otherwise a compile-time constant, recompiled at every call
        return student(x, y_fp, ms.mutable(tuple(feats_fp)))
    return step


def _unchanged(grads, losses):
    return grads, losses


def pac_iteration(step, params, adam, batch, lr, grad_slice=slice(None), reduce=_unchanged):
    """One iteration: gradients on ``batch``, then Adam on ``params`` at ``lr`` (one, or one per parameter),
    whose gradients are ``grad_slice`` of those ``step`` returns (after ``reduce``, which averages them over
    data-parallel ranks); returns (L1, feature loss)."""
    (_, l1, fea), grads = step(Tensor(batch))
    grads, (l1, fea) = reduce(grads[grad_slice], (l1, fea))
    new = adam.step([p.asnumpy() for p in params], [g.asnumpy() for g in grads], lr)
    for p, value in zip(params, new):
        ops.assign(p, Tensor(value))  # in place: the compiled step reads this memory
    return float(l1.asnumpy()), float(fea.asnumpy())


def _run_phase(step, phase, settings, log, adam, history, on_step, reduce):
    """Adam on the phase's bounds over its batches, from iteration ``len(history)`` on (earlier ones were
    done by an interrupted run)."""
    kind, batches = phase.name, phase.batches
    bar = tqdm(range(len(history), len(batches)), desc=f'PaC {kind} bounds', unit='it', leave=False,
               initial=len(history), total=len(batches))
    for k in bar:
        lrs = phase.lr(k)
        l1, fea = pac_iteration(step, phase.params, adam, batches[k], lrs, phase.grads, reduce)
        lr = float(np.mean(lrs[0]))
        history.append((l1, settings.fea_weight * fea))
        on_step(adam, history)
        bar.set_postfix(l1=f'{history[-1][0]:.5f}')
        if (k + 1) % settings.log_every == 0 or k + 1 == len(batches):
            log(f'PaC {kind} iter {k + 1}/{len(batches)} lr {lr:.3g} l1 {history[-1][0]:.6f} '
                f'fea {history[-1][1]:.6f} avg-l1 {np.mean([h[0] for h in history]):.6f}')
    return history




class ResumeFile:
    """PaC's state after every iteration (bounds, Adam moments, losses) in one .npz, written atomically,
    so an interrupted calibration continues where it stopped; the result is the same as an uninterrupted
    run's. The state is keyed by a hash of the settings, the batches and the starting bounds: a file left
    by any other run is ignored and overwritten, never mixed in."""

    def __init__(self, path, params, batches, settings):
        self.path, self.params = path, params
        self.key = state_key(replace(settings, log_every=0), [p.asnumpy() for p in params] + list(batches))

    def load(self, log):
        """The saved {'phase', 'adam_steps', 'history', 'report', 'seconds'} and the bounds restored, or None."""
        state = load_resume_state(self.path, self.key, 'PaC', 'settings, data or starting bounds', log)
        if state is None:
            return None
        meta, arrays = state
        for i, p in enumerate(self.params):
            ops.assign(p, Tensor(arrays[f'param{i}']))
        meta['m'] = [arrays[f'm{i}'] for i in range(meta['n_moments'])]
        meta['v'] = [arrays[f'v{i}'] for i in range(meta['n_moments'])]
        done = sum(len(r['l1']) for r in meta['report'].values()) + len(meta['history'])
        log(f'PaC: resuming from {self.path} after {done} iterations')
        return meta

    def save(self, phase, adam, history, report, seconds):
        arrays = {f'param{i}': p.asnumpy() for i, p in enumerate(self.params)}
        arrays.update({f'm{i}': m for i, m in enumerate(adam.m)})
        arrays.update({f'v{i}': v for i, v in enumerate(adam.v)})
        meta = {'phase': phase, 'adam_steps': adam.step_count, 'n_moments': len(adam.m), 'history': history,
                'report': report, 'seconds': seconds}
        save_resume_state(self.path, self.key, meta, arrays)


def pixel_aware_calibration(qnet, fp_net, batches, settings, log=print, resume_file=None, reduce=_unchanged):
    """Run the phases on ``batches`` (float32 NCHW arrays; as released the first ``iters`` train activation
    bounds and the next ``iters`` weight bounds; ``joint`` trains all on all). Returns {phase: {'l1': [...],
    'fea': [...], 'seconds'}} with phases 'act' and 'weight', or 'all'.

    With ``resume_file`` (a path) the state is saved after every iteration and a matching saved state is
    continued; the caller deletes the file once it has kept the result. ``reduce(grads, (l1, fea))`` →
    ``(grads, (l1, fea))`` sees every step's bound gradients and losses (Tensors) before the Adam update:
    data-parallel workers average them there (``World.average``); the default keeps them.
    """
    if len(batches) < 2 * settings.iters:
        raise ValueError(f'PaC needs {2 * settings.iters} batches, got {len(batches)}')
    fp_net.set_train(False)
    if not settings.grad_scale:
        for _, quant in all_quantizers(qnet):
            quant.grad_scale = 1.0
    phases = _phases(qnet, batches, settings)
    all_params = bound_parameters(qnet, 'act') + bound_parameters(qnet, 'weight')
    resume = ResumeFile(resume_file, all_params, batches[:2 * settings.iters], settings) if resume_file else None
    saved = resume.load(log) if resume else None
    report = saved['report'] if saved else {}
    step = make_pac_step(qnet, fp_net, all_params, settings)
    for phase in phases:
        kind = phase.name
        if kind in report:
            continue
        adam, history, spent = TorchAdam([p.shape for p in phase.params]), [], 0.0
        if saved and saved['phase'] == kind:
            adam.step_count, adam.m, adam.v = saved['adam_steps'], saved['m'], saved['v']
            history, spent = saved['history'], saved['seconds']
        start = time.time() - spent

        def save(adam, history, kind=kind, start=start):
            resume.save(kind, adam, history, report, time.time() - start)

        history = _run_phase(step, phase, settings, log, adam, history, save if resume else lambda *_: None, reduce)
        report[kind] = {'l1': [h[0] for h in history], 'fea': [h[1] for h in history],
                        'seconds': round(time.time() - start, 1)}
    return report
