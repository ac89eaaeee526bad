"""Calibration: weight/activation bound initialisation, PyTorch-formula Adam, PaC losses and PaC itself."""
import src  # noqa: F401  (sets ONEDNN_MAX_CPU_ISA before MindSpore's first conv)
import mindspore as ms
import numpy as np
import pytest
from mindspore import Tensor, ops

from src.models.build import build_net
from src.calibration.adam import TorchAdam, cosine_lr
from src.calibration.bounds import ObserverSettings, calibrate_act_bounds, init_weight_bounds
from src.calibration.losses import attention_feature_loss, pixel_l1_loss
from src.calibration.pac import PacSettings, pixel_aware_calibration
from src.checkpoint import CheckpointInfo
from src.models.edsr import RGB_MEAN
from src.quant.convert import quantized_copy
from src.quant.convert import QuantSpec, convert_to_quant
from src.quant.observer import MinMaxObserver
from src.quant.state import all_quantizers, input_quantizers, observing, weight_quantizers

INFO = CheckpointInfo('edsr_baseline', 2, 8, 2, 'pth')


def _fp_net(seed):
    """Tiny EDSR ×2 (F=8, B=2) with He-like random weights drawn from numpy (independent of MindSpore's seed)."""
    rng = np.random.default_rng(seed)
    net = build_net('edsr_baseline', 2, num_feat=8, num_block=2)
    for name, p in net.parameters_and_names():
        std = 0.5 * np.sqrt(2 / np.prod(p.shape[1:])) if name.endswith('weight') else 0.01
        p.set_data(Tensor(rng.normal(0, std, p.shape).astype(np.float32)))
    net.set_train(False)
    return net


def _images(rng, n, batch=2, size=16):
    return [rng.uniform(0, 1, (batch, 3, size, size)).astype(np.float32) for _ in range(n)]


def _bounds(qnet):
    return {name: p.asnumpy().copy() for name, p in qnet.parameters_and_names() if '_quant.' in name}


# --- weight bounds ----------------------------------------------------------------------------------
def test_init_weight_bounds_per_channel_minmax_and_grad_scale():
    qnet = quantized_copy(_fp_net(0), INFO, QuantSpec(4, 4))
    init_weight_bounds(qnet)
    quants = weight_quantizers(qnet)
    assert len(quants) == 8  # ×2: one upsampler conv
    for name, quant, weight in quants:
        w = weight.asnumpy().reshape(weight.shape[0], -1)
        lower, upper = quant.bounds()
        np.testing.assert_array_equal(lower.ravel(), w.min(1))
        np.testing.assert_array_equal(upper.ravel(), w.max(1))
        bits = 8 if name in ('conv_first', 'conv_last') else 4
        assert quant.grad_scale == pytest.approx(1 / np.sqrt(w.size * (2 ** (bits - 1) - 1)), rel=1e-12)
    conv_first = dict((n, q) for n, q, _ in quants)['conv_first']
    assert conv_first.grad_scale == pytest.approx(1 / np.sqrt(8 * 3 * 9 * 127), rel=1e-12)


# --- activation bounds ------------------------------------------------------------------------------
def _minmax_batches():
    """Three batches of different sizes; the extremes of (x − mean)·255 sit in the last one."""
    rng = np.random.default_rng(3)
    batches = [rng.uniform(0.1, 0.9, (n, 3, 8, 8)).astype(np.float32) for n in (2, 3, 1)]
    batches[2][0, 2, 4, 4], batches[2][0, 0, 1, 7] = 1.0, 0.0
    return batches


