"""Weights users hold → our parameter names, read without PyTorch and loaded strictly.

Formats (``CheckpointInfo.fmt``):
* ``edsr_pytorch``: official EDSR-PyTorch state_dict: ``head.0``, ``body.{i}.body.0/2``, ``body.{B}``,
  ``tail.0.{0,2}``, ``tail.1``; ``sub_mean``/``add_mean`` must be the standard 0..255 mean shift, which
  our ``EDSR`` applies itself.
* ``basicsr``: BasicSR ``{'params': ...}`` / ``{'params_ema': ...}`` or a bare state_dict: already our names.
* ``mindspore_zoo``: the MindSpore model zoo's EDSR ``.ckpt`` (official/cv/EDSR/src/edsr.py): ``head.0``,
  ``body.{i}.conv1/conv2``, ``body.{B}``, ``tail.0.up.{0,2}``, ``tail.1``, ``norm``/``de_norm``, maybe a
  ``net.`` prefix. That network feeds its first conv ``x/255 − mean`` where ours feeds ``(x − mean)·255``
  (x in [0, 1]), so all its activations are ours / 255: multiplying every bias by 255 makes the two exactly
  equivalent (convs are linear, ReLU and pixel shuffle commute with a positive scale). Its upsampler uses
  ``ops.DepthToSpace`` (output (c, h·r+i, w·r+j) reads channel (i·r+j)·C + c), so the upsampler conv
  channels are permuted to PyTorch's pixel-shuffle order (c·r² + i·r + j). Only ``rgb_std = 1`` and
  our RGB mean are accepted (checked on ``norm``/``de_norm`` when present; absent means the zoo defaults).
* ``mindspore``: a ``.ckpt`` in our names (scripts/convert_checkpoint.py; scalars/strings are metadata).

PyTorch files are read by ``src.torch_pickle`` (no torch needed; nothing in the file is executed).
"""
import dataclasses
import os
import re

import mindspore as ms
import numpy as np

from src.models.build import ARCH_NAMES, ARCHS
from src.models.edsr import RGB_MEAN
from src.errors import UserError
from src.files import atomic_path
from src.torch_pickle import is_torch_file, load_torch_file, require_file

_OPTIMIZER_PREFIXES = ('moment1.', 'moment2.', 'adam_m.', 'adam_v.', 'accum.')


@dataclasses.dataclass(frozen=True)
class CheckpointInfo:
    """What the tensors say: ``build_net(arch, scale, **overrides)`` is the network they fit.

    res_scale is not in the weights: standard widths name it (F64 B16 → edsr_baseline, F256 B32 → edsr);
    other EDSR widths take the caller's (or the .ckpt metadata's) arch, else edsr_baseline (res_scale 1).
    """
    arch: str
    scale: int
    num_feat: int
    num_block: int
    fmt: str

    @property
    def overrides(self):
        kwargs = ARCHS[self.arch][1]
        if (kwargs['num_feat'], kwargs['num_block']) == (self.num_feat, self.num_block):
            return {}
        return {'num_feat': self.num_feat, 'num_block': self.num_block}

    def describe(self):
        custom = f' (F={self.num_feat}, B={self.num_block})' if self.overrides else ''
        return f'{ARCH_NAMES[self.arch]}{custom} ×{self.scale}'


def _state_dict(obj, path, param_key):
    """The name → array dict inside ``obj``; BasicSR files wrap it as {'params': ..., 'params_ema': ...}."""
    if isinstance(obj, dict) and ('params' in obj or 'params_ema' in obj):
        key = param_key or ('params' if 'params' in obj else 'params_ema')
        if key not in obj:
            raise UserError(f"{path} has no '{key}' entry (it has {', '.join(map(str, obj))})")
        obj = obj[key]
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, np.ndarray) for v in obj.values()):
        raise UserError(f'{path} does not hold a state_dict of tensors: pass network weights '
                        f'(EDSR-PyTorch .pt, BasicSR .pth or MindSpore .ckpt)')
    return {re.sub(r'^(module|net)\.', '', str(k)): v for k, v in obj.items()}


def _read_mindspore(path):
    """(params, metadata) of a MindSpore .ckpt; optimizer state and scalar counters are left out."""
    try:
        raw = ms.load_checkpoint(str(path))
    except (ValueError, RuntimeError, TypeError) as err:
        raise UserError(f"{path} is not a readable MindSpore checkpoint ({' '.join(str(err).split())[:100]})") from None
    params, metadata = {}, {}
    for name, value in raw.items():
        name = re.sub(r'^net\.', '', name)  # the zoo's training wrapper; its own loader strips it too
        if isinstance(value, str):
            metadata[name] = value
        elif '.' in name and not name.startswith(_OPTIMIZER_PREFIXES):
            params[name] = value.asnumpy()
    return params, metadata


