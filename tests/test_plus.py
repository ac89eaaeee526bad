"""PTQ4SR+ (--method ptq4sr_plus): the recipe reaches the plan, explicit flags win, and it never rides
on another method's calibration pass."""
import pytest

from model_utils.config import make_config
from src.calibration.plan import plan_from_config
from src.calibration.plus import PAC_ITERS_FACTOR, RECIPE
from src.calibration.runner import calibrate_methods


def test_recipe_fills_the_plan():
    plan = plan_from_config(make_config({'method': 'ptq4sr_plus', 'w_bit': 4, 'a_bit': 4}), 'edsr_baseline', 4)
    assert plan.method == 'ptq4sr_plus' and plan.weight_bounds == RECIPE['weight_bounds']
    assert plan.observer.dbdc_p == RECIPE['dbdc_p']
    assert (plan.pac.joint, plan.pac.relative_lr, plan.pac.grad_scale, plan.pac.fea_grad) == (
        RECIPE['pac_joint'], RECIPE['pac_relative_lr'], RECIPE['pac_grad_scale'], RECIPE['pac_fea_grad'])
    assert plan.pac.lr_act == tuple(RECIPE['pac_lr_act']) and plan.pac.lr_weight == tuple(RECIPE['pac_lr_weight'])
    assert plan.pac.iters == PAC_ITERS_FACTOR * 250  # per released x4 phase; the joint phase runs 2 × iters
    released = plan_from_config(make_config({'method': 'ptq4sr', 'w_bit': 4, 'a_bit': 4}), 'edsr_baseline', 4)
    assert (released.weight_bounds, released.observer.dbdc_p, released.pac.joint) == ('minmax', 1e-4, False)


def test_explicit_flags_override_the_recipe():
    config = make_config({'method': 'ptq4sr_plus', 'w_bit': 4, 'a_bit': 4, 'dbdc_p': 2e-4, 'pac_iters': 7,
                          'weight_bounds': 'minmax'})
    plan = plan_from_config(config, 'msrresnet', 2)
    assert (plan.observer.dbdc_p, plan.pac.iters, plan.weight_bounds) == (2e-4, 7, 'minmax')
    assert plan.pac.joint is RECIPE['pac_joint']


def test_ptq4sr_plus_is_calibrated_alone(files):
    from src.models.load import load_fp_net
    fp, info = load_fp_net(files['ckpt'])
    plan = plan_from_config(make_config({'method': 'ptq4sr_plus', 'w_bit': 4, 'a_bit': 4}), info.arch, 2)
    with pytest.raises(ValueError, match='calibrate it alone'):
        calibrate_methods(fp, info, plan, ('dbdc', 'ptq4sr_plus'))
