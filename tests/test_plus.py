"""PTQ4SR+ (--method ptq4sr_plus): the recipe reaches the plan, explicit flags win, and it never rides
on another method's calibration pass."""
import pytest

from model_utils.config import make_config
from src.calibration.plan import plan_from_config
from src.calibration.plus import ADAROUND_ITERS, PAC_ITERS_FACTOR, RECIPE, recipe
from src.calibration.runner import calibrate_methods


def test_recipe_fills_the_plan():
    plan = plan_from_config(make_config({'method': 'ptq4sr_plus', 'w_bit': 4, 'a_bit': 4}), 'edsr_baseline', 4)
    assert plan.method == 'ptq4sr_plus' and plan.weight_bounds == recipe(4)['weight_bounds'] == 'mse'
    assert plan.observer.dbdc_p == recipe(4)['dbdc_p'] == 2e-3
    assert (plan.pac.joint, plan.pac.relative_lr, plan.pac.grad_scale, plan.pac.fea_grad) == (
        RECIPE['pac_joint'], RECIPE['pac_relative_lr'], RECIPE['pac_grad_scale'], RECIPE['pac_fea_grad'])
    assert plan.pac.lr_act == tuple(RECIPE['pac_lr_act']) and plan.pac.lr_weight == tuple(RECIPE['pac_lr_weight'])
    assert plan.pac.iters == PAC_ITERS_FACTOR * 250  # per released x4 phase; the joint phase runs 2 × iters
    released = plan_from_config(make_config({'method': 'ptq4sr', 'w_bit': 4, 'a_bit': 4}), 'edsr_baseline', 4)
    assert (released.weight_bounds, released.observer.dbdc_p, released.pac.joint) == ('minmax', 1e-4, False)
    # learned weight rounding: on at 4 bits, where validation kept it; the release rounds to nearest
    assert plan.adaround.iters == ADAROUND_ITERS > 0 and released.adaround.iters == 0


@pytest.mark.parametrize('scale, rounds', [(2, False), (3, True), (4, True)])
def test_learned_rounding_follows_the_scale_validation_chose(scale, rounds):
    plan = plan_from_config(make_config({'method': 'ptq4sr_plus', 'w_bit': 4, 'a_bit': 4, 'scale': 4}),
                            'edsr_baseline', scale)  # the network's scale decides, not the config's default
    assert (plan.adaround.iters > 0) is rounds
    assert plan.observer.dbdc_p == recipe(4)['dbdc_p']  # everything else as at x4
    explicit = make_config({'method': 'ptq4sr_plus', 'w_bit': 4, 'a_bit': 4, 'adaround_iters': 5})
    assert plan_from_config(explicit, 'edsr_baseline', scale).adaround.iters == 5


@pytest.mark.parametrize('bits, validated', [(2, 4), (3, 4), (4, 4), (5, 4), (6, 6), (8, 6)])
def test_each_bit_width_takes_the_nearest_validated_width_below(bits, validated):
    plan = plan_from_config(make_config({'method': 'ptq4sr_plus', 'w_bit': bits, 'a_bit': bits}), 'edsr_baseline', 4)
    chosen = recipe(validated)
    assert (plan.observer.dbdc_p, plan.weight_bounds) == (chosen['dbdc_p'], chosen['weight_bounds'])
    assert recipe(6)['dbdc_p'] < 1e-4 < recipe(4)['dbdc_p']  # wider grids clip less (validation)
    mixed = plan_from_config(make_config({'method': 'ptq4sr_plus', 'w_bit': 6, 'a_bit': 4}), 'edsr_baseline', 4)
    assert mixed.observer.dbdc_p == recipe(4)['dbdc_p']  # the narrower of the two decides


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


def _ablation_script():
    import importlib.util
    import os
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'scripts', 'ablation_plus.py')
    spec = importlib.util.spec_from_file_location('ablation_plus', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_ablation_rows_follow_the_recipe_of_the_bit_width():
    ablation = _ablation_script()
    assert [r[0] for r in ablation.rows(4)] == ['fp', 'ptq4sr', 'p', 'mse', 'plus', 'adaround']
    assert [r[0] for r in ablation.rows(6)] == ['fp', 'ptq4sr', 'p', 'plus', 'adaround']  # validation kept min/max weights
    assert ablation.rows(6)[2][2] == [f"dbdc_p={recipe(6)['dbdc_p']}"]
    assert 'not kept' in ablation.rows(4, scale=2)[-1][3] and 'not kept' not in ablation.rows(4)[-1][3]


def test_ablation_table_reads_the_cached_rows_with_gaps_to_fp(tmp_path):
    import json
    ablation = _ablation_script()
    args = ablation.parse_args(['--scale', '4', '--bits', '6', '--out', str(tmp_path)])
    for row, method, psnr in (('fp', 'fp', 28.0), ('p', 'ptq4sr', 27.5)):
        cells = tmp_path / 'x4_w6a6' / row / 'cells'
        cells.mkdir(parents=True)
        results = {s: {'psnr': psnr - 0.1 * i} for i, s in enumerate(ablation.SETS)}
        (cells / f'edsr_baseline_x4_w6a6_{method}.json').write_text(json.dumps({'results': results}))
    lines = ablation.table(args).splitlines()
    assert lines[-5] == '| FP | 28.000 | 27.900 | 27.800 | 27.700 |'
    assert lines[-4] == '| PTQ4SR as released | – | – | – | – |'
    assert lines[-3] == (f"| + DBDC p = {recipe(6)['dbdc_p']:g} | 27.500 (-0.50) | 27.400 (-0.50) | 27.300 (-0.50) | "
                         '27.200 (-0.50) |')
