"""What ``eval_onnx.py`` does with a validated config: run an exported ONNX model in onnxruntime on the test
sets, with eval.py's metrics, table and results record (plus ``"backend": "onnxruntime"``)."""
import time

from src.deploy.ort_forward import OrtForward
from src.errors import UserError
from src.eval_task import prepare_outputs, refuse_conflicting_settings, score_and_record
from src.evaluate import open_sets
from src.results import run_info_from_meta
from src.runtime import cpu_threads

REQUIRED_METADATA = ('arch', 'scale', 'w_bit', 'a_bit', 'method', 'seed')


def run_info_from_onnx(path, metadata, config):
    """The RunInfo stored by export.py, checked against --scale and explicit method / bit flags."""
    missing = [key for key in REQUIRED_METADATA if key not in metadata]
    if missing:
        raise UserError(f'{path} carries no {missing[0]} in its metadata: evaluate models written by export.py')
    metadata = {**metadata, 'int_zero_point': metadata.get('int_zero_point') == 'True'}
    run = run_info_from_meta(metadata, backend='onnxruntime')
    if run.scale != config.scale:
        raise UserError(f'{path} is a ×{run.scale} model but --scale {config.scale} was given: '
                        f'pass --scale {run.scale}')
    refuse_conflicting_settings(config, run, path)
    return run


def run_eval_onnx(config, command=None):
    """``command``: how the run was started, for the record (default: this process's command line)."""
    if config.amp_level != 'O0' or config.run_distribute:
        flag = f'--amp_level {config.amp_level}' if config.amp_level != 'O0' else '--run_distribute True'
        raise UserError(f'{flag} applies to MindSpore networks (eval.py): an ONNX model runs as exported in '
                        'onnxruntime, so drop it here')
    prepare_outputs(config)
    start = time.time()
    if not config.pre_trained:
        raise UserError('no model given: pass the exported .onnx file as --pre_trained')
    forward = OrtForward(config.pre_trained, cpu_threads(config.num_threads), config.device_target)
    run = run_info_from_onnx(config.pre_trained, forward.metadata, config)
    sets = open_sets(config.data_path, config.dataset, config.scale)
    return score_and_record(config, forward, run, {'load_seconds': round(time.time() - start, 1)}, sets, command)
