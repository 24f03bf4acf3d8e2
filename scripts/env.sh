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
# rasa shell stops waiting for a reply after 10 s by default; a reply the generator writes on a CPU can take longer.
export RASA_SHELL_STREAM_READING_TIMEOUT_IN_SECONDS=${RASA_SHELL_STREAM_READING_TIMEOUT_IN_SECONDS:-60}
# Conversations (Rasa's tracker store, endpoints.yml): a SQLite file by default, PostgreSQL when you set it.
export TRACKER_STORE_URL=${TRACKER_STORE_URL:-sqlite:///$PROJECT_ROOT/var/tracker.db}
export SHOP_MODEL=${SHOP_MODEL:-$PROJECT_ROOT/models/shop.tar.gz}
export SHOP_CHROMIUM=${SHOP_CHROMIUM:-/usr/bin/chromium}  # the browser the web chat's tests drive
mkdir -p "$PROJECT_ROOT/var/log"
