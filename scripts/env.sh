# Sourced by the scripts: the environment every command of this project runs in.
# Nothing here is a secret; secrets (DATABASE_URL with a password, Slack tokens) come from your shell.
PROJECT_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export PROJECT_ROOT
export PATH="$PROJECT_ROOT/.venv/bin:$PATH"
export PYTHONPATH="$PROJECT_ROOT${PYTHONPATH:+:$PYTHONPATH}"
export RASA_TELEMETRY_ENABLED=false          # never call home
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1  # weights come from installed packages only
export TF_CPP_MIN_LOG_LEVEL=2 SQLALCHEMY_SILENCE_UBER_WARNING=1 PYTHONWARNINGS=ignore  # library deprecation noise
export ACTION_SERVER_PORT=${ACTION_SERVER_PORT:-5055}
export SHOP_MODEL=${SHOP_MODEL:-$PROJECT_ROOT/models/shop.tar.gz}
mkdir -p "$PROJECT_ROOT/var/log"
