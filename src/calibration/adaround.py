"""Learned weight rounding (AdaRound, Nagel et al., ICML 2020), one layer at a time, after the bounds are final.

Rounding each weight to its nearest grid point is optimal per weight, not for the layer's output: the errors
of a channel's weights add up over correlated inputs. AdaRound lets every weight round up or down,
``q = clip(floor(t) + h(V), 0, R)`` with ``t`` the weight on its quantizer's grid and ``h`` a rectified
sigmoid, and trains ``V`` with Adam so the layer's output matches the full-precision network's: on the
*quantized* network's input (through the layer's own input quantizer, earlier layers already rounded)
against the FP layer's output on the FP network's input, so each layer also absorbs the error that reaches
it. A regulariser ``1 − |2h − 1|^β`` (β annealed from 20 to 2 after a warm-up) drives every ``h`` to 0 or 1.

The result is written into the float weight: a point of its quantizer's grid, which the unchanged quantizer
reproduces (to float32 rounding). A layer whose output error the learned rounding does not lower keeps nearest
rounding. Checkpoints, inference and export are therefore those of any calibrated network; the
bounds must not move afterwards (PaC runs first). 8-bit layers keep nearest rounding.
"""
from dataclasses import dataclass

import mindspore as ms
import numpy as np
from mindspore import Tensor, ops
from tqdm import tqdm

from src.calibration.adam import TorchAdam
from src.files import load_resume_state, save_resume_state, state_key
from src.quant.convert import quant_convs
from src.quant.fake_quant import MIN_SPAN

ZETA, GAMMA = 1.1, -0.1  # the rectified sigmoid's stretch (AdaRound's values)


@dataclass(frozen=True)
class AdaRoundSettings:
    iters: int = 300           # Adam steps per layer
    patches: int = 32          # LR calibration patches whose activations are captured
    patch_size: int = 24       # or the calibration patch, if that is smaller
    batch_size: int = 8        # patches per step at the LR size; fewer where a layer's maps are larger (the tail)
    lr: float = 5e-2           # with reg_weight: reaches the brute-force optimum of toy layers (tests/test_adaround.py)
    # of the regulariser (mean over weights) against the output error relative to nearest rounding's: at 0.1
    # and below the soft weights never commit, and hard rounding is nearest rounding again (toy layers)
    reg_weight: float = 1.0
    warmup: float = 0.2        # share of the steps without the regulariser
    beta: tuple = (20.0, 2.0)  # the regulariser's exponent, annealed linearly after the warm-up
    max_bits: int = 7          # layers with more weight bits keep nearest rounding
    seed: int = 2              # of the crops and the steps' patches (DBDC's crops use 0, PaC's 1)


def rectified_sigmoid(v):
    return ops.clamp(ops.sigmoid(v) * (ZETA - GAMMA) + GAMMA, 0.0, 1.0)


def inverse_rectified_sigmoid(h):
    """``V`` with ``rectified_sigmoid(V) = h`` for h in (0, 1): the start, where the soft weight is the float
    weight itself."""
    return -np.log((ZETA - GAMMA) / (np.asarray(h, np.float64) - GAMMA) - 1).astype(np.float32)


def weight_grid(quant):
    """(lower, span) of a weight quantizer's grid, as numpy: the integer grid when it quantizes on it."""
    lower, upper = quant.bounds()
    if quant.int_zero_point:
        lower, span = quant.integer_grid(Tensor(lower), Tensor(upper))
        return lower.asnumpy(), span.asnumpy()
    return lower, np.maximum(upper - lower, np.float32(MIN_SPAN))


