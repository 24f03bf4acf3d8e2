#!/usr/bin/env bash
# The web chat in one command: set up and train if needed, start the action server, the Rasa server (socket.io
# channel) and a static server for webchat/, then print the page's address. Ctrl-C stops all three.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$PROJECT_ROOT"

RASA_PORT=${RASA_PORT:-5005}
WEBCHAT_PORT=${WEBCHAT_PORT:-8080}
# The page and Rasa are on different ports, i.e. different origins: Rasa must allow the page's (CORS).
WEBCHAT_CORS=${WEBCHAT_CORS:-http://localhost:$WEBCHAT_PORT http://127.0.0.1:$WEBCHAT_PORT}

./scripts/setup.sh
./scripts/train.sh

pids=()
stop() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop EXIT
trap 'echo; echo "web: stopping"; exit 130' INT TERM

wait_for() {  # URL PID LOG SECONDS: until URL answers, or fail when the process died or time ran out
  for _ in $(seq 1 "$4"); do
    curl -sf "$1" >/dev/null && return 0
    kill -0 "$2" 2>/dev/null || { echo "web: the server behind $1 stopped; see $3"; tail -n 20 "$3"; exit 1; }
    sleep 1
  done
  echo "web: $1 did not answer within $4 s; see $3"
  exit 1
}

echo "web: starting the action server on port $ACTION_SERVER_PORT (log: var/log/actions.log)"
rasa run actions --actions actions --port "$ACTION_SERVER_PORT" > var/log/actions.log 2>&1 &
pids+=($!)
wait_for "http://localhost:$ACTION_SERVER_PORT/health" "${pids[-1]}" var/log/actions.log 60

echo "web: starting Rasa on port $RASA_PORT and loading the model (about a minute; log: var/log/rasa.log)"
# shellcheck disable=SC2086  # WEBCHAT_CORS is a list of origins
rasa run --model "$SHOP_MODEL" --endpoints endpoints.yml --credentials credentials.yml \
  --interface 127.0.0.1 --port "$RASA_PORT" --cors $WEBCHAT_CORS > var/log/rasa.log 2>&1 &
pids+=($!)
python -m http.server "$WEBCHAT_PORT" --bind 127.0.0.1 --directory webchat > var/log/webchat.log 2>&1 &
pids+=($!)
wait_for "http://127.0.0.1:$RASA_PORT/" "${pids[1]}" var/log/rasa.log 300
wait_for "http://127.0.0.1:$WEBCHAT_PORT/" "${pids[2]}" var/log/webchat.log 10

echo
echo "web: the chat is at http://localhost:$WEBCHAT_PORT/?server=http://localhost:$RASA_PORT"
echo "web: Ctrl-C stops the action server, Rasa and the page server"
wait -n "${pids[@]}" || true
echo "web: a server stopped; see var/log/actions.log, var/log/rasa.log and var/log/webchat.log"
exit 1
