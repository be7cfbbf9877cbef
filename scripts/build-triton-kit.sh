#!/usr/bin/env bash
# Builds the real-Triton test kit: a virtualenv with the nvidia-pytriton wheel, which carries a real
# `tritonserver` (2.51) with its Python backend, plus what the test model's Python backend needs (numpy).
# Cached under the XDG cache dir; a second run reuses it (a few milliseconds).
#
#   scripts/build-triton-kit.sh            # build (or reuse) the kit
#   CHARTER_TESTKIT_DIR=/path scripts/build-triton-kit.sh
#   PYTHON=python3.12 scripts/build-triton-kit.sh
#
# Prints the kit directory on its last line; everything else goes to stderr.
set -euo pipefail

PYTRITON_VERSION="${PYTRITON_VERSION:-0.7.0}"
PYTHON="${PYTHON:-python3.11}"
cache_root="${XDG_CACHE_HOME:-$HOME/.cache}"
kit="${CHARTER_TESTKIT_DIR:-$cache_root/charter-tui/testkit}"
venv="$kit/triton-venv"
# The stamp names the wheel version, so bumping PYTRITON_VERSION rebuilds instead of reusing a stale venv.
stamp="$venv/.charter-kit-pytriton-$PYTRITON_VERSION"

log() { echo "[triton-kit] $*" >&2; }
# pip prints one "... is ignored" warning per unrelated option it skips; they bury real errors.
quiet_pip() { "$venv/bin/pip" "$@" 2> >(grep -v "is ignored" >&2); }

if ! command -v "$PYTHON" >/dev/null 2>&1; then
  log "error: $PYTHON not found on PATH (set PYTHON=python3.X to use another interpreter, 3.8 to 3.13)"
  exit 1
fi

mkdir -p "$kit"
# One builder at a time. A lock of its own (not the vLLM kit's .build.lock) so the two kits can be
# built side by side; two `make test` runs still never pip-install into the same venv at once.
exec 9>"$kit/.triton-build.lock"
flock 9

if [ ! -f "$stamp" ]; then
  log "building $venv (nvidia-pytriton $PYTRITON_VERSION with $PYTHON; about 20 s and 370 MB)"
  rm -rf "$venv"
  "$PYTHON" -m venv "$venv"
  quiet_pip install --quiet --upgrade pip
  # numpy: triton_python_backend_utils and the test model import it inside the backend stub's
  # interpreter, which finds the venv's packages through PYTHONPATH (set by testkit/triton.py).
  # The wheel pins numpy<2 itself; naming it keeps that explicit.
  quiet_pip install --quiet "nvidia-pytriton==$PYTRITON_VERSION" "numpy<2"

  pyver="$("$venv/bin/python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
  pkg="$("$venv/bin/python" -c 'import pathlib, pytriton; print(pathlib.Path(pytriton.__file__).parent)')"
  stub="$pkg/tritonserver/python_backend_stubs/$pyver/triton_python_backend_stub"
  if [ ! -x "$stub" ]; then
    log "error: nvidia-pytriton $PYTRITON_VERSION ships no Python backend stub for Python $pyver ($stub)"
    exit 1
  fi
  # The Python backend starts `<backends>/python/triton_python_backend_stub`, which embeds libpython:
  # it must be the stub built for the Python whose packages the model imports, i.e. this venv's.
  cp "$stub" "$pkg/tritonserver/backends/python/triton_python_backend_stub"

  # Record what the server launcher needs, so it does not have to import pytriton (slow) at each start.
  libdir="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_config_var("LIBDIR") or "")')"
  site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
  libs="$(dirname "$pkg")/nvidia_pytriton.libs"
  cat >"$venv/charter-triton-kit.env" <<EOF
TRITON_PKG_DIR=$pkg
TRITON_LIBS_DIR=$libs
TRITON_PYTHON_VERSION=$pyver
TRITON_PYTHON_LIBDIR=$libdir
TRITON_SITE_PACKAGES=$site
EOF

  # Prove the binaries link before calling the kit built: a missing shared library shows here, not
  # later as a server that dies during a test. (`tritonserver --version` would start a server.)
  if LD_LIBRARY_PATH="$libs:$libdir" ldd "$pkg/tritonserver/bin/tritonserver" | grep -q "not found"; then
    log "error: tritonserver is missing shared libraries:"
    LD_LIBRARY_PATH="$libs:$libdir" ldd "$pkg/tritonserver/bin/tritonserver" | grep "not found" >&2
    exit 1
  fi
  if LD_LIBRARY_PATH="$libs:$libdir" ldd "$pkg/tritonserver/backends/python/triton_python_backend_stub" \
      | grep -q "not found"; then
    log "error: the Python backend stub is missing shared libraries (is $PYTHON built with --enable-shared?):"
    LD_LIBRARY_PATH="$libs:$libdir" ldd "$pkg/tritonserver/backends/python/triton_python_backend_stub" \
      | grep "not found" >&2
    exit 1
  fi
  log "tritonserver ready in $pkg/tritonserver (Python backend stub $pyver)"
  touch "$stamp"
fi
echo "$kit"
