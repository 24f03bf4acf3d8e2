#!/usr/bin/env bash
# Trains models/shop.tar.gz when the config, domain, training data or custom components changed since the
# last training; otherwise does nothing (in a second, without loading Rasa).
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$PROJECT_ROOT"

CONFIG=${SHOP_CONFIG_FILE:-config.yml}
inputs=("$CONFIG" domain.yml data/nlu.yml data/rules.yml data/stories.yml data/tone/*.tsv requirements/*.lock)
mapfile -t components < <(find custom_components -name '*.py' -o -name '*.safetensors' | sort)  # code and committed weights
fingerprint=$( (echo "$CONFIG"; cat "${inputs[@]}" "${components[@]}") | sha256sum | cut -d' ' -f1)
stamp="$SHOP_MODEL.sha256"

if [[ -f "$SHOP_MODEL" && -f "$stamp" && "$(cat "$stamp")" == "$fingerprint" ]]; then
  echo "train: $SHOP_MODEL is up to date"
  exit 0
fi
echo "train: training $SHOP_MODEL because config, domain or data changed (about 5 minutes on 2 cores; log: var/log/train.log)"
start=$SECONDS
if ! rasa train --config "$CONFIG" --domain domain.yml --data data/nlu.yml data/rules.yml data/stories.yml \
    --out "$(dirname "$SHOP_MODEL")" --fixed-model-name "$(basename "$SHOP_MODEL" .tar.gz)" --force \
    > var/log/train.log 2>&1; then
  tr '\r' '\n' < var/log/train.log | grep -v "Processed \|Epochs:\|Deprecat\|^\s*$" | tail -n 40
  echo "train: failed; the whole log is in var/log/train.log"
  exit 1
fi
echo "train: done in $((SECONDS - start)) s"
echo "$fingerprint" > "$stamp"
