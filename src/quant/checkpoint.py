"""Quantized checkpoints: weights, every bound and the metadata needed to rebuild the quantized network."""
import json
import os

from src.checkpoint import assign_params, save_mindspore_checkpoint
from src.errors import UserError
from src.models.build import build_net
from src.quant.convert import QuantSpec, convert_to_quant
from src.quant.state import all_quantizers
from src.runtime import package_versions

META_KEY = 'ptq4sr_meta'


def save_quant_checkpoint(qnet, info, plan, path, extra=None):
    """Write ``qnet`` (calibrated by ``plan``) to ``path`` atomically."""
    params = {name: p.asnumpy() for name, p in qnet.parameters_and_names()}
    meta = {'arch': info.arch, 'scale': info.scale, 'num_feat': info.num_feat, 'num_block': info.num_block,
            'method': plan.method, 'w_bit': plan.spec.w_bit, 'a_bit': plan.spec.a_bit,
            'int8_scope': list(plan.spec.int8_scope), 'fp_scope': list(plan.spec.fp_scope),
            'int_zero_point': plan.spec.int_zero_point,
            'seed': plan.seed, 'pac_seed': plan.pac_seed, 'versions': package_versions(),
            'grad_scales': {name: q.grad_scale for name, q in all_quantizers(qnet)}}
    meta.update(extra or {})
    save_mindspore_checkpoint(params, path, {META_KEY: json.dumps(meta), 'arch': info.arch})


def load_quant_checkpoint(path, arch=None, scale=None, int_zero_point=None):
    """(qnet, metadata) from a checkpoint written by ``save_quant_checkpoint``; ``int_zero_point`` True
    builds the network on the deployed integer grid whatever the checkpoint was calibrated on (None: as saved)."""
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
    meta.setdefault('int_zero_point', False)  # checkpoints from before the option used the released grid
    grid = meta['int_zero_point'] if int_zero_point is None else int_zero_point
    spec = QuantSpec(meta['w_bit'], meta['a_bit'], tuple(meta['int8_scope']), tuple(meta['fp_scope']), grid)
    convert_to_quant(net, spec)
    params = {k: v.asnumpy() for k, v in raw.items() if isinstance(v, ms.Parameter)}
    assign_params(net, params, os.path.basename(path))
    for name, q in all_quantizers(net):
        q.grad_scale = meta['grad_scales'][name]
    net.set_train(False)
    return net, meta
