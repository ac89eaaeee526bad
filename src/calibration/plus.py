"""PTQ4SR+ (``--method ptq4sr_plus``): this project's calibration recipe beyond the release.

The same quantizer as PTQ4SR (uniform, affine, per-output-channel weights, per-tensor activations, the
same bit map), so a PTQ4SR+ checkpoint exports to integer inference like any other. What changes is how
the bounds are set and, where it pays, how weights are rounded onto their grid. Every value was chosen on
a validation split that is no benchmark: the LR/HR pairs of BSD200 images 101–200 (``--dataset
'BSD200[100:]'``), EDSR-baseline ×4, and ×2 for what BY_SCALE changes; calibration uses images 1–100, as
always. Explicit flags override any entry.
"""

# config key -> value at every bit width; see scripts/ablation_plus.py for what each entry adds
RECIPE = {
    'pac_grad_scale': False,     # no LSQ scale: Adam's ε no longer swamps the bound gradients
    'pac_relative_lr': True,     # each bound moves by a fraction of its own quantizer's span
    'pac_lr_act': [1e-3, 1e-4],
    'pac_lr_weight': [1e-3, 1e-4],
    'pac_joint': True,           # activation and weight bounds trained together
    'pac_fea_grad': True,        # the attention feature loss drives gradients too
}
# learned weight rounding (src/calibration/adaround.py) where it is on: steps per layer, as many as fit the time
# budget (PTQ4SR+ within 2x the released PTQ4SR's calibration time)
ADAROUND_ITERS = 300
# what depends on the bit width (min(w_bit, a_bit)), with the validation dB that chose it (DBDC alone). A width
# not listed takes the nearest listed one below it (the lowest listed one below 4): 8 bits were not validated.
BY_BITS = {
    # p: 1e-4 26.56, 2e-4 26.65, 5e-4 26.88, 1e-3 26.89, 2e-3 26.92, 5e-3 26.82; MSE weights at 2e-3: 26.98;
    # after PaC+ (27.240), learned weight rounding: 27.314
    4: {'dbdc_p': 2e-3, 'weight_bounds': 'mse', 'adaround_iters': ADAROUND_ITERS},
    # p: 2e-5 27.854, 5e-5 27.860, 1e-4 27.851, 2e-4 27.833, 5e-4 27.771, 2e-3 27.507; MSE weights at 5e-5: 27.851;
    # after PaC+ (27.884), learned weight rounding: 27.883
    6: {'dbdc_p': 5e-5, 'weight_bounds': 'minmax', 'adaround_iters': 0},
}
# what depends on the scale, over BY_BITS, with the validation dB that chose it (EDSR-baseline ×2 W4A4, BSD200
# 101–200 at ×2): after PaC+ 31.393, learned weight rounding 31.235. A scale not listed takes the ×4 values
# (×3 was not validated).
BY_SCALE = {2: {'adaround_iters': 0}}
# the joint phase runs 2 × pac_iters: with 1, the released PaC's iterations (activation + weight phase) in
# one phase, so PaC+ costs what the released PaC costs
PAC_ITERS_FACTOR = 1


def recipe(bits, scale=4):
    """The recipe at ``bits`` and ``scale`` (config key -> value)."""
    width = max((b for b in BY_BITS if b <= bits), default=min(BY_BITS))
    return {**RECIPE, **BY_BITS[width], **BY_SCALE.get(scale, {})}


def with_recipe(values, explicit, released_pac_iters, scale):
    """``values`` (config key -> value) with the recipe filled in wherever the user set nothing."""
    chosen = recipe(min(values['w_bit'], values['a_bit']), scale)
    out = {**values, **{k: v for k, v in chosen.items() if k not in explicit}}
    if 'pac_iters' not in explicit or not values['pac_iters']:
        out['pac_iters'] = PAC_ITERS_FACTOR * released_pac_iters
    return out
