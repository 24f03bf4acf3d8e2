#!/usr/bin/env bash
# The main command: set up if needed, train if needed, start the action server, talk to the bot.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$PROJECT_ROOT"

./scripts/setup.sh
./scripts/train.sh

echo "chat: starting the action server on port $ACTION_SERVER_PORT (log: var/log/actions.log)"
rasa run actions --actions actions --port "$ACTION_SERVER_PORT" > var/log/actions.log 2>&1 &
actions_pid=$!
trap 'kill $actions_pid 2>/dev/null || true' EXIT
for _ in $(seq 1 60); do
  curl -sf "http://localhost:$ACTION_SERVER_PORT/health" >/dev/null && break
  kill -0 $actions_pid 2>/dev/null || { echo "chat: the action server did not start; see var/log/actions.log"; exit 1; }
  sleep 1
done

echo "chat: loading the model (about 30 s on 2 cores). Type /stop to leave."
# rasa shell waits up to $RASA_SHELL_STREAM_READING_TIMEOUT_IN_SECONDS for a reply (env.sh: 60 s, for generated ones).
# quiet_rasa.py is `rasa` without the libraries' deprecation warnings in front of the prompt.
python scripts/quiet_rasa.py shell --model "$SHOP_MODEL" --endpoints endpoints.yml