class LayerRounding:
    """The rounding of one ``QuantConv2d``'s weight: grid position ``t`` split into ``floor`` and a learned
    remainder ``h(V)``; ``V`` starts where ``h(V)`` is ``t``'s own fraction (the float weight)."""

    def __init__(self, conv):
        quant = conv.weight_quant
        self.levels = quant.levels
        lower, span = weight_grid(quant)
        self.step = (span / quant.levels).astype(np.float32)
        self.lower = lower.astype(np.float32)
        t = np.clip((conv.weight.asnumpy() - lower) / span, 0, 1) * quant.levels
        self.floor = np.floor(t).astype(np.float32)
        self.v0 = inverse_rectified_sigmoid(np.clip(t - self.floor, 0.01, 0.99))

    def soft_weight(self, v):
        """The weight at rounding variables ``v`` (a Tensor), differentiable in ``v``."""
        q = ops.clamp(Tensor(self.floor) + rectified_sigmoid(v), 0.0, self.levels)
        return q * Tensor(self.step) + Tensor(self.lower)

    def hard_weight(self, v):
        """The weight rounded up where ``h(v) ≥ ½`` (``v ≥ 0``), down elsewhere: a point of the grid."""
        q = np.clip(self.floor + (np.asarray(v) >= 0), 0, self.levels)
        return (q * self.step + self.lower).astype(np.float32)

    def nearest_weight(self):
        return self.hard_weight(self.v0)


def _conv_fn(conv):
    def apply(x, weight):
        return ops.conv2d(x, weight, conv.bias, conv.stride, conv.pad_mode, conv.padding, conv.dilation, conv.group)
    return apply


def reconstruct_layer(conv, x_q, y_fp, settings, batch_size=None, desc='AdaRound'):
    """Learn the rounding of ``conv``'s weight so ``conv(x_q)`` matches ``y_fp`` (numpy arrays, N×C×H×W;
    ``x_q`` already through the input quantizer), ``batch_size`` (default ``settings.batch_size``) of them
    per step, and write it into the weight. Returns the mean squared output error on ``x_q`` with nearest
    rounding and with the learned rounding."""
    rounding = LayerRounding(conv)
    apply = _conv_fn(conv)
    rng = np.random.default_rng(settings.seed)

    def output_error(weight):
        return float(ops.mean((apply(Tensor(x_q), Tensor(weight)) - Tensor(y_fp)) ** 2).asnumpy())

    nearest = output_error(rounding.nearest_weight())
    scale = Tensor(np.float32(1 / max(nearest, 1e-30)))  # the output error relative to nearest rounding's

    def loss_fn(v, x, y, beta, reg_weight):
        err = ops.mean((apply(x, rounding.soft_weight(v)) - y) ** 2) * scale
        h = rectified_sigmoid(v)
        reg = ops.mean(1 - ops.pow(ops.abs(2 * h - 1), beta))
        return err + reg_weight * reg

    grad_fn = ms.jit(ms.value_and_grad(loss_fn, grad_position=0))
    v = rounding.v0.copy()
    adam = TorchAdam([v.shape])
    warm = int(settings.warmup * settings.iters)
    batch = min(len(x_q), batch_size or settings.batch_size)
    for k in tqdm(range(settings.iters), desc=desc, unit='it', leave=False):
        idx = rng.choice(len(x_q), batch, replace=False)
        if k < warm:
            beta, reg_weight = settings.beta[0], 0.0
        else:
            beta = settings.beta[0] + (settings.beta[1] - settings.beta[0]) * (k - warm) / max(1, settings.iters - warm)
            reg_weight = settings.reg_weight
        _, grad = grad_fn(Tensor(v), Tensor(x_q[idx]), Tensor(y_fp[idx]), Tensor(np.float32(beta)),
                          Tensor(np.float32(reg_weight)))
        (v,) = adam.step([v], [grad.asnumpy()], settings.lr)
    learned = rounding.hard_weight(v)
    learned_error = output_error(learned)
    weight, error = (learned, learned_error) if learned_error < nearest else (rounding.nearest_weight(), nearest)
    ops.assign(conv.weight, Tensor(weight))
    return nearest, error


