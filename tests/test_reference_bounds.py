"""Our DBDC against the authors' released code (../shared/reference/bounds_x4_w4a4.json): EDSR-baseline ×4
W4A4, released schedule and crops, every conv input's bounds; and PaC's first L1 on those bounds.
(~3 minutes on 2 cores.)"""
import json

import numpy as np
import pytest

from model_utils.config import make_config
from src.calibration.bounds import apply_act_bounds, init_weight_bounds, observe_act_bounds
from src.calibration.pac import PacSettings, pixel_aware_calibration
from src.calibration.plan import plan_from_config
from src.calibration.runner import calibration_batches
from src.models.load import load_fp_net
from src.quant.convert import quantized_copy

# conv_last's input has 16·64·192² = 37.7 M elements per batch: torch.histc keeps its bin counts in float32,
# exact only up to 2^24, so the reference's counts (and so its peeled bins) are off by rounding there
# (measured 3.3e-4 / 1.6e-4 relative). In body.7.conv2 one batch's upper bin sits one bin apart (float noise
# in the activations at a bin edge): 1/30 of a bin width after the running mean, 3.1e-5 relative.
TOLERANCE = {'conv_last': 1e-3, 'body.7.conv2': 1e-4}
FLOAT_RTOL = 1e-6  # a few float32 ulps: the running mean of 30 batches in a different summation order


@pytest.fixture(scope='module')
def calibrated(shared_dir):
    reference = json.loads((shared_dir / 'reference' / 'bounds_x4_w4a4.json').read_text())
    fp, info = load_fp_net(str(shared_dir / 'models' / 'edsr_baseline_x4.pt'))
    config = make_config({'scale': 4, 'w_bit': 4, 'a_bit': 4, 'method': 'ptq4sr',
                          'calib_path': str(shared_dir / 'datasets' / 'train' / 'BSD200')})
    plan = plan_from_config(config, info.arch, 4)
    assert (plan.calib_batches, plan.calib_batch_size, plan.patch_size) == (30, 16, 48)  # the released schedule
    qnet = quantized_copy(fp, info, plan.spec)
    init_weight_bounds(qnet)
    batches = calibration_batches(plan, 4, plan.calib_batches, plan.calib_batch_size, plan.seed)
    bounds = observe_act_bounds(qnet, batches, plan.observer, ('dbdc',))['dbdc']
    apply_act_bounds(qnet, bounds)
    return reference, bounds, qnet, fp, plan


@pytest.mark.slow
def test_dbdc_bounds_match_the_released_code(calibrated):
    reference, bounds, _, _, _ = calibrated
    expected = reference['act_bounds']['dbdc']
    assert sorted(bounds) == sorted(expected) and len(bounds) == 37
    for layer, (lower, upper) in expected.items():
        np.testing.assert_allclose(bounds[layer], (lower, upper), rtol=TOLERANCE.get(layer, FLOAT_RTOL), atol=1e-6,
                                   err_msg=layer)
    exact = [layer for layer in expected if np.allclose(bounds[layer], expected[layer], rtol=FLOAT_RTOL, atol=1e-6)]
    assert len(exact) == 35


@pytest.mark.slow
def test_first_pac_iteration_l1_matches_the_released_code(calibrated):
    """The first PaC loss is the quantized network's L1 to the FP output on the first PaC batch, before any
    update: it checks the whole quantized forward (weights and DBDC bounds) against the reference.

    Measured: 0.028792 here, 0.028918 in the reference (0.4 % apart; with the reference's own DBDC bounds
    loaded our forward gives 0.028717, 0.7 % apart, so the gap is in the forward arithmetic, not DBDC).
    The cause is not identified; the PSNR of every shared cell agrees within 0.023 dB."""
    reference, _, qnet, fp, plan = calibrated
    batches = calibration_batches(plan, 4, 2, plan.pac_batch_size, plan.pac_seed)
    report = pixel_aware_calibration(qnet, fp, batches, PacSettings(iters=1), log=lambda m: None)
    first_act_l1 = reference['pac_loss_out_first_last']['x'][0]
    assert report['act']['l1'][0] == pytest.approx(first_act_l1, rel=1e-2)