def test_calibrate_minmax_gives_global_min_max_of_conv_inputs():
    fp = _fp_net(1)
    qnet = quantized_copy(fp, INFO, QuantSpec(4, 4))
    init_weight_bounds(qnet)
    batches = _minmax_batches()
    result = calibrate_act_bounds(qnet, batches, ObserverSettings('minmax'))
    mean = np.array(RGB_MEAN, np.float32).reshape(1, 3, 1, 1)
    first_in = np.concatenate([((b - mean) * np.float32(255)).ravel() for b in batches])
    assert result['conv_first'] == (float(first_in.min()), float(first_in.max()))
    f32 = np.float32  # by hand: channel 0 at 0.0 and channel 2 at 1.0
    assert result['conv_first'] == (float((f32(0) - f32(0.4488)) * f32(255)), float((f32(1) - f32(0.404)) * f32(255)))
    quants = dict(input_quantizers(qnet))
    assert list(result) == list(quants) and len(quants) == 8
    for name, quant in quants.items():
        lower, upper = quant.bounds()
        assert (float(lower), float(upper)) == result[name]
        assert np.isfinite(lower) and np.isfinite(upper) and lower < upper
        if name.endswith('conv2'):  # ReLU outputs: the minimum is an exact zero
            assert lower == 0.0
    # gradient scales come from the first batch's element count (2 images, F = 8, ×2 before conv_last)
    assert quants['conv_first'].grad_scale == pytest.approx(1 / np.sqrt(2 * 3 * 64 * 127), rel=1e-12)
    assert quants['body.0.conv1'].grad_scale == pytest.approx(1 / (32 * np.sqrt(7)), rel=1e-12)
    assert quants['conv_last'].grad_scale == pytest.approx(1 / (64 * np.sqrt(127)), rel=1e-12)


def test_first_batch_sees_float_weights_later_batches_quantized_weights():
    fp = _fp_net(1)
    qnet = quantized_copy(fp, INFO, QuantSpec(4, 4))
    init_weight_bounds(qnet)
    batches = [_minmax_batches()[i] for i in (0, 2)]  # the min comes from batch 1, the max from batch 2
    result = calibrate_act_bounds(qnet, batches, ObserverSettings('minmax'))
    mean = np.array(RGB_MEAN, np.float32).reshape(1, 3, 1, 1)
    shifted = [Tensor((b - mean) * np.float32(255)) for b in batches]
    conv = qnet.conv_first
    float_out = [fp.conv_first(x).asnumpy() for x in shifted]
    quant_out = [ops.conv2d(x, conv.quantized_weight(), conv.bias, 1, 'pad', 1, 1, 1).asnumpy() for x in shifted]

    def minmax(arrays):
        flat = np.concatenate([a.ravel() for a in arrays])
        return float(flat.min()), float(flat.max())
    # the input of body.0.conv1 is conv_first's output: float weights on batch 1, 8-bit weights on batch 2
    expected = minmax([float_out[0], quant_out[1]])
    assert expected != minmax(float_out) and expected != minmax(quant_out)  # the test tells them apart
    np.testing.assert_allclose(result['body.0.conv1'], expected, rtol=1e-6)


def test_observing_leaves_nothing_behind():
    qnet = convert_to_quant(_fp_net(2), QuantSpec(4, 4))
    x = Tensor(_minmax_batches()[0])
    with observing(qnet, lambda bits: MinMaxObserver()) as observers:
        assert all(q.bypass for _, q in input_quantizers(qnet))
        assert all(q.bypass for _, q, _ in weight_quantizers(qnet))  # float weights until switched on
        qnet(x)
    seen = {name: obs.bounds() for name, obs in observers.items()}
    assert not any(q.bypass for _, q in input_quantizers(qnet))
    assert not any(q.bypass for _, q, _ in weight_quantizers(qnet))
    qnet(x * 3.0 - 1.0)  # hooks removed: the observers must not see this wider input
    assert {name: obs.bounds() for name, obs in observers.items()} == seen


def test_observer_settings():
    s = ObserverSettings()
    assert (s.make_observer(8).p, s.make_observer(4).p) == (1e-5, 1e-4)
    assert ObserverSettings('percentile', percentile_p=1e-3).make_observer(4).p == 1e-3
    with pytest.raises(ValueError, match='unknown calibration method'):
        ObserverSettings('mse').make_observer(4)


