#!/usr/bin/env bash
# The real Prometheus the tests query (Debian's `prometheus` package): installed once, where missing.
# Prints the binary's path last. Needs root (or the package already installed) and the Debian mirror.
set -euo pipefail
if ! command -v prometheus >/dev/null 2>&1; then
  if [ "$(id -u)" != "0" ]; then
    echo "prometheus is missing and this is not root: install Debian's package (apt-get install prometheus)" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y --no-install-recommends prometheus >/tmp/charter-prometheus-apt.log 2>&1; then
    apt-get update >>/tmp/charter-prometheus-apt.log 2>&1
    apt-get install -y --no-install-recommends prometheus >>/tmp/charter-prometheus-apt.log 2>&1 \
      || { tail -20 /tmp/charter-prometheus-apt.log >&2; exit 1; }
  fi
  echo "[prometheus-kit] installed Debian's prometheus $(prometheus --version 2>&1 | head -1)" >&2
fi
command -v prometheus
