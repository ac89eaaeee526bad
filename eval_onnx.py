"""Evaluate an exported ONNX model (export.py) in onnxruntime by Y-PSNR / SSIM on benchmark sets, like eval.py.

    python eval_onnx.py --pre_trained output/edsr_baseline_x4_w8a8.onnx --scale 4 \
        --data_path ../shared/datasets/benchmark [--num_threads 2]
"""
import sys

from model_utils.config import get_config
from model_utils.moxing_adapter import moxing_wrapper
from src.cli import run_cli
from src.eval_onnx_task import run_eval_onnx
from src.results import command_line


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)

    def body():
        config = get_config(argv, description=__doc__.splitlines()[0])
        moxing_wrapper(config)(run_eval_onnx)(config, command_line(__file__, argv))
    return run_cli(body, 'no results JSON was written (an earlier one, if any, is unchanged)')


if __name__ == '__main__':
    sys.exit(main())