# --- Adam and the schedule --------------------------------------------------------------------------
def _torch_adam_f64(params, grads_per_step, lrs, betas=(0.9, 0.999), eps=1e-8, eps_inside_bias=True):
    """PyTorch's Adam in float64; ``eps_inside_bias=False`` is MindSpore's ε/sqrt(1 − β₂ᵗ) placement."""
    b1, b2 = betas
    p = [np.asarray(x, np.float64).copy() for x in params]
    m = [np.zeros_like(x) for x in p]
    v = [np.zeros_like(x) for x in p]
    for t, (grads, lr) in enumerate(zip(grads_per_step, lrs), start=1):
        for i, g in enumerate(grads):
            m[i] = b1 * m[i] + (1 - b1) * g
            v[i] = b2 * v[i] + (1 - b2) * g * g
            c2 = np.sqrt(1 - b2 ** t)
            denom = np.sqrt(v[i]) / c2 + eps if eps_inside_bias else (np.sqrt(v[i]) + eps) / c2
            p[i] = p[i] - lr / (1 - b1 ** t) * m[i] / denom
    return p


def _run_adam(params, grads_per_step, lrs):
    adam = TorchAdam([np.shape(x) for x in params])
    p = [np.asarray(x, np.float32) for x in params]
    for grads, lr in zip(grads_per_step, lrs):
        p = adam.step(p, grads, lr)
    return p


def test_torch_adam_matches_pytorch_formula():
    rng = np.random.default_rng(0)
    params = [rng.uniform(-1, 1, 3).astype(np.float32), rng.uniform(-1, 1, (2, 2)).astype(np.float32)]
    grads = [[rng.normal(0, 1e-3, np.shape(x)).astype(np.float32) for x in params] for _ in range(6)]
    lrs = [cosine_lr(1e-2, 4e-3, k, 6) for k in range(6)]
    got, want = _run_adam(params, grads, lrs), _torch_adam_f64(params, grads, lrs)
    for g, w, p0 in zip(got, want, params):
        assert g.dtype == np.float32
        np.testing.assert_allclose(g, w, rtol=2e-7, atol=0)  # ~2 float32 ulps: p is stored in float32
        np.testing.assert_allclose(g - p0, w - p0, rtol=1e-5)  # the update itself, not only the sum


def test_torch_adam_first_step_is_lr_times_sign():
    # m̂ = g and sqrt(v̂) = |g| after one step, so Δp = −lr·g/(|g| + ε)
    got = _run_adam([np.float32([0.5, -0.25])], [[np.float32([3.0, -1e-3])]], [0.1])[0]
    np.testing.assert_allclose(got, [0.5 - 0.1 * 3 / (3 + 1e-8), -0.25 + 0.1 * 1e-3 / (1e-3 + 1e-8)], rtol=1e-7)


def test_torch_adam_epsilon_placement_with_tiny_gradients():
    params = [np.zeros(2, np.float32)]  # from 0 the float32 result is the step itself, to ~1e-7 relative
    grads = [[np.float32([1e-12, -3e-12])]] * 3
    lrs = [1e-3] * 3
    got = _run_adam(params, grads, lrs)[0]
    torch_style = _torch_adam_f64(params, grads, lrs)[0]
    ms_style = _torch_adam_f64(params, grads, lrs, eps_inside_bias=False)[0]
    np.testing.assert_allclose(got, torch_style, rtol=1e-6)
    # ε/sqrt(1 − β₂ᵗ) is ~18–32 ε over these steps: the steps differ by more than 10×
    assert np.all(np.abs(got) > 10 * np.abs(ms_style))
    # step 1 by hand: ε dominates sqrt(v̂) = |g|, so Δp ≈ −lr·g/(|g| + ε)
    first = _run_adam(params, grads[:1], lrs[:1])[0]
    np.testing.assert_allclose(first, [-1e-3 * 1e-12 / (1e-12 + 1e-8), 1e-3 * 3e-12 / (3e-12 + 1e-8)], rtol=1e-6)


def test_cosine_lr_endpoints_and_midpoint():
    assert cosine_lr(5e-3, 2e-3, 0, 500) == pytest.approx(5e-3, rel=1e-12)
    assert cosine_lr(5e-3, 2e-3, 250, 500) == pytest.approx(3.5e-3, rel=1e-12)
    assert cosine_lr(5e-3, 2e-3, 500, 500) == pytest.approx(2e-3, rel=1e-12)
    assert cosine_lr(1.0, 0.0, 1, 3) == pytest.approx(0.75, rel=1e-12)  # (1 + cos 60°)/2


