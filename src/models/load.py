"""A full-precision network built from the checkpoint a user holds (.pt, .pth or .ckpt)."""
import os

from src.checkpoint import assign_params, check_compatible, read_checkpoint
from src.errors import UserError
from src.models.build import build_net


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


def copy_net(net, info):
    """A second network with ``net``'s weights (its own Parameters, so one can be converted or renamed)."""
    other = build_net(info.arch, info.scale, **info.overrides)
    assign_params(other, {name: p.asnumpy() for name, p in net.parameters_and_names()}, 'the FP network')
    other.set_train(False)
    return other
