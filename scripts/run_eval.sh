#!/usr/bin/env bash
# Evaluate a full-precision or quantized checkpoint. Called by run_eval_{ascend,gpu,cpu}.sh.
DEVICE=$1; shift
if [ $# -lt 3 ] || [ $# -gt 5 ]; then
  echo "Usage: bash run_eval_${DEVICE,,}.sh [DATASET_PATH] [CHECKPOINT_PATH] [CONFIG_PATH] [SCALE] [DEVICE_ID]"
  echo "  CHECKPOINT_PATH: FP .pt/.pth/.ckpt, or a quantized .ckpt from calibrate.py (passed as --quant_ckpt)"
  echo "  extra flags go through PTQ4SR_ARGS, e.g. PTQ4SR_ARGS='--w_bit 4 --a_bit 4 --method ptq4sr'"
  echo "  log and outputs go to PTQ4SR_OUTPUT (default: <repo>/output)"
  exit 1
fi
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/scripts/common.sh"
DATA=$(get_real_path "$1"); CKPT=$(get_real_path "$2"); CONFIG=$(get_real_path "$3")
SCALE=${4:-4}; export DEVICE_ID=${5:-0}
require_dir "$DATA" DATASET_PATH; require_file "$CKPT" CHECKPOINT_PATH; require_file "$CONFIG" CONFIG_PATH
# Quantized checkpoints from calibrate.py carry a ptq4sr_meta entry.
if grep -q ptq4sr_meta "$CKPT" 2>/dev/null; then CKPT_FLAG=--quant_ckpt; else CKPT_FLAG=--pre_trained; fi
cd "$ROOT" || exit 2
# shellcheck disable=SC2086  # PTQ4SR_ARGS is a list of flags
run_logged "$OUT/eval_${DEVICE,,}_x${SCALE}.log" \
  python eval.py --config_path "$CONFIG" --scale "$SCALE" --data_path "$DATA" $CKPT_FLAG "$CKPT" \
  --device_target "$DEVICE" --device_id "$DEVICE_ID" --output_path "$OUT" ${PTQ4SR_ARGS:-}
