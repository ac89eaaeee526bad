#!/usr/bin/env bash
# Data-parallel evaluation: msrun starts RANK_SIZE workers on this machine. Called by
# run_distribute_eval_{ascend,gpu,cpu}.sh.
DEVICE=$1; shift
if [ $# -lt 4 ] || [ $# -gt 5 ]; then
  echo "Usage: bash run_distribute_eval_${DEVICE,,}.sh [RANK_SIZE] [DATASET_PATH] [CHECKPOINT_PATH] [CONFIG_PATH] [SCALE]"
  echo "  RANK_SIZE workers (msrun, this machine) each score their share of the images; rank 0 writes the JSON"
  echo "  CHECKPOINT_PATH: FP .pt/.pth/.ckpt, or a quantized .ckpt from calibrate.py (passed as --quant_ckpt)"
  echo "  extra flags go through PTQ4SR_ARGS, e.g. PTQ4SR_ARGS='--w_bit 4 --a_bit 4 --method dbdc'"
  echo "  log and outputs go to PTQ4SR_OUTPUT (default: <repo>/output), worker logs to its distribute_eval_*_logs/"
  exit 1
fi
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/scripts/common.sh"
RANK_SIZE=$1
if ! [[ $RANK_SIZE =~ ^[1-9][0-9]*$ ]]; then
  echo "error: RANK_SIZE $RANK_SIZE is not a positive integer: pass the number of workers, e.g. 2" >&2; exit 2
fi
DATA=$(get_real_path "$2"); CKPT=$(get_real_path "$3"); CONFIG=$(get_real_path "$4")
SCALE=${5:-4}
require_dir "$DATA" DATASET_PATH; require_file "$CKPT" CHECKPOINT_PATH; require_file "$CONFIG" CONFIG_PATH
if grep -q ptq4sr_meta "$CKPT" 2>/dev/null; then CKPT_FLAG=--quant_ckpt; else CKPT_FLAG=--pre_trained; fi
# msrun starts every worker as the first `python` on PATH: msrun itself runs from that same interpreter, so
# the workers use the MindSpore that launched them.
PYTHON=$(command -v python) || { echo "error: no python on PATH: activate the environment with MindSpore" >&2; exit 2; }
PORT=$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
NAME="distribute_eval_${DEVICE,,}_x${SCALE}"
LOGS="$OUT/${NAME}_logs"
cd "$ROOT" || exit 2
# DEVICE_ID is left to msrun (each worker's local rank), so no --device_id here.
# shellcheck disable=SC2086  # PTQ4SR_ARGS is a list of flags
run_logged "$OUT/$NAME.log" \
  "$PYTHON" -m mindspore.parallel.cluster.run --worker_num "$RANK_SIZE" --local_worker_num "$RANK_SIZE" \
  --master_port "$PORT" --cluster_time_out 120 --join True --log_dir "$LOGS" \
  eval.py --config_path "$CONFIG" --scale "$SCALE" --data_path "$DATA" $CKPT_FLAG "$CKPT" \
  --device_target "$DEVICE" --output_path "$OUT" --run_distribute True ${PTQ4SR_ARGS:-}
RC=$?
[ $RC -eq 0 ] && exit 0
report_worker_errors "$LOGS" "$RC"
