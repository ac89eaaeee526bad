"""Export a super-resolution network, full precision or quantized, as MINDIR, ONNX or AIR (model-zoo style).

    python export.py --pre_trained ../shared/models/edsr_baseline_x4.pt --scale 4 --file_format ONNX \
        --file_name output/edsr_baseline_x4
    python export.py --quant_ckpt output/edsr_baseline_x4_w8a8_dbdc.ckpt --scale 4 --file_format ONNX \
        --file_name output/edsr_baseline_x4_w8a8      # the integer model (int8 weights, QLinearConv)
    python export.py --quant_ckpt output/edsr_baseline_x4_w8a8_dbdc.ckpt --scale 4 --file_format MINDIR \
        --file_name output/edsr_baseline_x4_w8a8_fakequant
"""
import sys

from model_utils.config import get_config
from model_utils.moxing_adapter import moxing_wrapper
from src.cli import run_cli
from src.export_task import run_export


def main(argv=None):
    def body():
        config = get_config(argv, description=__doc__.splitlines()[0])
        moxing_wrapper(config)(run_export)(config)
    return run_cli(body, 'no model file was written (an earlier one, if any, is unchanged)')


if __name__ == '__main__':
    sys.exit(main())
