#!/usr/bin/env bash
# The local cluster: N Rasa replicas and M action servers behind HAProxy, conversations in PostgreSQL, the lock
# store in Redis, every event to RabbitMQ and its consumer (shop/cluster.py; docs/deployment.md).
#   scripts/cluster.sh up [--replicas 2] [--actions 2] [--port 5300]   start (sets up, trains and installs if needed)
#   scripts/cluster.sh status                                          one line per process; exit 1 if one is down
#   scripts/cluster.sh down                                            stop everything `up` started
# Services default to this machine's (127.0.0.1); set TRACKER_STORE_URL, DATABASE_URL, REDIS_HOST, REDIS_PORT,
# REDIS_PASSWORD, EVENT_BROKER_URL to use others. Logs and pids: var/cluster/.
set -euo pipefail
cd "$(dirname "$0")/.."
# The scale-out profile's defaults, before env.sh fills in the embedded ones for whatever is still unset.
export TRACKER_STORE_URL=${TRACKER_STORE_URL:-postgresql://postgres@127.0.0.1:5432/shop_conversations}
export DATABASE_URL=${DATABASE_URL:-postgresql://postgres@127.0.0.1:5432/shop}
export REDIS_HOST=${REDIS_HOST:-127.0.0.1}
export EVENT_BROKER_URL=${EVENT_BROKER_URL:-amqp://guest:guest@127.0.0.1:5672/}
source scripts/env.sh

if [[ "${1:-}" == "up" ]]; then
  ./scripts/setup.sh
  ./scripts/train.sh
  ./scripts/setup-balancer.sh
fi
exec python -m shop.cluster "$@"
