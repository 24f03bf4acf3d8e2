#!/usr/bin/env bash
# Installs Debian's HAProxy for the local cluster (scripts/cluster.sh) and its tests, or does nothing when it is
# there. The package's service is not started: the cluster runs its own haproxy with its own config.
set -euo pipefail
source "$(dirname "$0")/env.sh"

HAPROXY=${SHOP_HAPROXY:-$(command -v haproxy || echo /usr/sbin/haproxy)}
if [[ -x "$HAPROXY" ]]; then
  exit 0
fi
if [[ $EUID -eq 0 ]]; then
  as_root=()
elif command -v sudo >/dev/null; then
  as_root=(sudo)
else
  echo "setup-balancer: HAProxy is missing; install it as root: apt-get install haproxy"
  exit 1
fi
echo "setup-balancer: installing Debian's haproxy (log: var/log/setup-balancer.log)"
if ! { "${as_root[@]}" apt-get update -q && "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q haproxy; } > "$PROJECT_ROOT/var/log/setup-balancer.log" 2>&1; then
  tail -n 20 "$PROJECT_ROOT/var/log/setup-balancer.log"
  echo "setup-balancer: installing haproxy failed"
  exit 1
fi
echo "setup-balancer: $(haproxy -v | head -1) ready"