def _detect_format(params, path):
    if 'conv_first.weight' in params:
        return 'basicsr'
    if 'head.0.weight' in params and 'body.0.body.0.weight' in params:
        return 'edsr_pytorch'
    if 'head.0.weight' in params and 'body.0.conv1.weight' in params:
        return 'mindspore_zoo'
    raise UserError(f"{path}: unrecognised parameter names ({', '.join(list(params)[:3])}, ...): expected "
                    f'EDSR-PyTorch, BasicSR or MindSpore model-zoo EDSR weights')


def _rename(params, rules, block_suffix):
    """Apply the first matching (pattern, replacement) rule; ``body.{B}`` (B = block count) is conv_after_body."""
    num_block = len({k.split('.')[1] for k in params if re.fullmatch(rf'body\.\d+\.{block_suffix}', k)})
    out = {}
    for name, value in params.items():
        new = re.sub(rf'^body\.{num_block}\.(weight|bias)$', r'conv_after_body.\1', name)
        for pattern, repl in rules:
            new, hits = re.subn('^' + pattern, repl, new)
            if hits:
                break
        out[new] = value
    return out


def _check_mean_shift(params, path):
    """EDSR-PyTorch's sub_mean/add_mean must equal what our EDSR hard-codes: identity, bias ∓255·mean."""
    for name, sign in (('sub_mean', -1.0), ('add_mean', 1.0)):
        weight, bias = params.pop(f'{name}.weight', None), params.pop(f'{name}.bias', None)
        if weight is None and bias is None:
            continue
        ok = weight is not None and bias is not None and weight.shape == (3, 3, 1, 1) and bias.shape == (3,)
        if not (ok and np.allclose(weight[:, :, 0, 0], np.eye(3), atol=1e-6)
                and np.allclose(bias, sign * 255 * np.array(RGB_MEAN), rtol=1e-5, atol=1e-3)):
            got = None if bias is None else np.round(bias, 3).tolist()
            raise UserError(f'{path}: {name} is not the standard mean shift (identity 1x1, bias {sign * 255:+.0f}'
                            f'·{RGB_MEAN}; bias here {got}): only rgb_range 255, rgb_std 1 models are supported')


def _check_zoo_norm(params, path):
    """The zoo's RgbNormal parameters must be rgb_range 255, rgb_std 1 and our mean (then they are dropped)."""
    mean = np.array(RGB_MEAN)
    expected = {'norm.weight': 1 / 255, 'norm.bias': -mean, 'de_norm.weight': 255, 'de_norm.bias': 255 * mean}
    for name, want in expected.items():
        got = params.pop(name, None)
        if got is not None and not np.allclose(got.reshape(-1), np.broadcast_to(want, 3), rtol=1e-4):
            raise UserError(f'{path}: {name} is {got.reshape(-1).tolist()}, not {np.round(want, 6).tolist()}: '
                            f'only rgb_range 255, rgb_std 1 and rgb_mean {RGB_MEAN} are supported')


def _convert_zoo(params, path):
    """Zoo names and arithmetic → ours: biases ×255, upsampler channels from DepthToSpace order."""
    _check_zoo_norm(params, path)
    out = _rename(params, [(r'head\.0\.', 'conv_first.'), (r'tail\.0\.up\.(\d+)\.', r'upsample.\1.'),
                           (r'tail\.1\.', 'conv_last.')], r'conv1\.weight')
    num_feat = out['conv_first.weight'].shape[0]
    for name, value in out.items():
        if name.startswith('upsample.'):  # channel s·C + c (DepthToSpace) → c·r² + s (pixel shuffle)
            value = value.reshape(-1, num_feat, *value.shape[1:]).swapaxes(0, 1).reshape(value.shape)
        if name.endswith('.bias'):
            value = value * value.dtype.type(255)
        out[name] = value
    return out


_EDSR_PYTORCH_RULES = [(r'head\.0\.', 'conv_first.'), (r'body\.(\d+)\.body\.0\.', r'body.\1.conv1.'),
                       (r'body\.(\d+)\.body\.2\.', r'body.\1.conv2.'), (r'tail\.0\.(\d+)\.', r'upsample.\1.'),
                       (r'tail\.1\.', 'conv_last.')]


def _detect_info(params, fmt, path, arch_hint):
    num_feat = params['conv_first.weight'].shape[0]
    num_block = len([k for k in params if re.fullmatch(r'body\.\d+\.conv1\.weight', k)])
    if 'upconv1.weight' in params or 'conv_hr.weight' in params:
        outs = tuple(params[k].shape[0] for k in ('upconv1.weight', 'upconv2.weight') if k in params)
    else:
        outs = tuple(params[k].shape[0] for k in ('upsample.0.weight', 'upsample.2.weight') if k in params)
    scale = {(4 * num_feat,): 2, (9 * num_feat,): 3, (4 * num_feat, 4 * num_feat): 4}.get(outs)
    if scale is None:
        raise UserError(f'{path}: unsupported upsampler (conv output channels {outs} for F={num_feat}): '
                        f'expected 4F (×2), 9F (×3) or 4F, 4F (×4)')
    if 'upconv1.weight' in params or 'conv_hr.weight' in params:
        arch = 'msrresnet'
    else:
        standard = [a for a in ('edsr_baseline', 'edsr')
                    if (ARCHS[a][1]['num_feat'], ARCHS[a][1]['num_block']) == (num_feat, num_block)]
        arch = standard[0] if standard else (arch_hint if arch_hint in ('edsr', 'edsr_baseline')
                                             else 'edsr_baseline')
    return CheckpointInfo(arch, scale, num_feat, num_block, fmt)


