"""The released calibration schedule of each (architecture, scale, bit width): the one table of defaults.

Transcribed from the 12 configs of the official release (``options/ptq/{EDSR,SRResNet}/*.yml``, q_config
keys ``calib_iter`` and ``paq_a_opt_iter`` = ``paq_w_opt_iter``). Every config shares the rest: DBDC batches
of 16 LR crops of 192/scale px, PaC batches of 2, ``opt_a_lr`` [5e-3, 2e-3], ``opt_w_lr`` [5e-6, 2e-6],
``int8_scope`` ['conv_first', 'conv_last'] below W8A8 (``RELEASED_INT8_SCOPE``) ([] at W8A8, where it changes nothing), seed 0.

Two q_config keys are read by nothing in the release and so are not here: ``percentile`` (5e-4 / 1e-4 /
1e-5 at W4A4 / W6A6 / W8A8; the quantizer uses its own 1e-4, and 1e-5 at 8 bit) and ``weight_clip``
(1e-4 in the SRResNet configs; passed only to per-tensor weight quantizers, and every config is per-channel).

EDSR-baseline has no released config; the reference run used EDSR's, and so do we. Scale 3 and bit widths
other than 4 / 6 / 8 have none either: they take the ×2 schedule and 30 DBDC batches.
"""
from dataclasses import dataclass

FAMILIES = {'edsr': 'EDSR', 'edsr_baseline': 'EDSR', 'msrresnet': 'MSRResNet'}


@dataclass(frozen=True)
class Schedule:
    calib_batches: int  # DBDC / MinMax / Percentile batches (calib_iter)
    pac_iters: int      # PaC iterations per phase (paq_a_opt_iter = paq_w_opt_iter)
    source: str         # the released config it comes from, or why there is none


# (family, scale, bits) -> (calib_iter, PaC iterations per phase)
RELEASED = {
    ('EDSR', 2, 4): (30, 500), ('EDSR', 2, 6): (30, 500), ('EDSR', 2, 8): (30, 500),
    ('EDSR', 4, 4): (30, 250), ('EDSR', 4, 6): (30, 250), ('EDSR', 4, 8): (10, 250),
    ('MSRResNet', 2, 4): (30, 250), ('MSRResNet', 2, 6): (30, 250), ('MSRResNet', 2, 8): (30, 250),
    ('MSRResNet', 4, 4): (30, 250), ('MSRResNet', 4, 6): (30, 250), ('MSRResNet', 4, 8): (30, 250),
}


def config_name(family, scale, bits):
    """File name of the released config, e.g. test_EDSR_Lx4_ptq_w4a4.yml."""
    model = 'EDSR_L' if family == 'EDSR' else 'MSRResNet_'
    return f'test_{model}x{scale}_ptq_w{bits}a{bits}.yml'


def released_schedule(arch, scale, w_bit, a_bit):
    """The schedule for ``arch`` ×``scale`` at W``w_bit``A``a_bit`` (32 = not quantized)."""
    family = FAMILIES[arch]
    bits = min(w_bit, a_bit)
    if (family, scale, bits) in RELEASED and w_bit in (bits, 32) and a_bit in (bits, 32):
        return Schedule(*RELEASED[(family, scale, bits)], config_name(family, scale, bits))
    _, pac_iters = RELEASED[(family, 2 if scale == 3 else scale, 4)]
    return Schedule(30, pac_iters, f'not released for {family} x{scale} W{w_bit}A{a_bit}: '
                                   f'{config_name(family, 2 if scale == 3 else scale, 4)} with 30 DBDC batches')
