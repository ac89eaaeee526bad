"""What ``eval.py`` does with a validated config: build the network to score (full precision, calibrated
now, or loaded quantized), evaluate it on the test sets, print the table and write the results JSON."""
import os
import time

from src.calibration.plan import PAC_METHODS, pac_resume_path, plan_from_config, quant_checkpoint_path
from src.calibration.runner import calibrate
from src.distributed import LOCAL
from src.errors import UserError
from src.evaluate import InferenceSettings, evaluate, format_table, open_sets
from src.files import prepare_output_folder, remove_if_present, write_json_atomic
from src.models.load import load_fp_net
from src.precision import apply_amp
from src.quant.checkpoint import load_quant_checkpoint
from src.results import RunInfo, results_record, run_info_from_meta
from src.runtime import init_env, set_seed


def refuse_conflicting_settings(config, run, source):
    """A quantized model carries its method and bits (``run``): an explicit different value is a mistake."""
    for key in ('method', 'w_bit', 'a_bit', 'int_zero_point'):
        if key in config.explicit and getattr(config, key) != getattr(run, key):
            grid = ', integer zero point' if run.int_zero_point else ''
            raise UserError(f'--{key} {getattr(config, key)} conflicts with {source}, which is '
                            f'{run.method} W{run.w_bit}A{run.a_bit}{grid}: drop --{key} (or calibrate anew)')


def refuse_conflicts(config, meta):
    """A quantized checkpoint carries its weights, method and bits: an explicit different value is a mistake."""
    if 'pre_trained' in config.explicit and config.pre_trained:
        raise UserError(f'--pre_trained and --quant_ckpt were both given, but {config.quant_ckpt} carries its own '
                        'weights: drop --pre_trained')
    refuse_conflicting_settings(config, run_info_from_meta(meta), config.quant_ckpt)


def network_for_eval(config, world=LOCAL):
    """(network, RunInfo, stage timings) for the requested method; data parallel calibration with ``world``."""
    if config.quant_ckpt:
        net, meta = load_quant_checkpoint(config.quant_ckpt, arch=config.arch, scale=config.scale)
        refuse_conflicts(config, meta)
        run = run_info_from_meta(meta)
        return net, run, {'load_seconds': 0.0, **meta.get('timings', {})}
    start = time.time()
    fp_net, info = load_fp_net(config.pre_trained, config.arch, config.scale)
    timings = {'load_seconds': round(time.time() - start, 1)}
    if config.method == 'fp':
        return fp_net, RunInfo(info.arch, info.scale, seed=config.seed), timings
    # an interrupted PaC continues on the next run; once calibrated, the state has done its job
    # (calibrate.py keeps the result as a checkpoint, for evaluations that may be interrupted)
    resume_file = pac_resume_path(quant_checkpoint_path(config.output_path, info.arch, info.scale, config.w_bit,
                                                        config.a_bit, config.method, config.int_zero_point))
    qnet, report = calibrate(fp_net, info, plan_from_config(config, info.arch, info.scale), world.log,
                             pac_resume_file=resume_file, world=world)
    if world.is_main:
        remove_if_present(resume_file)
    run = RunInfo(info.arch, info.scale, config.w_bit, config.a_bit, config.method, config.seed,
                  config.pac_seed if config.method in PAC_METHODS else None, config.int_zero_point)
    return qnet, run, {**timings, **report['timings']}


def prepare_outputs(config):
    """Check the output folders before any long computation."""
    prepare_output_folder(config.output_path)
    if config.results_json:
        prepare_output_folder(os.path.dirname(os.path.abspath(config.results_json)), '--results_json folder')


def score_and_record(config, net, run, timings, sets, command=None, world=LOCAL):
    """Evaluate ``net`` (a Cell or any forward) on ``sets``, write the results JSON (rank 0) and print the
    table; with several ``world`` ranks each scores its share of the images."""
    settings = InferenceSettings(config.chop, config.chop_tile, config.chop_overlap, config.self_ensemble)
    start = time.time()
    label = run.label() + ('' if config.amp_level == 'O0' else f' {config.amp_level}')
    results = evaluate(net, sets, run.scale, settings, config.output_path if config.save_sr else None,
                       tag=label.replace(' ', '_'), label=label, world=world)
    timings['eval_seconds'] = round(time.time() - start, 1)
    record = results_record(run, results, timings, config.self_ensemble, config.chop, command, config.amp_level,
                            world.size)
    if not world.is_main:
        return record
    path = config.results_json or os.path.join(config.output_path, run.results_name(config.amp_level))
    write_json_atomic(path, record)
    print(format_table([(label, results)], [s.name for s in sets]))
    print(f'results written to {path}')
    return record


def run_eval(config, command=None):
    """``command``: how the run was started, for the record (default: this process's command line).
    With --run_distribute every msrun worker scores its share of the images; rank 0 writes the JSON."""
    prepare_outputs(config)
    world = init_env(config.device_target, config.device_id, config.num_threads, config.run_distribute)
    set_seed(config.seed)
    sets = open_sets(config.data_path, config.dataset, config.scale)
    net, run, timings = network_for_eval(config, world)
    net = apply_amp(net, config.amp_level, config.device_target, world.log)
    return score_and_record(config, net, run, timings, sets, command, world)
