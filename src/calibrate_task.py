"""What ``calibrate.py`` does with a validated config: calibrate a quantized copy of the FP network and
save it as a quantized checkpoint (plus a JSON report of bounds, PaC losses and stage timings)."""
import os

from src.calibration.plan import PAC_METHODS, pac_resume_path, plan_from_config, quant_checkpoint_path
from src.calibration.runner import calibrate
from src.errors import UserError
from src.files import prepare_output_folder, remove_if_present, write_json_atomic
from src.models.load import load_fp_net
from src.quant.checkpoint import save_quant_checkpoint
from src.runtime import init_env, set_seed


def pac_schedule(pac):
    return (f', PaC {2 * pac.iters} iterations on all bounds' if pac.joint
            else f', PaC {pac.iters} + {pac.iters} iterations')


def run_calibrate(config):
    """Returns the path of the checkpoint (with --run_distribute: the msrun workers calibrate together
    and rank 0 writes it)."""
    if config.method == 'fp':
        raise UserError('--method fp has nothing to calibrate: choose minmax, percentile, dbdc or ptq4sr')
    if config.amp_level != 'O0':
        raise UserError(f'--amp_level {config.amp_level} applies to evaluation (eval.py): calibration always runs '
                        'in float32, so drop --amp_level here')
    prepare_output_folder(config.output_path)
    world = init_env(config.device_target, config.device_id, config.num_threads, config.run_distribute)
    set_seed(config.seed)
    fp_net, info = load_fp_net(config.pre_trained, config.arch, config.scale)
    plan = plan_from_config(config, info.arch, info.scale)
    grid = ' on the integer grid (int_zero_point)' if config.int_zero_point else ''
    world.log(f'calibrating {info.describe()} W{config.w_bit}A{config.a_bit} with {config.method}{grid} '
              f'({plan.calib_batches}×{plan.calib_batch_size} patches of {plan.patch_size} px'
              + (pac_schedule(plan.pac) if config.method in PAC_METHODS else '')
              + (f', learned rounding {plan.adaround.iters} steps per layer' if plan.adaround.iters else '')
              + (f', {world.size} workers' if world.size > 1 else '') + ')')
    path = quant_checkpoint_path(config.output_path, info.arch, info.scale, config.w_bit, config.a_bit, config.method,
                                 config.int_zero_point)
    resume_file = pac_resume_path(path)
    qnet, report = calibrate(fp_net, info, plan, world.log, resume_file, world)
    if world.is_main:
        save_quant_checkpoint(qnet, info, plan, path, {'timings': report['timings']})
        write_json_atomic(os.path.splitext(path)[0] + '_report.json', report)
        remove_if_present(resume_file)
        print(f"saved {path}; timings {report['timings']}")
    return path
