#!/usr/bin/env bash
# Reproduce the README tables from the shared reference models (resumable; see scripts/reproduce_tables.py).
# Usage: bash scripts/reproduce_tables.sh [extra reproduce_tables.py flags]
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 2
exec python scripts/reproduce_tables.py "$@"
