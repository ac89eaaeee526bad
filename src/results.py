"""The results record that eval.py, the demo and reproduce_tables.py write, and the method labels."""
import os
import shlex
import sys
from dataclasses import dataclass
from typing import Optional

from src.runtime import git_revision, package_versions

METHOD_LABELS = {'fp': 'FP', 'minmax': 'MinMax', 'percentile': 'Percentile', 'dbdc': 'DBDC',
                 'ptq4sr': 'DBDC+PaC (PTQ4SR)', 'ptq4sr_plus': 'PTQ4SR+ (ours)'}
SHORT_LABELS = {**METHOD_LABELS, 'ptq4sr': 'PTQ4SR', 'ptq4sr_plus': 'PTQ4SR+'}  # where space is short (picture captions)


@dataclass(frozen=True)
class RunInfo:
    """What was evaluated: a network, its bits and the method (with the seeds it depends on) that set them,
    on which quantizer grid (``int_zero_point``, see src/quant/integer_grid.py) and in which runtime."""
    arch: str
    scale: int
    w_bit: int = 32
    a_bit: int = 32
    method: str = 'fp'
    seed: int = 0
    pac_seed: Optional[int] = None  # only PTQ4SR draws a second crop stream
    int_zero_point: bool = False
    backend: str = 'mindspore'  # or 'onnxruntime' (eval_onnx.py)

    def label(self, labels=None):
        """'fp' or 'dbdc W4A4' (method names as given), or with ``labels`` e.g. 'DBDC W4A4'; the integer grid
        and a runtime other than MindSpore are appended ('dbdc W8A8 int-zp onnxruntime')."""
        name = (labels or {}).get(self.method, self.method)
        label = name if self.method == 'fp' else f'{name} W{self.w_bit}A{self.a_bit}'
        return label + (' int-zp' if self.int_zero_point else '') + \
            (f' {self.backend}' if self.backend != 'mindspore' else '')

    def results_name(self, amp_level='O0'):
        return (f'results_{self.arch}_x{self.scale}_{self.method}_w{self.w_bit}a{self.a_bit}'
                + ('_intzp' if self.int_zero_point else '')
                + (f'_{self.backend}' if self.backend != 'mindspore' else '')
                + ('' if amp_level == 'O0' else f'_{amp_level}') + '.json')


def run_info_from_meta(meta, backend='mindspore'):
    """RunInfo of a quantized checkpoint's (or an exported model's) metadata."""
    from src.calibration.plan import PAC_METHODS  # here: reading results needs no MindSpore
    return RunInfo(meta['arch'], int(meta['scale']), int(meta['w_bit']), int(meta['a_bit']), meta['method'],
                   int(meta['seed']), int(meta['pac_seed']) if meta['method'] in PAC_METHODS else None,
                   bool(meta.get('int_zero_point', False)), backend)


def command_line(script, args):
    """``python <script> <args>`` as a user would type it, the script relative to the working directory."""
    return ' '.join(['python', shlex.quote(os.path.relpath(script))] + [shlex.quote(str(a)) for a in args])


def results_record(run, results, timings, self_ensemble=False, chop=False, command=None, amp_level='O0', workers=1):
    """{model, scale, w_bit, a_bit, method, results, timings, seed, [pac_seed], [int_zero_point], [backend],
    self_ensemble, chop, amp_level, workers, versions, git_revision, command}: ``results`` is
    {set: {psnr, ssim, images, seconds, per_image}} (``src.evaluate.evaluate``); ``workers``: the data-parallel
    processes that computed it. The bracketed keys appear only when they differ from the released setting
    (pac_seed: PaC methods only)."""
    record = {'model': run.arch, 'scale': run.scale, 'w_bit': run.w_bit, 'a_bit': run.a_bit, 'method': run.method,
              'results': results, 'timings': timings, 'seed': run.seed}
    if run.pac_seed is not None:
        record['pac_seed'] = run.pac_seed
    if run.int_zero_point:
        record['int_zero_point'] = True
    if run.backend != 'mindspore':
        record['backend'] = run.backend
    record.update(self_ensemble=self_ensemble, chop=chop, amp_level=amp_level, workers=workers,
                  versions=package_versions(), git_revision=git_revision(),
                  command=command or command_line(sys.argv[0], sys.argv[1:]))
    return record
