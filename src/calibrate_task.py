"""What ``calibrate.py`` does with a validated config: calibrate a quantized copy of the FP network and
save it as a quantized checkpoint (plus a JSON report of bounds, PaC losses and stage timings)."""
import os

from src.calibration.plan import pac_resume_path, plan_from_config, quant_checkpoint_path
from src.calibration.runner import calibrate
from src.errors import UserError
from src.files import prepare_output_folder, remove_if_present, write_json_atomic
from src.models.load import load_fp_net
from src.quant.checkpoint import save_quant_checkpoint
from src.runtime import init_env, set_seed


def run_calibrate(config):
    """Returns the path of the written checkpoint."""
    if config.method == 'fp':
        raise UserError('--method fp has nothing to calibrate: choose minmax, percentile, dbdc or ptq4sr')
    prepare_output_folder(config.output_path)
    init_env(config.device_target, config.device_id, config.num_threads)
    set_seed(config.seed)
    fp_net, info = load_fp_net(config.pre_trained, config.arch, config.scale)
    plan = plan_from_config(config, info.arch, info.scale)
    grid = ' on the integer grid (int_zero_point)' if config.int_zero_point else ''
    print(f'calibrating {info.describe()} W{config.w_bit}A{config.a_bit} with {config.method}{grid} '
          f'({plan.calib_batches}×{plan.calib_batch_size} patches of {plan.patch_size} px'
          + (f', PaC {plan.pac.iters} + {plan.pac.iters} iterations' if config.method == 'ptq4sr' else '') + ')',
          flush=True)
    path = quant_checkpoint_path(config.output_path, info.arch, info.scale, config.w_bit, config.a_bit, config.method,
                                 config.int_zero_point)
    resume_file = pac_resume_path(path)
    qnet, report = calibrate(fp_net, info, plan, pac_resume_file=resume_file)
    save_quant_checkpoint(qnet, info, plan, path, {'timings': report['timings']})
    write_json_atomic(os.path.splitext(path)[0] + '_report.json', report)
    remove_if_present(resume_file)
    print(f"saved {path}; timings {report['timings']}")
    return path
