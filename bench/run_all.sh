#!/usr/bin/env bash
# Runs every benchmark (each prints its progress), then rewrites the README's benchmark table.
set -euo pipefail
source "$(dirname "$0")/../scripts/env.sh"
cd "$PROJECT_ROOT"
./scripts/setup.sh
./scripts/train.sh

echo "== foundation: train, load, parse and REST latency, memory"
python -m bench.foundation "$@"

python -m bench.report
