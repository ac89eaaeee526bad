"""Calibrate a quantized SR network from unlabeled LR images and save it (PTQ4SR: DBDC + PaC).

    python calibrate.py --pre_trained edsr_baseline_x4.pt --scale 4 --w_bit 4 --a_bit 4 --method ptq4sr \
        --calib_path ../shared/datasets/train/BSD200 --num_calib_images 100 --output_path ./output
"""
import os
import sys
import time

from model_utils.config import get_config
from model_utils.moxing_adapter import moxing_wrapper
from src.calibration.bounds import ObserverSettings
from src.calibration.pac import PacSettings
from src.errors import UserError
from src.pipeline import CalibrationPlan, calibrate, load_fp_net, save_quant_checkpoint
from src.quant.convert import QuantSpec
from src.utils import init_env, prepare_output_folder, remove_if_present, run_cli, set_seed, write_json_atomic


def plan_from_config(config, scale):
    """Config → CalibrationPlan, with the released per-scale defaults filled in."""
    iters = config.pac_iters or (250 if scale == 4 else 500)
    batches = config.calib_batches or (10 if (scale, config.w_bit, config.a_bit) == (4, 8, 8) else 30)
    return CalibrationPlan(
        method=config.method,
        spec=QuantSpec(config.w_bit, config.a_bit, tuple(config.int8_scope), tuple(config.fp_scope)),
        calib_path=config.calib_path, num_calib_images=config.num_calib_images,
        patch_size=config.patch_size or 192 // scale, seed=config.seed,
        calib_batches=batches, calib_batch_size=config.calib_batch_size,
        observer=ObserverSettings(config.method, config.dbdc_p, config.dbdc_p_8bit, config.dbdc_bins,
                                  config.dbdc_lower_edge, config.percentile_p),
        pac=PacSettings(iters, tuple(config.pac_lr_act), tuple(config.pac_lr_weight), config.pac_fea_weight,
                        config.pac_fea_grad, config.pac_log_every),
        pac_batch_size=config.pac_batch_size, pac_seed=config.pac_seed)


def quant_ckpt_path(config, info):
    name = f'{info.arch}_x{info.scale}_w{config.w_bit}a{config.a_bit}_{config.method}.ckpt'
    return os.path.join(config.output_path, name)


def pac_resume_path(config, info):
    """Where PaC keeps its progress: rerunning the same command after an interruption continues from it."""
    return os.path.splitext(quant_ckpt_path(config, info))[0] + '_pac_state.npz'


def run_calibrate(config):
    if config.method == 'fp':
        raise UserError('--method fp has nothing to calibrate: choose minmax, percentile, dbdc or ptq4sr')
    prepare_output_folder(config.output_path)
    init_env(config.device_target, config.device_id)
    set_seed(config.seed)
    fp_net, info = load_fp_net(config.pre_trained, config.arch, config.scale)
    plan = plan_from_config(config, info.scale)
    print(f'calibrating {info.describe()} W{config.w_bit}A{config.a_bit} with {config.method} '
          f'({plan.calib_batches}×{plan.calib_batch_size} patches of {plan.patch_size} px)', flush=True)
    resume_file = pac_resume_path(config, info)
    qnet, report = calibrate(fp_net, info, plan, pac_resume_file=resume_file)
    path = quant_ckpt_path(config, info)
    save_quant_checkpoint(qnet, info, plan, path, {'timings': report['timings']})
    write_json_atomic(os.path.splitext(path)[0] + '_report.json', report)
    remove_if_present(resume_file)
    print(f"saved {path}; timings {report['timings']}")
    return path


def main(argv=None):
    def body():
        config = get_config(argv, description=__doc__.splitlines()[0])
        start = time.time()
        moxing_wrapper(config)(run_calibrate)(config)
        print(f'done in {time.time() - start:.0f} s')
    return run_cli(body, 'no checkpoint was written (an earlier one, if any, is unchanged)')


if __name__ == '__main__':
    sys.exit(main())
