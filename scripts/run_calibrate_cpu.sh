#!/usr/bin/env bash
# Usage: bash run_calibrate_cpu.sh [CALIB_PATH] [CHECKPOINT_PATH] [CONFIG_PATH] [SCALE] [W_BIT] [A_BIT] [METHOD] [DEVICE_ID]
exec bash "$(dirname "$0")/run_calibrate.sh" CPU "$@"
