"""What a calibration run does, resolved once from the validated config: ``CalibrationPlan``."""
import os
from dataclasses import dataclass, field
from types import SimpleNamespace

from src.calibration.adaround import AdaRoundSettings
from src.calibration.bounds import ObserverSettings
from src.calibration.pac import PacSettings
from src.calibration.plus import with_recipe
from src.calibration.schedule import released_schedule
from src.quant.convert import QuantSpec

METHODS = ('minmax', 'percentile', 'dbdc', 'ptq4sr', 'ptq4sr_plus')  # calibration methods; 'fp' means none
PAC_METHODS = ('ptq4sr', 'ptq4sr_plus')  # DBDC bounds, then PaC


def observed_as(method):
    """The statistics a method's activation bounds start from."""
    return 'dbdc' if method in PAC_METHODS else method


@dataclass(frozen=True)
class CalibrationPlan:
    """Everything a calibration run needs (no zeros meaning 'default': those are resolved here)."""
    method: str
    spec: QuantSpec
    calib_path: str
    num_calib_images: int
    patch_size: int
    seed: int
    calib_batches: int
    calib_batch_size: int
    observer: ObserverSettings
    pac: PacSettings = field(default_factory=PacSettings)
    weight_bounds: str = 'minmax'  # released; 'mse' (PTQ4SR+)
    pac_batch_size: int = 2
    pac_seed: int = 1
    adaround: AdaRoundSettings = field(default_factory=lambda: AdaRoundSettings(iters=0))  # iters 0: off


def plan_from_config(config, arch, scale):
    """Config → CalibrationPlan; zero batch / iteration counts take the released schedule of ``arch``,
    and ``ptq4sr_plus`` takes PTQ4SR+'s recipe for every key the user did not set."""
    schedule = released_schedule(arch, scale, config.w_bit, config.a_bit)
    if config.method == 'ptq4sr_plus':
        config = SimpleNamespace(**with_recipe(config.to_dict(), config.explicit, schedule.pac_iters, scale))
    return CalibrationPlan(
        method=config.method,
        spec=QuantSpec(config.w_bit, config.a_bit, tuple(config.int8_scope), tuple(config.fp_scope),
                       config.int_zero_point),
        calib_path=config.calib_path, num_calib_images=config.num_calib_images,
        patch_size=config.patch_size or 192 // scale, seed=config.seed,
        calib_batches=config.calib_batches or schedule.calib_batches, calib_batch_size=config.calib_batch_size,
        observer=ObserverSettings(config.method, config.dbdc_p, config.dbdc_p_8bit, config.dbdc_bins,
                                  config.dbdc_lower_edge, config.percentile_p),
        pac=PacSettings(config.pac_iters or schedule.pac_iters, tuple(config.pac_lr_act),
                        tuple(config.pac_lr_weight), config.pac_fea_weight, config.pac_fea_grad,
                        config.pac_log_every, config.pac_joint, config.pac_relative_lr, config.pac_grad_scale),
        pac_batch_size=config.pac_batch_size, pac_seed=config.pac_seed, weight_bounds=config.weight_bounds,
        adaround=AdaRoundSettings(iters=config.adaround_iters))


def quant_checkpoint_path(output_path, arch, scale, w_bit, a_bit, method, int_zero_point=False):
    """Where calibrate.py writes its result: <output_path>/<arch>_x<s>_w<w>a<a>_<method>[_intzp].ckpt."""
    suffix = '_intzp' if int_zero_point else ''
    return os.path.join(output_path, f'{arch}_x{scale}_w{w_bit}a{a_bit}_{method}{suffix}.ckpt')


def pac_resume_path(checkpoint_path):
    """Where PaC keeps its progress: rerunning the same command after an interruption continues from it."""
    return os.path.splitext(checkpoint_path)[0] + '_pac_state.npz'