# --- losses -----------------------------------------------------------------------------------------
def _attention_np(f, eps=1e-12):
    a = (f.astype(np.float64) ** 2).mean(axis=1).reshape(f.shape[0], -1)
    return a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), eps)


def test_attention_feature_loss_matches_numpy():
    rng = np.random.default_rng(4)
    fq = [rng.normal(0, 1, (2, 4, 5, 6)).astype(np.float32) for _ in range(2)]
    ffp = [f + rng.normal(0, 0.3, f.shape).astype(np.float32) for f in fq]
    fq[1][1] = 0  # an all-zero sample: its map stays zero (norm clamped to eps), as with F.normalize
    want = np.mean([((_attention_np(a) - _attention_np(b)) ** 2).mean() for a, b in zip(fq, ffp)])
    got = attention_feature_loss([Tensor(f) for f in fq], [Tensor(f) for f in ffp])
    assert float(got.asnumpy()) == pytest.approx(want, rel=1e-5)
    assert float(attention_feature_loss([Tensor(fq[0])], [Tensor(fq[0] * 3)]).asnumpy()) == pytest.approx(0, abs=1e-12)


def test_attention_feature_loss_gradient_of_an_all_zero_map_is_zero():
    # PaC with fea_grad differentiates A(F_q); sqrt's slope at 0 once made this gradient NaN (torch gives 0)
    rng = np.random.default_rng(5)
    fq = rng.normal(0, 1, (2, 4, 3, 3)).astype(np.float32)
    fq[0] = 0
    ffp = Tensor(rng.normal(0, 1, fq.shape).astype(np.float32))
    grad = ms.grad(lambda f: attention_feature_loss([f], [ffp]))(Tensor(fq)).asnumpy()
    assert np.all(grad[0] == 0) and np.all(np.isfinite(grad[1])) and np.abs(grad[1]).max() > 0


def test_pixel_l1_loss_known_value():
    y_fp = Tensor(np.float32([[[[0.1, -0.2], [0.3, 0.4]]]]))
    assert float(pixel_l1_loss(Tensor(np.zeros((1, 1, 2, 2), np.float32)), y_fp).asnumpy()) == pytest.approx(0.25)


# --- PaC --------------------------------------------------------------------------------------------
def _calibrated_pair(seed, n_pac):
    fp = _fp_net(seed)
    qnet = quantized_copy(fp, INFO, QuantSpec(4, 4))
    rng = np.random.default_rng(seed + 100)
    init_weight_bounds(qnet)
    calibrate_act_bounds(qnet, _images(rng, 3), ObserverSettings('dbdc'))
    return fp, qnet, _images(rng, n_pac), Tensor(_images(rng, 1, batch=4)[0])


def _held_out_l1(qnet, fp, x):
    return float(np.abs(qnet(x).asnumpy() - fp(x).asnumpy()).mean())


@pytest.fixture(scope='module')
def pac_run():
    """One PaC run with learning rates ~400× the released ones, so 20 iterations per phase visibly help."""
    fp, qnet, batches, held_out = _calibrated_pair(0, 40)
    before = {name: p.asnumpy().copy() for name, p in qnet.parameters_and_names()}
    fp_before = {name: p.asnumpy().copy() for name, p in fp.parameters_and_names()}
    l1_before = _held_out_l1(qnet, fp, held_out)
    settings = PacSettings(iters=20, lr_act=(2.0, 1.0), lr_weight=(2e-3, 1e-3))
    report = pixel_aware_calibration(qnet, fp, batches, settings, log=lambda msg: None)
    return dict(fp=fp, qnet=qnet, before=before, fp_before=fp_before, report=report,
                l1_before=l1_before, l1_after=_held_out_l1(qnet, fp, held_out))


def test_pac_lowers_held_out_l1(pac_run):
    assert pac_run['l1_after'] < 0.95 * pac_run['l1_before']


