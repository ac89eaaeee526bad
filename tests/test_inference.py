"""src.inference: tiled inference equals whole-image inference where the receptive field fits the overlap,
the ×8 self-ensemble inverts its transforms, and graph mode matches PyNative."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from mindspore import Tensor, ops

from src.models.build import build_net
from src.checkpoint import assign_params
from src.inference import NetForward, super_resolve

SCALE = 2
# conv_first, 2 blocks x 2 convs, conv_after_body and the upsampler conv at LR, conv_last at HR:
# 7 LR convs of radius 1 plus half an LR pixel, so 8 LR pixels of context make tiles exact.
RADIUS = 8


def kernel(rng, out_ch, in_ch, symmetric):
    std = np.sqrt(1.0 / (9 * in_ch))
    if not symmetric:
        return rng.normal(0, std, (out_ch, in_ch, 3, 3))
    # centre, edge and corner taps: invariant under flips and transposes of the 3x3 window
    centre, edge, corner = (rng.normal(0, std, (out_ch, in_ch, 1, 1)) for _ in range(3))
    mask_edge = np.array([[0, 1, 0], [1, 0, 1], [0, 1, 0]])
    mask_corner = np.array([[1, 0, 1], [0, 0, 0], [1, 0, 1]])
    return centre * np.eye(3)[1][:, None] * np.eye(3)[1][None, :] + edge * mask_edge + corner * mask_corner


def tiny_net(seed=0, symmetric=False):
    """EDSR F=8 B=2 ×2 with seeded weights; ``symmetric`` makes it exactly equivariant to the 8 dihedral
    transforms (D4-symmetric kernels, and the upsampler conv repeats each output channel for the 4
    pixel-shuffle positions, so it upsamples like nearest neighbour)."""
    net = build_net('edsr_baseline', SCALE, num_feat=8, num_block=2)
    rng = np.random.RandomState(seed)
    params = {}
    for name, p in net.parameters_and_names():
        shape = tuple(p.shape)
        repeat = SCALE ** 2 if symmetric and name.startswith('upsample.') else 1
        if name.endswith('weight'):
            value = kernel(rng, shape[0] // repeat, shape[1], symmetric)
        else:
            value = rng.normal(0, 0.05, shape[0] // repeat)
        params[name] = np.repeat(value, repeat, axis=0).astype(np.float32)
    assign_params(net, params, 'test weights')
    net.set_train(False)
    return net


def lr_image(h=21, w=30, seed=0):
    return np.random.RandomState(seed).randint(0, 256, (h, w, 3)).astype(np.uint8)


@pytest.fixture(scope='module')
def net():
    return tiny_net()


def test_chop_with_overlap_of_receptive_field_equals_whole_image(net):
    lr = lr_image()
    whole = super_resolve(net, lr, SCALE)
    assert whole.shape == (42, 60, 3) and whole.dtype == np.float32 and whole.std() > 0.05
    for tile in (8, 11):
        tiled = super_resolve(net, lr, SCALE, chop=True, tile=tile, overlap=RADIUS)
        np.testing.assert_allclose(tiled, whole, rtol=0, atol=1e-5)


def test_chop_with_small_overlap_differs_only_near_seams(net):
    lr, tile, overlap = lr_image(), 10, 2
    whole = super_resolve(net, lr, SCALE)
    tiled = super_resolve(net, lr, SCALE, chop=True, tile=tile, overlap=overlap)
    diff = np.abs(tiled - whole).max(axis=2)
    near = np.zeros(diff.shape, bool)
    reach = (RADIUS - overlap) * SCALE  # HR pixels on each side of a seam that can see the tile edge
    for seam in range(tile, lr.shape[0], tile):
        near[max(seam * SCALE - reach, 0):seam * SCALE + reach] = True
    for seam in range(tile, lr.shape[1], tile):
        near[:, max(seam * SCALE - reach, 0):seam * SCALE + reach] = True
    assert diff[~near].max() < 1e-5
    assert diff[near].max() > 1e-3


def upsample_by_repeat(x):
    """A stand-in forward: nearest-neighbour ×2 of an NCHW array (exactly equivariant)."""
    return np.repeat(np.repeat(x, SCALE, axis=2), SCALE, axis=3)


def test_self_ensemble_inverts_every_transform():
    lr = lr_image(5, 7)  # non-square: a wrong inverse would not even have the right shape
    want = np.repeat(np.repeat(lr.astype(np.float32) / 255, SCALE, 0), SCALE, 1)
    np.testing.assert_allclose(super_resolve(upsample_by_repeat, lr, SCALE, self_ensemble=True), want, atol=1e-7)


def test_self_ensemble_of_an_equivariant_net_is_its_plain_output():
    sym = tiny_net(seed=1, symmetric=True)
    lr = lr_image(9, 13, seed=1)
    plain = super_resolve(sym, lr, SCALE)
    # the net really is equivariant: flipping the input flips the output
    np.testing.assert_allclose(super_resolve(sym, lr[::-1].copy(), SCALE), plain[::-1], atol=1e-5)
    np.testing.assert_allclose(super_resolve(sym, lr, SCALE, self_ensemble=True), plain, atol=1e-5)


def test_self_ensemble_is_equivariant_for_any_net(net):
    lr = lr_image(9, 13, seed=2)
    plain = super_resolve(net, lr, SCALE)
    ensemble = super_resolve(net, lr, SCALE, self_ensemble=True)
    assert np.abs(ensemble - plain).max() > 1e-3  # a generic net is not equivariant, so averaging matters
    # averaging over the group makes the result equivariant: ensemble(T x) = T ensemble(x)
    rotated = super_resolve(net, np.rot90(lr).copy(), SCALE, self_ensemble=True)
    np.testing.assert_allclose(rotated, np.rot90(ensemble), atol=1e-5)
    transposed = super_resolve(net, lr.transpose(1, 0, 2).copy(), SCALE, self_ensemble=True)
    np.testing.assert_allclose(transposed, ensemble.transpose(1, 0, 2), atol=1e-5)


def test_graph_forward_matches_pynative_for_every_shape(net):
    forward = NetForward(net)
    for h, w in ((12, 16), (9, 21), (12, 16)):  # one graph, several shapes
        lr = lr_image(h, w, seed=h)
        np.testing.assert_allclose(super_resolve(forward, lr, SCALE), super_resolve(net, lr, SCALE), atol=1e-5)
    # in-place updates reach the compiled graph (set_data does not: see NetForward's docstring);
    # conv_last's bias is added before the /255 de-normalisation
    lr = lr_image(12, 16, seed=3)
    base = super_resolve(forward, lr, SCALE)
    bias = net.conv_last.bias
    before = bias.asnumpy().copy()
    ops.assign(bias, Tensor(before + 1.0))
    try:
        shifted = super_resolve(forward, lr, SCALE)
        np.testing.assert_allclose(shifted, super_resolve(net, lr, SCALE), atol=1e-5)
        np.testing.assert_allclose(shifted - base, 1 / 255, atol=1e-5)
    finally:
        ops.assign(bias, Tensor(before))


@pytest.mark.parametrize('fused', [True, False], ids=['fused_op_by_op', 'composite_graph'])
def test_frozen_quantized_inference_is_bit_identical_to_the_calibration_forward(fused, monkeypatch):
    """Inference (weights quantized once, no gradient-only terms; op by op with the fused kernel, or one
    dynamic-shape graph of the composite quantizer as on GPU / Ascend) gives exactly the numbers of the
    network as calibration runs it."""
    import src.quant.fake_quant
    from src.calibration.bounds import init_weight_bounds
    if not fused:
        monkeypatch.setattr(src.quant.fake_quant, 'fused_fake_quant', lambda: None)
    from src.quant.convert import QuantSpec, convert_to_quant
    from src.quant.state import input_quantizers
    qnet = convert_to_quant(tiny_net(seed=4), QuantSpec(4, 4))
    init_weight_bounds(qnet)
    for i, (_, q) in enumerate(input_quantizers(qnet)):
        q.set_bounds(-3.0 - i, 2.5 + 0.5 * i)
        q.grad_scale = 1e-3
    images = [lr_image(h, w, seed=h) for h, w in ((12, 16), (9, 21))]
    before = [super_resolve(qnet, lr, SCALE) for lr in images]  # PyNative, training form
    forward = NetForward(qnet)
    assert all(conv.frozen_weight is not None for conv in (qnet.conv_first, qnet.conv_last))
    assert (forward.graph is None) == (fused and qnet.conv_first.input_quant.fused is not None)
    for lr, want in zip(images, before):
        np.testing.assert_array_equal(super_resolve(forward, lr, SCALE), want)


@pytest.mark.slow
def test_chop_bounds_peak_memory_on_a_large_image():
    """scripts/benchmark_memory.py on an 800x600 LR image: whole-image memory grows with the image, tiled
    memory with the tile only (each mode in its own process)."""
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    result = subprocess.run([sys.executable, os.path.join(repo, 'scripts', 'benchmark_memory.py'), '--arch',
                             'edsr_baseline', '--scale', '2', '--hr_size', '1600x1200', '--chop_tile', '96'],
                            capture_output=True, text=True, timeout=600, cwd=repo)
    assert result.returncode == 0, result.stderr[-2000:]
    plain, chop = json.loads(result.stdout.strip().splitlines()[-1])
    growth = {r['mode']: r['peak_rss_mb'] - r['rss_before_mb'] for r in (plain, chop)}
    # one 64-channel float32 LR feature map alone is 123 MB here; a forward keeps several
    assert growth['plain'] > 1500
    assert growth['chop'] < 0.5 * growth['plain'], growth
