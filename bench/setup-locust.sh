#!/usr/bin/env bash
# Installs Locust (the load generator of bench/load.py) into its own virtual environment, var/tools/locust-venv, or
# does nothing when the pinned version is there. Never into .venv: Locust brings pytest and packaging versions that
# conflict with Rasa's pins. Prints the locust executable's path.
set -euo pipefail
source "$(dirname "$0")/../scripts/env.sh"

LOCUST_VERSION=2.47.0
VENV="$PROJECT_ROOT/var/tools/locust-venv"
STAMP="$VENV/.installed-locust-$LOCUST_VERSION"
if [[ -f "$STAMP" && -x "$VENV/bin/locust" ]]; then
  echo "$VENV/bin/locust"
  exit 0
fi
PYTHON=${LOCUST_PYTHON:-$(command -v python3.11 || command -v python3)}
mkdir -p "$PROJECT_ROOT/var/tools" "$PROJECT_ROOT/var/log"
LOG="$PROJECT_ROOT/var/log/setup-locust.log"
echo "setup-locust: installing locust==$LOCUST_VERSION into $VENV (log: $LOG)" >&2
rm -rf "$VENV"
if ! { "$PYTHON" -m venv "$VENV" && "$VENV/bin/pip" install -q "locust==$LOCUST_VERSION"; } > "$LOG" 2>&1; then
  tail -n 20 "$LOG" >&2
  echo "setup-locust: installing Locust failed" >&2
  exit 1
fi
"$VENV/bin/locust" --version >> "$LOG" 2>&1
touch "$STAMP"
echo "$VENV/bin/locust"