def test_pac_changes_only_bounds(pac_run):
    qnet, before = pac_run['qnet'], pac_run['before']
    changed = {kind: 0 for kind in ('input_quant', 'weight_quant')}
    for name, p in qnet.parameters_and_names():
        if '_quant.' in name:
            changed[name.split('.')[-2]] += int(not np.array_equal(p.asnumpy(), before[name]))
        else:
            np.testing.assert_array_equal(p.asnumpy(), before[name], err_msg=name)
        assert p.requires_grad, f'{name} left frozen after PaC'
    assert changed == {'input_quant': 16, 'weight_quant': 16}  # every lower and upper of the 8 convs moved
    for name, p in pac_run['fp'].parameters_and_names():
        np.testing.assert_array_equal(p.asnumpy(), pac_run['fp_before'][name], err_msg=name)


def test_pac_report(pac_run):
    report = pac_run['report']
    assert set(report) == {'act', 'weight'}
    for kind in ('act', 'weight'):
        assert len(report[kind]['l1']) == len(report[kind]['fea']) == 20
        assert all(np.isfinite(report[kind]['l1'])) and min(report[kind]['l1']) > 0
        assert all(f >= 0 for f in report[kind]['fea'])


def test_pac_needs_two_phases_of_batches():
    fp = _fp_net(0)
    qnet = quantized_copy(fp, INFO, QuantSpec(4, 4))
    with pytest.raises(ValueError, match='needs 6 batches, got 5'):
        pixel_aware_calibration(qnet, fp, _images(np.random.default_rng(0), 5), PacSettings(iters=3))


def test_same_seed_same_bounds():
    runs = []
    for _ in range(2):
        fp, qnet, batches, _ = _calibrated_pair(5, 2)
        pixel_aware_calibration(qnet, fp, batches, PacSettings(iters=1, lr_act=(2.0, 1.0), lr_weight=(2e-3, 1e-3)),
                                log=lambda msg: None)
        runs.append(_bounds(qnet))
    assert list(runs[0]) == list(runs[1]) and len(runs[0]) == 32
    for name in runs[0]:
        np.testing.assert_array_equal(runs[0][name], runs[1][name], err_msg=name)


class _StopAt(Exception):
    pass


def _stop_after(phase, iteration):
    """A PaC log that interrupts the run once ``iteration`` of ``phase`` is done (log_every=1)."""
    def log(msg):
        if msg.startswith(f'PaC {phase} iter {iteration}/'):
            raise _StopAt
    return log


@pytest.mark.parametrize('phase, iteration', [('act', 2), ('weight', 1)])
def test_pac_resumes_to_the_uninterrupted_result(tmp_path, phase, iteration):
    settings = PacSettings(iters=3, lr_act=(2.0, 1.0), lr_weight=(2e-3, 1e-3), log_every=1)
    fp, qnet, batches, _ = _calibrated_pair(7, 6)
    whole = pixel_aware_calibration(qnet, fp, batches, settings, log=lambda msg: None)
    expected = _bounds(qnet)

    state = str(tmp_path / 'pac_state.npz')
    fp, qnet, batches, _ = _calibrated_pair(7, 6)
    with pytest.raises(_StopAt):
        pixel_aware_calibration(qnet, fp, batches, settings, log=_stop_after(phase, iteration), resume_file=state)
    fp, qnet, batches, _ = _calibrated_pair(7, 6)  # a new process: the starting bounds again
    messages = []
    resumed = pixel_aware_calibration(qnet, fp, batches, settings, log=messages.append, resume_file=state)
    done = iteration + (3 if phase == 'weight' else 0)
    assert messages[0] == f'PaC: resuming from {state} after {done} iterations'
    assert len([m for m in messages if m.startswith('PaC act iter')]) == (3 - iteration if phase == 'act' else 0)
    for kind in ('act', 'weight'):
        assert resumed[kind]['l1'] == whole[kind]['l1'] and resumed[kind]['fea'] == whole[kind]['fea']
    for name, value in _bounds(qnet).items():
        np.testing.assert_array_equal(value, expected[name], err_msg=name)


