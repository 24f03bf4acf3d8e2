# Sourced by the scripts: the environment every command of this project runs in.
# Nothing here is a secret; secrets (DATABASE_URL with a password, Slack tokens) come from your shell.
PROJECT_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export PROJECT_ROOT
export PATH="$PROJECT_ROOT/.venv/bin:$PATH"
export PYTHONPATH="$PROJECT_ROOT${PYTHONPATH:+:$PYTHONPATH}"
export RASA_TELEMETRY_ENABLED=false          # never call home
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1  # weights come from installed packages only
# Idle OpenMP threads sleep instead of spinning: on shared cores spinning made each torch prediction ~10x slower.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
export TF_CPP_MIN_LOG_LEVEL=2 SQLALCHEMY_SILENCE_UBER_WARNING=1 PYTHONWARNINGS=ignore  # library deprecation noise
export ACTION_SERVER_PORT=${ACTION_SERVER_PORT:-5055}
# Request bodies above 900 kB are refused at once (413): over 1 MB, socket.io's long-polling held the request for
# 60 s and answered 503. No customer message comes near it; it also refuses model uploads over Rasa's HTTP API.
export SANIC_REQUEST_MAX_SIZE=${SANIC_REQUEST_MAX_SIZE:-900000}
# rasa shell stops waiting for a reply after 10 s by default; a reply the generator writes on a CPU can take longer.
export RASA_SHELL_STREAM_READING_TIMEOUT_IN_SECONDS=${RASA_SHELL_STREAM_READING_TIMEOUT_IN_SECONDS:-60}
# endpoints.yml reads these. The defaults are the embedded profile: one process, nothing but SQLite files;
# scripts/cluster.sh sets the scale-out profile (docs/deployment.md). Passwords come from your shell, never from here.
export ACTION_ENDPOINT_URL=${ACTION_ENDPOINT_URL:-http://localhost:$ACTION_SERVER_PORT/webhook}
export TRACKER_STORE_URL=${TRACKER_STORE_URL:-sqlite:///$PROJECT_ROOT/var/tracker.db}  # conversations
export LOCK_STORE_TYPE=${LOCK_STORE_TYPE:-in_memory}  # replicas: shop.lock_store.AtomicRedisLockStore
export REDIS_HOST=${REDIS_HOST:-localhost} REDIS_PORT=${REDIS_PORT:-6379} REDIS_PASSWORD=${REDIS_PASSWORD:-}
export EVENT_BROKER_URL=${EVENT_BROKER_URL:-}  # amqp://user:password@host:5672/ publishes every event; empty: none
export EVENT_BROKER_QUEUE=${EVENT_BROKER_QUEUE:-rasa_events}
export SHOP_MODEL=${SHOP_MODEL:-$PROJECT_ROOT/models/shop.tar.gz}
export SHOP_CHROMIUM=${SHOP_CHROMIUM:-/usr/bin/chromium}  # the browser the web chat's tests drive
mkdir -p "$PROJECT_ROOT/var/log"
