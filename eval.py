"""Evaluate a super-resolution network, full precision or quantized, by Y-PSNR / SSIM on benchmark sets.

    python eval.py     # no arguments: the offline demo (src/demo.py): bundled EDSR-baseline x4 and photos
                       # from the scikit-image wheel, FP / MinMax / DBDC / PTQ4SR at W4A4 in a few minutes
    python eval.py --config_path DIV2K_config.yaml --scale 4 --data_path ../shared/datasets/benchmark \
        --output_path ./output --pre_trained edsr_baseline_x4.pt [--w_bit 4 --a_bit 4 --method ptq4sr]
    python eval.py --quant_ckpt output/edsr_baseline_x4_w4a4_ptq4sr.ckpt --scale 4 --data_path ...
"""
import os
import sys
import time

from calibrate import pac_resume_path, plan_from_config
from model_utils.config import get_config
from model_utils.moxing_adapter import moxing_wrapper
from src.errors import UserError
from src.demo import run_demo
from src.evaluate import InferenceSettings, evaluate, format_table, open_sets
from src.pipeline import calibrate, load_fp_net, load_quant_checkpoint
from src.utils import (init_env, package_versions, prepare_output_folder, remove_if_present, run_cli, set_seed,
                       write_json_atomic)


def init_net(config):
    """(network, description dict, stage timings) for the requested method."""
    if config.quant_ckpt:
        net, meta = load_quant_checkpoint(config.quant_ckpt, scale=config.scale)
        desc = {k: meta[k] for k in ('arch', 'scale', 'w_bit', 'a_bit', 'method', 'seed')}
        if meta['method'] == 'ptq4sr':
            desc['pac_seed'] = meta['pac_seed']
        return net, desc, {'load_seconds': 0.0, **meta.get('timings', {})}
    start = time.time()
    fp_net, info = load_fp_net(config.pre_trained, config.arch, config.scale)
    desc = {'arch': info.arch, 'scale': info.scale, 'w_bit': 32, 'a_bit': 32, 'method': 'fp', 'seed': config.seed}
    timings = {'load_seconds': round(time.time() - start, 1)}
    if config.method == 'fp':
        return fp_net, desc, timings
    # an interrupted PaC continues on the next run; once calibrated, the state has done its job
    # (calibrate.py keeps the result as a checkpoint, for evaluations that may be interrupted)
    resume_file = pac_resume_path(config, info)
    qnet, report = calibrate(fp_net, info, plan_from_config(config, info.scale), pac_resume_file=resume_file)
    remove_if_present(resume_file)
    desc.update(w_bit=config.w_bit, a_bit=config.a_bit, method=config.method)
    if config.method == 'ptq4sr':  # PaC draws its own crops: the results depend on this seed too
        desc['pac_seed'] = config.pac_seed
    return qnet, desc, {**timings, **report['timings']}


def results_path(config, desc):
    if config.results_json:
        return config.results_json
    name = f"results_{desc['arch']}_x{desc['scale']}_{desc['method']}_w{desc['w_bit']}a{desc['a_bit']}.json"
    return os.path.join(config.output_path, name)


def run_eval(config):
    prepare_output_folder(config.output_path)
    if config.results_json:
        prepare_output_folder(os.path.dirname(os.path.abspath(config.results_json)), '--results_json folder')
    init_env(config.device_target, config.device_id)
    set_seed(config.seed)
    sets = open_sets(config.data_path, config.dataset, config.scale)
    net, desc, timings = init_net(config)
    settings = InferenceSettings(config.chop, config.chop_tile, config.chop_overlap, config.self_ensemble)
    start = time.time()
    label = desc['method'] if desc['method'] == 'fp' else f"{desc['method']} W{desc['w_bit']}A{desc['a_bit']}"
    results = evaluate(net, sets, desc['scale'], settings, config.output_path if config.save_sr else None,
                       tag=label.replace(' ', '_'), label=label)
    timings['eval_seconds'] = round(time.time() - start, 1)
    record = {'model': desc['arch'], 'scale': desc['scale'], 'w_bit': desc['w_bit'], 'a_bit': desc['a_bit'],
              'method': desc['method'], 'results': results, 'timings': timings, 'seed': desc['seed'],
              'self_ensemble': config.self_ensemble, 'chop': config.chop, 'versions': package_versions()}
    if 'pac_seed' in desc:
        record['pac_seed'] = desc['pac_seed']
    path = results_path(config, desc)
    write_json_atomic(path, record)
    print(format_table([(label, results)], [s.name for s in sets]))
    print(f'results written to {path}')
    return record


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)

    def body():
        if not argv:  # a first run needs no data, checkpoint or download; any flag means a real evaluation
            run_demo()
            return
        config = get_config(argv, description=__doc__.splitlines()[0])
        moxing_wrapper(config)(run_eval)(config)
    return run_cli(body, 'no results JSON was written (an earlier one, if any, is unchanged)')


if __name__ == '__main__':
    sys.exit(main())