def test_pac_ignores_the_state_of_another_run(tmp_path):
    state = str(tmp_path / 'pac_state.npz')
    fp, qnet, batches, _ = _calibrated_pair(7, 2)
    pixel_aware_calibration(qnet, fp, batches, PacSettings(iters=1, lr_act=(2.0, 1.0)), log=lambda m: None,
                            resume_file=state)
    fp, qnet, batches, _ = _calibrated_pair(7, 2)
    messages = []
    report = pixel_aware_calibration(qnet, fp, batches, PacSettings(iters=1, lr_act=(1.0, 1.0)),
                                     log=messages.append, resume_file=state)
    assert messages[0].endswith('belongs to another calibration (settings, data or starting bounds differ); '
                                'starting over')
    assert len(report['act']['l1']) == len(report['weight']['l1']) == 1
    (tmp_path / 'pac_state.npz').write_bytes(b'not an npz')
    messages.clear()
    pixel_aware_calibration(qnet, fp, batches, PacSettings(iters=1), log=messages.append, resume_file=state)
    assert messages[0].startswith(f'PaC: ignoring unreadable resume file {state}')


# --- PaC options beyond the release (PTQ4SR+) --------------------------------------------------------
def test_joint_phase_trains_every_bound_on_every_batch():
    fp, qnet, batches, held_out = _calibrated_pair(1, 8)
    before = _bounds(qnet)
    l1_before = _held_out_l1(qnet, fp, held_out)
    settings = PacSettings(iters=4, lr_act=(0.05, 0.02), lr_weight=(0.05, 0.02), joint=True, relative_lr=True,
                           grad_scale=False)
    report = pixel_aware_calibration(qnet, fp, batches, settings, log=lambda msg: None)
    assert set(report) == {'all'} and len(report['all']['l1']) == 8
    after = _bounds(qnet)
    assert all(not np.array_equal(after[k], before[k]) for k in before)  # activations and weights moved together
    assert _held_out_l1(qnet, fp, held_out) < l1_before
    assert all(q.grad_scale == 1.0 for _, q in all_quantizers(qnet))


def test_relative_learning_rate_moves_each_bound_by_a_fraction_of_its_span():
    """With the gradient scale off the first Adam step is lr · g / (|g| + ε): relative to the span, no bound
    moves by more than lr · (u − l) of its own quantizer, and those whose |g| ≫ ε move by about that."""
    fp, qnet, batches, _ = _calibrated_pair(2, 2)
    lower0, upper0 = (np.array([q.bounds()[i] for _, q in input_quantizers(qnet)]) for i in (0, 1))
    settings = PacSettings(iters=1, lr_act=(1e-3, 1e-3), lr_weight=(0.0, 0.0), relative_lr=True, grad_scale=False)
    pixel_aware_calibration(qnet, fp, batches, settings, log=lambda msg: None)
    lower1, upper1 = (np.array([q.bounds()[i] for _, q in input_quantizers(qnet)]) for i in (0, 1))
    span = upper0 - lower0
    moved = np.concatenate([np.abs(lower1 - lower0), np.abs(upper1 - upper0)])
    step = 1e-3 * np.concatenate([span, span])
    assert np.all(moved <= step * (1 + 1e-4))
    assert np.sum(np.isclose(moved, step, rtol=2e-2)) >= 8  # spans differ 3.4x here: the steps follow them


def test_feature_loss_reaches_the_bounds_only_with_fea_grad():
    """The release detaches the features, so L_fea adds nothing to the bounds' gradients; with ``fea_grad``
    the gradient of L1 + w · L_fea is that of L1 plus w times that of L_fea (linearity), and L_fea's is not 0."""
    from src.calibration.pac import make_pac_step
    from src.quant.state import bound_parameters
    fp, qnet, batches, _ = _calibrated_pair(3, 1)
    params = bound_parameters(qnet, 'act') + bound_parameters(qnet, 'weight')

    def grads(fea_weight, fea_grad):
        step = make_pac_step(qnet, fp, params, PacSettings(fea_weight=fea_weight, fea_grad=fea_grad))
        return np.concatenate([g.asnumpy().ravel() for g in step(Tensor(batches[0]))[1]])

    l1_only = grads(0.0, True)
    np.testing.assert_allclose(grads(5.0, False), l1_only, rtol=1e-5, atol=1e-9)
    fea_only = grads(1.0, True) - l1_only
    assert np.abs(fea_only).max() > 1e-3 * np.abs(l1_only).max()
    np.testing.assert_allclose(grads(5.0, True) - l1_only, 5.0 * fea_only, rtol=1e-3, atol=1e-6 * np.abs(l1_only).max())
