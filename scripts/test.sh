#!/usr/bin/env bash
# Runs every check: lint, the deployment files, Rasa data validation, unit and database tests (SQLite and
# PostgreSQL), end-to-end REST conversations, the channels (REST authentication, the web chat in Chromium, Slack),
# the cluster under faults (PostgreSQL, Redis, RabbitMQ, HAProxy), and the conversation test stories. Sets up
# (Python packages, Chromium, HAProxy) and trains first if needed.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$PROJECT_ROOT"

./scripts/setup.sh
./scripts/setup-browser.sh
./scripts/setup-balancer.sh

echo "== deployment files (Kubernetes, compose, HAProxy; offline)"
./scripts/validate-deploy.sh

echo "== lint"
ruff check .

echo "== rasa data validate"
rasa data validate --fail-on-warnings --data data/nlu.yml data/rules.yml data/stories.yml > var/log/validate.log 2>&1 \
  || { cat var/log/validate.log; exit 1; }
grep -h "UserWarning" var/log/validate.log && { echo "rasa data validate printed warnings"; exit 1; }
echo "ok"

echo "== train (once; reused when nothing changed)"
./scripts/train.sh

echo "== pytest"
REQUIRE_MODEL=1 REQUIRE_BROWSER=1 python -m pytest -q -rs "$@"

echo "== conversation tests (rasa test core)"
rm -rf var/test-results
if ! rasa test core --model "$SHOP_MODEL" --stories tests/test_stories.yml --fail-on-prediction-errors \
    --out var/test-results > var/log/rasa-test.log 2>&1; then
  grep -v "^\s*$" var/test-results/failed_test_stories.yml 2>/dev/null | head -80 || tail -40 var/log/rasa-test.log
  echo "conversation tests failed; see var/test-results and var/log/rasa-test.log"
  exit 1
fi
grep -A3 "Correct:" var/log/rasa-test.log | head -8 || true
echo "all tests passed"
