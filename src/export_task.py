"""What ``export.py`` does with a validated config: load the full-precision or quantized network and write it
as MINDIR, ONNX or AIR, verified against MindSpore before the file appears.

With ``--quant_ckpt``, MINDIR / AIR hold the fake-quant graph (the simulation as calibrated) and ONNX holds the
integer model (uint8 activations at the calibrated bounds, int8 weights, fused QLinearConv in onnxruntime),
which runs on the integer grid whatever the checkpoint was calibrated on (``src/quant/integer_grid.py``).
"""
import os

import numpy as np

from src.calibration.bounds import ObserverSettings
from src.dataset import CalibrationImages
from src.deploy.mindspore_export import export_mindspore
from src.deploy.onnx_export import export_float_onnx, export_integer_onnx
from src.errors import UserError
from src.eval_task import refuse_conflicts
from src.files import prepare_output_folder
from src.models.load import load_fp_net
from src.quant.checkpoint import load_quant_checkpoint
from src.quant.state import use_composite_quantizers
from src.results import RunInfo, run_info_from_meta
from src.runtime import cpu_threads, git_revision, init_env, package_versions

EXTENSIONS = {'MINDIR': '.mindir', 'ONNX': '.onnx', 'AIR': '.air'}


def _example_input(config):
    """The seeded input of the MINDIR / float checks: not square, so a swapped height and width shows."""
    return np.random.RandomState(config.seed).rand(config.batch_size, 3, 36, 44).astype(np.float32)


def export_path(config, run):
    """--file_name plus the format's extension, or <output_path>/<arch>_x<s>[_w<w>a<a>_<method>[_intzp]]."""
    if config.file_name:
        return config.file_name + EXTENSIONS[config.file_format]
    quant = '' if run.method == 'fp' else f'_w{run.w_bit}a{run.a_bit}_{run.method}' + \
        ('_intzp' if run.int_zero_point else '')
    return os.path.join(config.output_path, f'{run.arch}_x{run.scale}{quant}{EXTENSIONS[config.file_format]}')


def _network(config):
    """(network, RunInfo): the FP network of --pre_trained or the fake-quantized one of --quant_ckpt."""
    if config.quant_ckpt:
        net, meta = load_quant_checkpoint(config.quant_ckpt, arch=config.arch, scale=config.scale)
        refuse_conflicts(config, meta)
        return net, run_info_from_meta(meta)
    if config.method != 'fp':
        raise UserError(f'export.py does not calibrate (--method {config.method}): calibrate with calibrate.py and '
                        'pass the checkpoint as --quant_ckpt')
    net, info = load_fp_net(config.pre_trained, config.arch, config.scale)
    return net, RunInfo(info.arch, info.scale, seed=config.seed)


def onnx_metadata(run, source, integer):
    """What eval_onnx.py needs to fill a results record, stored in the model's metadata_props."""
    meta = {'arch': run.arch, 'scale': run.scale, 'w_bit': run.w_bit, 'a_bit': run.a_bit, 'method': run.method,
            'seed': run.seed, 'int_zero_point': run.int_zero_point,
            'model': 'integer' if integer else 'float', 'source': os.path.basename(source),
            'git_revision': git_revision(), **{f'{k}_version': v for k, v in package_versions().items()}}
    if run.pac_seed is not None:
        meta['pac_seed'] = run.pac_seed
    return meta


def _calibration_images(config, scale):
    """The calibration LR images, whole, as 1×3×H×W float32 arrays in [0, 1], for the integer model's
    requantization bounds (src/deploy/requant.py; 100 whole images run in seconds)."""
    images = CalibrationImages(config.calib_path, scale, config.num_calib_images)
    return [np.ascontiguousarray(image.transpose(2, 0, 1)[None], np.float32) / 255 for image in images.images]


def _export_onnx(config, net, run, path):
    source = config.quant_ckpt or config.pre_trained
    if run.method == 'fp':
        return export_float_onnx(net, path, _example_input(config), onnx_metadata(run, source, integer=False))
    batches = _calibration_images(config, run.scale)
    x = np.repeat(batches[0], config.batch_size, axis=0)  # a natural image: noise drives activations off calibration
    if not run.int_zero_point:  # the integer model runs on the integer grid: check it against that simulation
        net, _ = load_quant_checkpoint(config.quant_ckpt, int_zero_point=True)
    settings = ObserverSettings('dbdc', config.dbdc_p, config.dbdc_p_8bit, config.dbdc_bins, config.dbdc_lower_edge)
    return export_integer_onnx(net, path, x, batches, lambda: settings.make_observer(8),
                               onnx_metadata(run, source, integer=True), cpu_threads(config.num_threads))


def run_export(config):
    """Returns the path of the written file."""
    if config.file_format == 'AIR' and config.device_target != 'Ascend':
        raise UserError(f'--file_format AIR needs --device_target Ascend (AIR is built for the Ascend toolchain): '
                        f'use --file_format MINDIR or ONNX on {config.device_target}')
    init_env(config.device_target, config.device_id, config.num_threads)
    net, run = _network(config)
    path = export_path(config, run)
    prepare_output_folder(os.path.dirname(os.path.abspath(path)), '--file_name folder')
    kind = 'full-precision' if run.method == 'fp' else 'integer' if config.file_format == 'ONNX' else 'fake-quant'
    print(f'exporting the {kind} model ({run.arch} x{run.scale} {run.label()}) as {config.file_format} to {path}',
          flush=True)
    if config.file_format == 'ONNX':
        _export_onnx(config, net, run, path)
    else:
        use_composite_quantizers(net)  # the fused kernel's Custom op cannot be written into MINDIR / AIR
        export_mindspore(net, path, _example_input(config), config.file_format)
    print(f'wrote {path} ({os.path.getsize(path) / 1e6:.2f} MB)')
    return path
