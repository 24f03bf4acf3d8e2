#!/usr/bin/env bash
# Runs every benchmark (each prints its progress), then rewrites the README's benchmark table.
set -euo pipefail
source "$(dirname "$0")/../scripts/env.sh"
cd "$PROJECT_ROOT"
./scripts/setup.sh
./scripts/train.sh

echo "== foundation: train, load, parse and REST latency, memory"
python -m bench.foundation "$@"

echo "== sentiment: the SentimentAnalyzer and VADER side by side (quality, latency, added parse time)"
python -m bench.sentiment

echo "== generator: load, decoding speed, reply latency through the action server, right facts, rejections"
python -m bench.generator

python -m bench.report
