#!/usr/bin/env bash
# Helpers shared by the run_*.sh scripts (sourced, not run, after the script has set ROOT).

get_real_path() {
  if [ "${1:0:1}" == "/" ]; then echo "$1"; else realpath -m "$PWD/$1"; fi
}

# where logs and outputs go: PTQ4SR_OUTPUT, else <repo>/output
OUT=$(get_real_path "${PTQ4SR_OUTPUT:-$ROOT/output}")

require_dir() {
  if [ ! -d "$1" ]; then echo "error: $2 $1 is not a directory" >&2; exit 2; fi
}

require_file() {
  if [ ! -f "$1" ]; then echo "error: $2 $1 is not a file" >&2; exit 2; fi
}

# run_logged LOG CMD...: run in the foreground, output to the terminal and to LOG; exit with CMD's status.
run_logged() {
  local log=$1; shift
  mkdir -p "$(dirname "$log")"
  echo "log: $log"
  "$@" 2>&1 | tee "$log"
  return "${PIPESTATUS[0]}"
}

# report_worker_errors LOG_DIR RC: after msrun failed, repeat the workers' `error:` lines (each once, on stderr)
# and exit 2 (a bad input), or else point at the worker logs and exit RC.
report_worker_errors() {
  local errors
  errors=$(cat "$1"/*.log 2>/dev/null | tr '\r' '\n' | grep '^error: ' | sort -u)
  if [ -n "$errors" ]; then echo "$errors" >&2; exit 2; fi
  echo "error: a worker failed (exit code $2): see the worker logs in $1" >&2
  exit "$2"
}
