#!/usr/bin/env bash
# Usage: bash run_eval_gpu.sh [DATASET_PATH] [CHECKPOINT_PATH] [CONFIG_PATH] [SCALE] [DEVICE_ID]
exec bash "$(dirname "$0")/run_eval.sh" GPU "$@"