def _capture(net, cells, batches, output):
    """[input (or output) of each of ``cells`` over ``batches`` as one numpy array], from one pass of ``net``
    (hooks run in PyNative mode, which calibration uses)."""
    seen = [[] for _ in cells]
    if output:
        handles = [cell.register_forward_hook(lambda _, args, out, i=i: seen[i].append(out.asnumpy()))
                   for i, cell in enumerate(cells)]
    else:
        handles = [cell.register_forward_pre_hook(lambda _, args, i=i: seen[i].append(args[0].asnumpy()))
                   for i, cell in enumerate(cells)]
    try:
        for batch in batches:
            net(Tensor(batch))
    finally:
        for handle in handles:
            handle.remove()
    return [np.concatenate(s) for s in seen]


class LayerProgress:
    """The layers done so far (written weights and errors) in one .npz, saved atomically after each layer, so
    an interrupted run continues after its last finished layer with the same result. Keyed by a hash of the
    settings, the patches and every parameter of the network at the start: another run's file is ignored."""

    def __init__(self, path, qnet, batches, settings):
        self.path = path
        self.key = state_key(settings, [p.asnumpy() for _, p in qnet.parameters_and_names()] + list(batches))

    def load(self, log):
        """{layer: (weight, (nearest, learned))} of the finished layers ({} without a matching file)."""
        state = load_resume_state(self.path, self.key, 'AdaRound', 'settings, patches or starting weights', log)
        if state is None:
            return {}
        meta, arrays = state
        done = {name: (arrays[f'w{i}'], tuple(errors)) for i, (name, errors) in enumerate(meta['report'])}
        log(f'AdaRound: resuming from {self.path} after {len(done)} layers')
        return done

    def save(self, done):
        if not self.path:
            return
        save_resume_state(self.path, self.key, {'report': [[name, errors] for name, (_, errors) in done.items()]},
                          {f'w{i}': w for i, (w, _) in enumerate(done.values())})


def adaround(qnet, fp_net, batches, settings, log=print, resume_file=None):
    """Learn the rounding of every quantized weight of ``qnet`` with at most ``settings.max_bits`` bits, in
    network order, against ``fp_net`` on ``batches`` (LR patches). Returns {layer: (nearest, learned) mean
    squared output error}. With ``resume_file`` the finished layers are saved there after each one and a
    matching file is continued; the caller deletes it."""
    fp_cells = dict(fp_net.cells_and_names())
    layers = [(name, conv) for name, conv in quant_convs(qnet)
              if conv.weight_quant is not None and conv.w_bit <= settings.max_bits]
    progress = LayerProgress(resume_file, qnet, batches, settings)
    done = progress.load(log)
    for name, conv in layers:
        if name in done:
            ops.assign(conv.weight, Tensor(done[name][0]))
    layers_left = [(name, conv) for name, conv in layers if name not in done]
    targets = _capture(fp_net, [fp_cells[name] for name, _ in layers_left], batches, output=True)
    lr_pixels = batches[0].shape[2] * batches[0].shape[3]
    report = {name: errors for name, (_, errors) in done.items()}
    # each layer's input is captured after the layers before it are rounded
    for i, ((name, conv), y_fp) in enumerate(zip(layers_left, targets), start=len(done)):
        (x,) = _capture(qnet, [conv], batches, output=False)
        x_q = x if conv.input_quant is None else conv.input_quant(Tensor(x)).asnumpy()
        # the same pixels per step at every layer: upsampled maps take fewer patches
        batch = max(1, settings.batch_size * lr_pixels // (x.shape[2] * x.shape[3]))
        report[name] = reconstruct_layer(conv, x_q, y_fp, settings, batch, desc=f'AdaRound {i + 1}/{len(layers)}')
        done[name] = (conv.weight.asnumpy(), report[name])
        progress.save(done)
        log(f'AdaRound {name}: output error {report[name][0]:.4g} -> {report[name][1]:.4g}')
    return report
