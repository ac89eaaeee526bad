"""Computing the cells of the reproduction grid (one (network, scale, bits) group at a time)."""
import time

from src.calibration.plan import PAC_METHODS, plan_from_config
from src.calibration.runner import calibrate_methods
from src.evaluate import evaluate
from src.files import remove_if_present, write_json_atomic
from src.models.load import load_fp_net
from src.results import RunInfo, results_record
from src.tables import cell_name, cell_path


def run_group(config, methods, out, sets, command, log=print):
    """Compute the cells ``methods`` of the (network, scale, bits) that ``config`` describes, each written
    to ``out``/cells as soon as it is evaluated. ``methods`` is ['fp'] or calibration methods only."""
    fp_net, info = load_fp_net(config.pre_trained, scale=config.scale)
    bits = config.w_bit
    if methods == ['fp']:
        nets = {'fp': (fp_net, {'timings': {}})}
    else:
        pac_method = next((m for m in methods if m in PAC_METHODS), 'ptq4sr')
        state = cell_path(out, info.arch, info.scale, bits, pac_method, '_pac_state.npz')
        nets = calibrate_methods(fp_net, info, plan_from_config(config, info.arch, info.scale), methods, log,
                                 pac_resume_file=state)
    for method, (net, report) in nets.items():
        run = RunInfo(info.arch, info.scale, 32 if method == 'fp' else bits, 32 if method == 'fp' else bits, method,
                      config.seed, config.pac_seed if method in PAC_METHODS else None)
        start = time.time()
        results = evaluate(net, sets, info.scale, tag=cell_name(info.arch, info.scale, bits, method))
        timings = {**report['timings'], 'eval_seconds': round(time.time() - start, 1)}
        write_json_atomic(cell_path(out, info.arch, info.scale, bits, method),
                          results_record(run, results, timings, command=command))
        if method in PAC_METHODS:
            remove_if_present(state)
        log(f"{cell_name(info.arch, info.scale, bits, method)}: "
            + ', '.join(f"{k} {v['psnr']:.3f}" for k, v in results.items()))
