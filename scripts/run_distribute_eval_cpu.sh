#!/usr/bin/env bash
# Usage: bash run_distribute_eval_cpu.sh [RANK_SIZE] [DATASET_PATH] [CHECKPOINT_PATH] [CONFIG_PATH] [SCALE]
exec bash "$(dirname "$0")/run_distribute_eval.sh" CPU "$@"
