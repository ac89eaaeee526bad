"""Calibrate a quantized SR network from unlabeled LR images and save it (PTQ4SR: DBDC + PaC).

    python calibrate.py --pre_trained edsr_baseline_x4.pt --scale 4 --w_bit 4 --a_bit 4 --method ptq4sr \
        --calib_path ../shared/datasets/train/BSD200 --num_calib_images 100 --output_path ./output
"""
import sys
import time

from model_utils.config import get_config
from model_utils.moxing_adapter import moxing_wrapper
from src.calibrate_task import run_calibrate
from src.cli import run_cli


def main(argv=None):
    def body():
        config = get_config(argv, description=__doc__.splitlines()[0])
        start = time.time()
        moxing_wrapper(config)(run_calibrate)(config)
        print(f'done in {time.time() - start:.0f} s')
    return run_cli(body, 'no checkpoint was written (an earlier one, if any, is unchanged)')


if __name__ == '__main__':
    sys.exit(main())
