"""PyTorch side of benchmarks/speed_vs_pytorch.py: the project's work written in PyTorch from SPEC.md.

A compact, self-contained reimplementation (not the authors' code) of what ``src`` computes, so the
two frameworks can be timed doing the same thing: the EDSR forward, the W/A fake-quantized forward,
one DBDC calibration batch and one PaC iteration. Parameter names and shapes follow the MindSpore
network's ``parameters_and_names()`` (bounds included), so ``load_params`` takes either network's
parameters as numpy arrays.
"""
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

RGB_MEAN = (0.4488, 0.4371, 0.4040)
IMG_RANGE = 255.0
DBDC_BINS = 2048
MIN_SPAN = 1e-8  # as src.quant.fake_quant: keeps a degenerate quantizer (lower == upper) finite


def _conv(in_ch, out_ch):
    return nn.Conv2d(in_ch, out_ch, 3, padding=1)


class ResidualBlockNoBN(nn.Module):
    def __init__(self, num_feat, res_scale):
        super().__init__()
        self.res_scale = res_scale
        self.conv1 = _conv(num_feat, num_feat)
        self.conv2 = _conv(num_feat, num_feat)

    def forward(self, x):
        return x + self.conv2(F.relu(self.conv1(x))) * self.res_scale


class EDSR(nn.Module):
    """BasicSR EDSR: input in [0, 1], ``(x - mean) * 255`` inside, output ``/ 255 + mean``."""

    def __init__(self, num_feat, num_block, scale, res_scale):
        super().__init__()
        self.register_buffer('mean', torch.tensor(RGB_MEAN).view(1, 3, 1, 1))
        self.conv_first = _conv(3, num_feat)
        self.body = nn.Sequential(*[ResidualBlockNoBN(num_feat, res_scale) for _ in range(num_block)])
        self.conv_after_body = _conv(num_feat, num_feat)
        if scale in (2, 4):
            stages = [[_conv(num_feat, 4 * num_feat), nn.PixelShuffle(2)] for _ in range(scale // 2)]
        elif scale == 3:
            stages = [[_conv(num_feat, 9 * num_feat), nn.PixelShuffle(3)]]
        else:
            raise ValueError(f'scale {scale} is not supported: use 2, 3 or 4')
        self.upsample = nn.Sequential(*[layer for stage in stages for layer in stage])
        self.conv_last = _conv(num_feat, 3)

    def forward(self, x):
        return self.forward_features(x)[0]

    def forward_features(self, x):
        """(output, [output of each residual block]); PaC's feature loss compares the block outputs."""
        x = self.conv_first((x - self.mean) * IMG_RANGE)
        res, feats = x, []
        for block in self.body:
            res = block(res)
            feats.append(res)
        res = self.conv_after_body(res) + x
        return self.conv_last(self.upsample(res)) / IMG_RANGE + self.mean, feats


def build_edsr(num_feat=64, num_block=16, scale=4, res_scale=1.0):
    return EDSR(num_feat, num_block, scale, res_scale)


def load_params(net, params):
    """Copy ``{name: array}`` (the MindSpore network's parameter names) into ``net``; names and shapes must match."""
    own = dict(net.named_parameters())
    missing, unexpected = sorted(own.keys() - params.keys()), sorted(params.keys() - own.keys())
    misshaped = [n for n in own.keys() & params.keys() if tuple(np.shape(params[n])) != tuple(own[n].shape)]
    if missing or unexpected or misshaped:
        raise KeyError(f'parameters do not fit: missing {missing[:3]}, unexpected {unexpected[:3]}, '
                       f'misshaped {misshaped[:3]}')
    with torch.no_grad():
        for name, p in own.items():
            p.copy_(torch.from_numpy(np.asarray(params[name], np.float32)))


def _scaled_grad(t, scale):
    # value of t, gradient multiplied by scale (LSQ); same operation order as the release
    t_s = t * scale
    return (t - t_s).detach() + t_s


class FakeQuantizer(nn.Module):
    """``z = clip((x − l)/(u − l), 0, 1)``, ``x̂ = round(z·R)·(u − l)/R + l`` (SPEC §3), STE for round.

    Bounds are per tensor (shape ``()``) or per output channel (``(C, 1, 1, 1)``, broadcast over a
    conv weight). The LSQ gradient scale is fixed from the first tensor the quantizer sees, also when
    bypassed (DBDC's first calibration batch sets it for activations).
    """

    def __init__(self, bits, channels=0):
        super().__init__()
        shape = (channels, 1, 1, 1) if channels else ()
        self.bits = bits
        self.levels = float(2 ** bits - 1)
        self.lower = nn.Parameter(torch.zeros(shape))
        self.upper = nn.Parameter(torch.ones(shape))
        self.grad_scale = None
        self.bypass = False
        self.observed = 0  # DBDC batches averaged into the bounds so far

    def forward(self, x):
        if self.grad_scale is None:
            self.grad_scale = 1.0 / math.sqrt(x.numel() * (2.0 ** (self.bits - 1) - 1))
        if self.bypass:
            return x
        lower = _scaled_grad(self.lower, self.grad_scale)
        upper = _scaled_grad(self.upper, self.grad_scale)
        span = (upper - lower).clamp_min(MIN_SPAN)
        z = ((x - lower) / span).clamp(0.0, 1.0) * self.levels
        q = (torch.round(z) - z).detach() + z  # torch.round is half-to-even
        return q * span / self.levels + lower


class QuantConv2d(nn.Module):
    """Per-tensor input quantizer and per-output-channel weight quantizer around a float 3×3 conv;
    the bias stays float. Holds the float conv's own weight and bias, so names stay ``<layer>.weight``."""

    def __init__(self, conv, w_bit, a_bit):
        super().__init__()
        self.weight, self.bias = conv.weight, conv.bias
        self.padding = conv.padding
        self.input_quant = FakeQuantizer(a_bit) if a_bit < 32 else None
        self.weight_quant = FakeQuantizer(w_bit, channels=conv.out_channels) if w_bit < 32 else None

    def forward(self, x):
        if self.input_quant is not None:
            x = self.input_quant(x)
        w = self.weight if self.weight_quant is None else self.weight_quant(self.weight)
        return F.conv2d(x, w, self.bias, padding=self.padding)


def convert_to_quant(net, w_bit, a_bit, int8_scope=('conv_first', 'conv_last')):
    """Replace every ``nn.Conv2d`` of ``net`` in place; ``int8_scope`` layers get W8A8, bit width 32 = off.

    Float weights and biases stop requiring gradients: PaC never trains them, and autograd would
    otherwise compute their gradients every step.
    """
    targets = [(name, m) for name, m in net.named_modules() if isinstance(m, nn.Conv2d)]
    for name, conv in targets:
        wb, ab = (8, 8) if any(s in name for s in int8_scope) else (w_bit, a_bit)
        quant = QuantConv2d(conv, 32 if w_bit == 32 else wb, 32 if a_bit == 32 else ab)
        parent_name, _, attr = name.rpartition('.')
        setattr(net.get_submodule(parent_name), attr, quant)
    for p in net.parameters():
        p.requires_grad_(False)
    for q in input_quantizers(net) + weight_quantizers(net):
        q.lower.requires_grad_(True)
        q.upper.requires_grad_(True)
    return net


def _quant_convs(net):
    return [m for m in net.modules() if isinstance(m, QuantConv2d)]


def input_quantizers(net):
    return [m.input_quant for m in _quant_convs(net) if m.input_quant is not None]


def weight_quantizers(net):
    return [m.weight_quant for m in _quant_convs(net) if m.weight_quant is not None]


def act_bounds(net):
    """The parameters PaC's first phase trains."""
    return [p for q in input_quantizers(net) for p in (q.lower, q.upper)]


def set_bypass(net, acts, weights):
    for q in input_quantizers(net):
        q.bypass = acts
    for q in weight_quantizers(net):
        q.bypass = weights


@torch.no_grad()
def init_weight_bounds(net):
    """Per output channel: min and max of that channel's weights (SPEC §4.2)."""
    for conv in _quant_convs(net):
        if conv.weight_quant is not None:
            flat = conv.weight.flatten(1)
            conv.weight_quant.lower.copy_(flat.amin(1).view(-1, 1, 1, 1))
            conv.weight_quant.upper.copy_(flat.amax(1).view(-1, 1, 1, 1))


def dbdc_peel(hist, p):
    """(lo, hi) of SPEC §4.3 step 2, in O(bins log bins) tensor operations instead of a Python loop.

    The loop is a merge of the bins read upwards from the bottom and downwards from the top: it takes
    the smaller head (a tie takes the top one). Once a side's head is taken, every following bin of that
    side up to its next strictly larger one is taken too (it is no larger than the head just taken), so
    each side is consumed in blocks keyed by its running maximum, and blocks leave in (key, top first)
    order. Counts and the kept total are exact integers; the threshold is cast to float32 as torch
    does when comparing its float32 sum with (1 − p)·N.
    """
    counts = hist.to(torch.int64)
    n = counts.numel()
    total = int(counts.sum())
    keep = math.floor(np.float32((1 - p) * total))  # integer kept > float32 threshold ⇔ kept > floor(threshold)
    if total <= keep:
        return 0, n - 1
    sides = torch.stack([counts.flip(0), counts])  # row 0 from the top (wins ties), row 1 from the bottom
    keys = torch.cummax(sides, dim=1).values
    side = torch.tensor([[0], [1]])
    order = torch.argsort(((keys * 2 + side) * n + torch.arange(n)).flatten())
    removed = sides.flatten()[order].cumsum(0)
    steps = int((total - removed > keep).sum()) + 1
    from_bottom = int((order[:steps] >= n).sum())
    return from_bottom, n - 1 - (steps - from_bottom)


def dbdc_bounds(x, p, bins=DBDC_BINS):
    """One batch's DBDC (lower, upper) as float32 0-dim tensors: right edges of bins lo and hi (released)."""
    mn, mx = torch.aminmax(x.detach())
    if mn == mx:  # constant input: the release also ends at (min, min)
        return mn, mn
    hist = torch.histc(x, bins, min=mn.item(), max=mx.item())
    lo, hi = dbdc_peel(hist.cpu(), p)
    w = (mx - mn) / bins
    return w * (lo + 1) + mn, w * (hi + 1) + mn


@torch.no_grad()
def _dbdc_update(quant, args):
    lower, upper = dbdc_bounds(args[0], 1e-5 if quant.bits == 8 else 1e-4)
    if quant.observed == 0:
        quant.lower.copy_(lower)
        quant.upper.copy_(upper)
    else:  # running mean of the per-batch bounds, the release's float32 formula
        r = 1 - 1 / (1 + quant.observed)
        quant.lower.copy_(quant.lower * r + lower * (1 - r))
        quant.upper.copy_(quant.upper * r + upper * (1 - r))
    quant.observed += 1


def dbdc_batch(qnet, batch):
    """One DBDC calibration batch: activations pass through unquantized and update their bounds.

    As released, weights pass through unquantized on the first calibration batch only and are
    fake-quantized on later ones (weight bounds must already be set: ``init_weight_bounds``).
    """
    quants = input_quantizers(qnet)
    handles = [q.register_forward_pre_hook(_dbdc_update) for q in quants]
    set_bypass(qnet, acts=True, weights=quants[0].observed == 0)
    try:
        with torch.no_grad():
            qnet(batch)
    finally:
        for h in handles:
            h.remove()
        set_bypass(qnet, acts=False, weights=False)


def _attention_map(feat):
    return F.normalize(feat.pow(2).mean(1).flatten(1), dim=1)


def attention_feature_loss(feats_q, feats_fp):
    """Mean over residual blocks of ``mean((A(F_q) − A(F_fp))²)``."""
    return sum(((_attention_map(q) - _attention_map(f)) ** 2).mean()
               for q, f in zip(feats_q, feats_fp)) / len(feats_q)


def pac_step(qnet, fp_net, batch, optimizer, fea_weight=5.0):
    """One PaC iteration as released; returns (l1, fea_weight · L_fea) as floats.

    The feature loss is computed on detached features, so only the L1 term drives the gradient.
    Every bound keeps ``requires_grad`` (as in the project, whose one compiled step returns the
    gradients of all bounds); ``optimizer`` (torch.optim.Adam) decides which of them move.
    """
    with torch.no_grad():
        y_fp, feats_fp = fp_net.forward_features(batch)
    y_q, feats_q = qnet.forward_features(batch)
    l1 = (y_fp - y_q).abs().mean()
    fea = attention_feature_loss([f.detach() for f in feats_q], feats_fp)
    optimizer.zero_grad(set_to_none=True)
    (l1 + fea_weight * fea).backward()
    optimizer.step()
    return l1.item(), fea_weight * fea.item()


def make_act_optimizer(qnet, lr=5e-3):
    """PaC's phase-1 optimizer: Adam on the activation bounds, PyTorch's defaults otherwise."""
    return torch.optim.Adam(act_bounds(qnet), lr=lr, betas=(0.9, 0.999), eps=1e-8)
