#!/usr/bin/env bash
# Evaluate an exported ONNX model (export.py) in onnxruntime, with eval.py's metrics and results JSON.
if [ $# -lt 3 ] || [ $# -gt 5 ]; then
  echo "Usage: bash run_eval_onnx.sh [DATASET_PATH] [ONNX_PATH] [CONFIG_PATH] [SCALE] [DEVICE_TARGET]"
  echo "  ONNX_PATH: a .onnx file written by export.py (float or integer model); DEVICE_TARGET: CPU (default) or GPU"
  echo "  extra flags go through PTQ4SR_ARGS, e.g. PTQ4SR_ARGS='--num_threads 2 --dataset Set5'"
  echo "  log and outputs go to PTQ4SR_OUTPUT (default: <repo>/output)"
  exit 1
fi
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/scripts/common.sh"
DATA=$(get_real_path "$1"); MODEL=$(get_real_path "$2"); CONFIG=$(get_real_path "$3")
SCALE=${4:-4}; DEVICE=${5:-CPU}
require_dir "$DATA" DATASET_PATH; require_file "$MODEL" ONNX_PATH; require_file "$CONFIG" CONFIG_PATH
cd "$ROOT" || exit 2
# shellcheck disable=SC2086  # PTQ4SR_ARGS is a list of flags
run_logged "$OUT/eval_onnx_$(basename "$MODEL" .onnx).log" \
  python eval_onnx.py --config_path "$CONFIG" --scale "$SCALE" --data_path "$DATA" --pre_trained "$MODEL" \
  --device_target "$DEVICE" --output_path "$OUT" ${PTQ4SR_ARGS:-}
