#!/usr/bin/env bash
# Calibrate a quantized network (PTQ4SR by default). Called by run_calibrate_{ascend,gpu,cpu}.sh.
DEVICE=$1; shift
if [ $# -lt 4 ] || [ $# -gt 8 ]; then
  echo "Usage: bash run_calibrate_${DEVICE,,}.sh [CALIB_PATH] [CHECKPOINT_PATH] [CONFIG_PATH] [SCALE] [W_BIT] [A_BIT] [METHOD] [DEVICE_ID]"
  echo "  defaults: W_BIT=4 A_BIT=4 METHOD=ptq4sr DEVICE_ID=0; extra flags go through PTQ4SR_ARGS"
  echo "  log and outputs go to PTQ4SR_OUTPUT (default: <repo>/output)"
  exit 1
fi
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/scripts/common.sh"
CALIB=$(get_real_path "$1"); CKPT=$(get_real_path "$2"); CONFIG=$(get_real_path "$3")
SCALE=$4; W_BIT=${5:-4}; A_BIT=${6:-4}; METHOD=${7:-ptq4sr}; export DEVICE_ID=${8:-0}
require_dir "$CALIB" CALIB_PATH; require_file "$CKPT" CHECKPOINT_PATH; require_file "$CONFIG" CONFIG_PATH
cd "$ROOT" || exit 2
# shellcheck disable=SC2086  # PTQ4SR_ARGS is a list of flags
run_logged "$OUT/calibrate_${DEVICE,,}_x${SCALE}_w${W_BIT}a${A_BIT}_${METHOD}.log" \
  python calibrate.py --config_path "$CONFIG" --scale "$SCALE" --calib_path "$CALIB" --pre_trained "$CKPT" \
  --w_bit "$W_BIT" --a_bit "$A_BIT" --method "$METHOD" --device_target "$DEVICE" --device_id "$DEVICE_ID" \
  --output_path "$OUT" ${PTQ4SR_ARGS:-}
