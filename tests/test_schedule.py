"""The released schedule: one test per official config (options/ptq/{EDSR,SRResNet}/*.yml of the release),
resolved through the same config → plan path that calibrate.py uses."""
import re

import pytest

from model_utils.config import DEFAULT_CONFIG, make_config
from src.calibration.plan import plan_from_config
from src.calibration.schedule import RELEASED, released_schedule
from src.quant.convert import RELEASED_INT8_SCOPE

# q_config and dataset values as written in the 12 released files (calib_iter, paq_a_opt_iter = paq_w_opt_iter,
# int8_scope); every file also has gt_size 192, batch 16 (DBDC) / 2 (PaC), opt_a_lr [5e-3, 2e-3],
# opt_w_lr [5e-6, 2e-6], FP_scope [], per_channel true, manual_seed 0.
RELEASED_CONFIGS = {
    'test_EDSR_Lx2_ptq_w4a4.yml': ('edsr', 2, 4, 30, 500, ['conv_first', 'conv_last']),
    'test_EDSR_Lx2_ptq_w6a6.yml': ('edsr', 2, 6, 30, 500, ['conv_first', 'conv_last']),
    'test_EDSR_Lx2_ptq_w8a8.yml': ('edsr', 2, 8, 30, 500, []),
    'test_EDSR_Lx4_ptq_w4a4.yml': ('edsr', 4, 4, 30, 250, ['conv_first', 'conv_last']),
    'test_EDSR_Lx4_ptq_w6a6.yml': ('edsr', 4, 6, 30, 250, ['conv_first', 'conv_last']),
    'test_EDSR_Lx4_ptq_w8a8.yml': ('edsr', 4, 8, 10, 250, []),
    'test_MSRResNet_x2_ptq_w4a4.yml': ('msrresnet', 2, 4, 30, 250, ['conv_first', 'conv_last']),
    'test_MSRResNet_x2_ptq_w6a6.yml': ('msrresnet', 2, 6, 30, 250, ['conv_first', 'conv_last']),
    'test_MSRResNet_x2_ptq_w8a8.yml': ('msrresnet', 2, 8, 30, 250, []),
    'test_MSRResNet_x4_ptq_w4a4.yml': ('msrresnet', 4, 4, 30, 250, ['conv_first', 'conv_last']),
    'test_MSRResNet_x4_ptq_w6a6.yml': ('msrresnet', 4, 6, 30, 250, ['conv_first', 'conv_last']),
    'test_MSRResNet_x4_ptq_w8a8.yml': ('msrresnet', 4, 8, 30, 250, []),
}
LAYERS = {'edsr': ['conv_first', 'body.0.conv1', 'body.31.conv2', 'conv_after_body', 'upsample.0', 'conv_last'],
          'msrresnet': ['conv_first', 'body.0.conv1', 'body.15.conv2', 'upconv1', 'upconv2', 'conv_hr', 'conv_last']}


def released_bits(layer, bits, int8_scope):
    """The release's Quant_Conv2d: FP_scope (empty) first, then int8_scope, else the global bits."""
    return (8, 8) if any(s in layer for s in int8_scope) else (bits, bits)


@pytest.mark.parametrize('name', sorted(RELEASED_CONFIGS))
def test_defaults_follow_the_released_config(name):
    arch, scale, bits, calib_iter, paq_iters, int8_scope = RELEASED_CONFIGS[name]
    plan = plan_from_config(make_config({'scale': scale, 'w_bit': bits, 'a_bit': bits, 'method': 'ptq4sr'}),
                            arch, scale)
    assert released_schedule(arch, scale, bits, bits).source == name
    assert (plan.calib_batches, plan.pac.iters) == (calib_iter, paq_iters)
    assert (plan.patch_size, plan.calib_batch_size, plan.pac_batch_size) == (192 // scale, 16, 2)
    assert (plan.pac.lr_act, plan.pac.lr_weight, plan.seed) == ((5e-3, 2e-3), (5e-6, 2e-6), 0)
    assert plan.spec.fp_scope == ()
    for layer in LAYERS[arch]:
        assert plan.spec.bits_for(layer) == released_bits(layer, bits, int8_scope), layer
    # the quantizer's own p (the config's 'percentile' key is read by nothing in the release)
    assert (plan.observer.dbdc_p, plan.observer.dbdc_p_8bit) == (1e-4, 1e-5)


def test_edsr_baseline_uses_the_edsr_schedule_and_explicit_values_win():
    for scale, bits in ((2, 4), (4, 8), (4, 6)):
        assert released_schedule('edsr_baseline', scale, bits, bits) == released_schedule('edsr', scale, bits, bits)
    plan = plan_from_config(make_config({'w_bit': 4, 'a_bit': 4, 'method': 'dbdc', 'calib_batches': 7,
                                         'pac_iters': 9}), 'msrresnet', 4)
    assert (plan.calib_batches, plan.pac.iters) == (7, 9)


def test_unreleased_settings_say_so_and_take_the_nearest_schedule():
    s = released_schedule('edsr_baseline', 3, 4, 4)
    assert (s.calib_batches, s.pac_iters) == (30, 500) and s.source.startswith('not released')
    s = released_schedule('msrresnet', 4, 5, 5)
    assert (s.calib_batches, s.pac_iters) == (30, 250) and s.source.startswith('not released')
    assert released_schedule('edsr', 4, 32, 4).source == 'test_EDSR_Lx4_ptq_w4a4.yml'  # 32 = that side off


def test_yaml_documents_the_table_and_the_int8_scope():
    """The comment table in DIV2K_config.yaml is the one in src/calibration/schedule.py, and the YAML's
    int8_scope default is RELEASED_INT8_SCOPE."""
    text = open(DEFAULT_CONFIG, encoding='utf-8').read()
    documented = {}
    for family, scale, cells in re.findall(r'^#\s+(EDSR|MSRResNet)\s+x(\d)\s+(.*)$', text, re.M):
        for bits, (batches, iters) in zip((4, 6, 8), re.findall(r'(\d+) / (\d+)', cells)):
            documented[(family, int(scale), bits)] = (int(batches), int(iters))
    assert documented == RELEASED
    assert tuple(make_config().int8_scope) == RELEASED_INT8_SCOPE
