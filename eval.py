"""Evaluate a super-resolution network, full precision or quantized, by Y-PSNR / SSIM on benchmark sets.

    python eval.py     # no arguments: the offline demo (src/demo.py): bundled EDSR-baseline x4 and photos
                       # from the scikit-image wheel, FP / MinMax / DBDC / PTQ4SR at W4A4 in a few minutes
    python eval.py --config_path DIV2K_config.yaml --scale 4 --data_path ../shared/datasets/benchmark \
        --output_path ./output --pre_trained edsr_baseline_x4.pt [--w_bit 4 --a_bit 4 --method ptq4sr]
    python eval.py --quant_ckpt output/edsr_baseline_x4_w4a4_ptq4sr.ckpt --scale 4 --data_path ...
"""
import sys

from model_utils.config import get_config
from model_utils.moxing_adapter import moxing_wrapper
from src.cli import run_cli
from src.demo import run_demo
from src.eval_task import run_eval
from src.results import command_line


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)

    def body():
        if not argv:  # a first run needs no data, checkpoint or download; any flag means a real evaluation
            run_demo()
            return
        config = get_config(argv, description=__doc__.splitlines()[0])
        moxing_wrapper(config)(run_eval)(config, command_line(__file__, argv))
    return run_cli(body, 'no results JSON was written (an earlier one, if any, is unchanged)')


if __name__ == '__main__':
    sys.exit(main())
