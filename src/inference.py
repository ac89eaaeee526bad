"""Whole-image super-resolution of one LR image: plain, tiled (``chop``) or ×8 self-ensemble.

A *forward* here is any callable from a float32 NCHW numpy array to one (``NetForward`` runs a
MindSpore network that way; an ONNX Runtime session can be wrapped the same way), so the tiling,
ensembling and scoring code serves every backend.
"""
import mindspore as ms
import numpy as np
from mindspore import Tensor, nn

from src.quant.convert import quant_convs
from src.quant.state import freeze_for_inference


class NetForward:
    """Runs a MindSpore network on NCHW arrays. A full-precision network runs as one graph with dynamic
    height and width, compiled on the first call and reused for every input shape; a fake-quantized one is
    first frozen (``freeze_for_inference``) and runs op by op with the fused quantizer kernel where there is
    one (CPU), else as a dynamic-shape graph too.

    Why: MindSpore never frees a compiled graph, and per-shape graphs (~1.5 GB each for a fake-quantized
    EDSR-baseline at x4) exhausted 24 GB over a benchmark set. MindSpore 2.10 cannot compile its Custom ops
    (the fused kernel) into a dynamic-shape graph, and the composite quantizer there took 6 GB and 2.4x the
    time of the fused kernel op by op on Set5 x2 (measured, CPU). A graph reads Parameters in place:
    ``ops.assign`` updates are seen, ``set_data`` is not.
    """

    def __init__(self, net):
        self.net, self.graph = net, None
        if quant_convs(net):
            freeze_for_inference(net)
            if any(conv.input_quant is not None and conv.input_quant.fused is not None
                   for _, conv in quant_convs(net)):
                return
        net.set_inputs(Tensor(shape=[None, 3, None, None], dtype=ms.float32))
        self.graph = ms.jit(net.construct)

    def __call__(self, x):
        return (self.graph or self.net)(Tensor(x)).asnumpy()


class PyNativeForward:
    """Runs a MindSpore network op by op (PyNative): for networks that cannot be compiled into a graph."""

    def __init__(self, net):
        self.net = net

    def __call__(self, x):
        return self.net(Tensor(x)).asnumpy()


def as_forward(net):
    """A forward for ``net``: a MindSpore Cell is wrapped in ``NetForward``; other callables are
    taken to map NCHW arrays to NCHW arrays already."""
    return NetForward(net) if isinstance(net, nn.Cell) else net


def _forward(forward, lr):
    """float32 HWC LR in [0, 1] → float32 HWC SR (unclipped)."""
    out = forward(np.ascontiguousarray(lr.transpose(2, 0, 1)[None]))
    return np.asarray(out)[0].transpose(1, 2, 0)


def _forward_tiled(net, lr, scale, tile, overlap):
    """Run ``tile``×``tile`` cores with ``overlap`` pixels of context on each side and keep the cores.

    Peak memory then scales with the tile, not the image. The result equals whole-image inference
    wherever the network's receptive field fits in the overlap (EDSR-baseline: ~35 LR pixels), and
    differs slightly near core edges otherwise.
    """
    h, w, _ = lr.shape
    out = np.zeros((h * scale, w * scale, 3), np.float32)
    for top in range(0, h, tile):
        for left in range(0, w, tile):
            t0, l0 = max(top - overlap, 0), max(left - overlap, 0)
            t1, l1 = min(top + tile + overlap, h), min(left + tile + overlap, w)
            sr = _forward(net, lr[t0:t1, l0:l1])
            ch, cw = min(tile, h - top), min(tile, w - left)
            dt, dl = (top - t0) * scale, (left - l0) * scale
            out[top * scale:(top + ch) * scale, left * scale:(left + cw) * scale] = \
                sr[dt:dt + ch * scale, dl:dl + cw * scale]
    return out


def _ensemble_transforms():
    """The 8 dihedral transforms as (forward, inverse) pairs on HWC arrays."""
    pairs = []
    for k in range(4):
        for flip in (False, True):
            def fwd(x, k=k, flip=flip):
                return np.rot90(x[:, ::-1] if flip else x, k)

            def inv(y, k=k, flip=flip):
                y = np.rot90(y, -k)
                return y[:, ::-1] if flip else y
            pairs.append((fwd, inv))
    return pairs


def super_resolve(net, lr_uint8, scale, chop=False, tile=192, overlap=16, self_ensemble=False):
    """SR of a uint8 HWC LR image as float32 HWC in the network's output range (≈[0, 1], unclipped);
    ``net`` is a Cell or a forward (see ``as_forward``)."""
    net = as_forward(net)
    lr = lr_uint8.astype(np.float32) / 255.0

    def run(x):
        return _forward_tiled(net, x, scale, tile, overlap) if chop else _forward(net, x)

    if not self_ensemble:
        return run(lr)
    outs = [inv(run(np.ascontiguousarray(fwd(lr)))) for fwd, inv in _ensemble_transforms()]
    return np.mean(outs, axis=0)
