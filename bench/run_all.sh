#!/usr/bin/env bash
# Runs every benchmark (each prints its progress), then rewrites the tables in the README and docs/benchmarks.md.
set -euo pipefail
source "$(dirname "$0")/../scripts/env.sh"
cd "$PROJECT_ROOT"
./scripts/setup.sh
./scripts/train.sh

echo "== understanding: held-out customer messages, before (the commit before) and after (trains the before model once)"
python -m bench.understanding

echo "== tone: frustration acknowledged on customer-service messages, before and after"
python -m bench.tone

echo "== conversations: scripted multi-turn conversations over REST against the real servers, before and after"
python -m bench.conversations

echo "== foundation: train, load, parse and REST latency, memory"
python -m bench.foundation "$@"

echo "== sentiment: the SentimentAnalyzer and VADER side by side (quality, latency, added parse time)"
python -m bench.sentiment

echo "== generator: load, decoding speed, reply latency through the action server, right facts, rejections"
python -m bench.generator

echo "== security: the attack suite (injection, exfiltration, fuzzing, enumeration, web chat; ~2-5 min)"
python -m bench.security || echo "security: the suite failed; see bench/results/security.json"

echo "== intent: the transformer intent classifier and the DIET baseline (BANKING77, cross-validation, out of scope; ~1 h)"
python -m bench.intent

echo "== intent recipes: the epoch settings chosen on validation data the intent benchmark does not score (~30 min)"
python -m bench.intent_recipes

echo "== encoders: one message's forward pass through each network installable here, against the latency budgets"
python -m bench.encoders

echo "== load: simulated customers on the embedded profile, one replica, two replicas (~20 min)"; python -m bench.load
python -m bench.report