def read_checkpoint(path, param_key=None, arch=None):
    """``(params, info)``: every tensor of ``path`` as a numpy array under our names, and what they fit.

    ``param_key`` picks 'params' or 'params_ema' in BasicSR files (default 'params' when present);
    ``arch`` names the res_scale family for EDSR widths other than the two standard ones.
    """
    require_file(path)
    if str(path).endswith('.ckpt') and not is_torch_file(path):
        params, metadata = _read_mindspore(path)
        arch = arch or metadata.get('arch')
    else:
        params = _state_dict(load_torch_file(path), path, param_key)
    fmt = _detect_format(params, path)
    if fmt == 'edsr_pytorch':
        _check_mean_shift(params, path)
        params = _rename(params, _EDSR_PYTORCH_RULES, r'body\.0\.weight')
    elif fmt == 'mindspore_zoo':
        params = _convert_zoo(params, path)
    elif str(path).endswith('.ckpt'):
        fmt = 'mindspore'
    return params, _detect_info(params, fmt, path, arch)


def check_compatible(info, path, arch=None, scale=None):
    """UserError when the requested ``arch``/``scale`` contradict what the checkpoint holds."""
    name = os.path.basename(str(path))
    if arch and arch != info.arch:
        raise UserError(f'checkpoint {name} is {info.describe()} but --arch {arch} was given: '
                        f'pass --arch {info.arch} or a {arch} checkpoint')
    if scale is not None and int(scale) != info.scale:
        raise UserError(f'checkpoint {name} is {info.describe()} but --scale {scale} was given: '
                        f'pass --scale {info.scale} or a ×{scale} checkpoint')


def assign_params(net, params, source):
    """Set every parameter of ``net`` from ``params`` (our names); any missing/extra/misshaped → UserError."""
    own = net.parameters_dict()
    missing = [n for n in own if n not in params]
    unexpected = [n for n in params if n not in own]
    misshaped = [f'{n} {params[n].shape} vs {tuple(own[n].shape)}' for n in own
                 if n in params and params[n].shape != tuple(own[n].shape)]
    problems = [f'{what}: {", ".join(names[:3])}{", ..." if len(names) > 3 else ""}' for what, names in
                (('missing', missing), ('unexpected', unexpected), ('shape checkpoint vs net', misshaped)) if names]
    if problems:
        raise UserError(f"checkpoint {source} does not fit the network ({'; '.join(problems)}): "
                        f'check --arch/--scale against the file')
    new = {n: ms.Parameter(ms.Tensor(params[n], dtype=p.dtype), name=n) for n, p in own.items()}
    not_loaded, _ = ms.load_param_into_net(net, new, strict_load=True)
    if not_loaded:
        raise UserError(f"MindSpore did not load {', '.join(not_loaded[:3])} from {source}")


def load_weights(net, path, arch=None, scale=None, param_key=None):
    """Load ``path`` (.pt/.pth/.ckpt) into ``net`` strictly; returns its ``CheckpointInfo``.

    ``scale`` defaults to ``net.upscale``, so a ×2 file meets a ×4 net with a message, not a shape dump.
    """
    params, info = read_checkpoint(path, param_key=param_key, arch=arch)
    check_compatible(info, path, arch, scale if scale is not None else getattr(net, 'upscale', None))
    assign_params(net, params, os.path.basename(str(path)))
    return info


def save_mindspore_checkpoint(params, path, metadata=None):
    """Write ``params`` (name → array) to a MindSpore .ckpt atomically (temp file + os.replace).

    ``metadata`` values must be str, int, float or bool (what ``append_dict`` stores); names without a dot.
    """
    metadata = dict(metadata or {})
    bad = [k for k, v in metadata.items() if '.' in k or not isinstance(v, (str, int, float, bool))]
    if bad:
        raise TypeError(f'metadata {bad} must have dot-free names and str/int/float/bool values')
    # np.ascontiguousarray alone turns 0-d arrays (per-tensor quant bounds) into shape (1,)
    entries = [{'name': k, 'data': ms.Tensor(np.ascontiguousarray(v).reshape(np.shape(v)))}
               for k, v in params.items()]
    with atomic_path(path) as tmp:
        ms.save_checkpoint(entries, tmp, append_dict=metadata or None)
