#!/usr/bin/env bash
# One entry point for a fresh machine: creates or reuses .venv, installs faceedit
# (with a CPU build of torch where no CUDA is present), then runs what was asked.
#   ./run.sh demo        the main job on the embedded default model (no download)
#   ./run.sh test        the whole test suite (installs the test extras first)
#   ./run.sh ARGS...     any faceedit command, e.g. ./run.sh generate --help
set -euo pipefail
cd "$(dirname "$0")"
VENV=${FACEEDIT_VENV:-.venv}
PY=${PYTHON:-python3}

cmd=${1:-demo}
# The test suite needs every extra (faces, avatars, video, web, training logs, test tools);
# running faceedit needs only what its commands import.
if [ "$cmd" = test ]; then extras=dev; else extras=faces,avatars,video,train; fi

if [ ! -x "$VENV/bin/python" ]; then
    "$PY" -m venv "$VENV"
fi
stamp="$VENV/.faceedit-installed-$extras"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    "$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null
    if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
        if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
            "$VENV/bin/python" -m pip install -q torch
        else
            # The CPU wheel; a plain `pip install torch` would pull a multi-GB CUDA build.
            "$VENV/bin/python" -m pip install -q "torch==2.13.0" \
                --extra-index-url https://download.pytorch.org/whl/cpu 2>/dev/null \
                || "$VENV/bin/python" -m pip install -q "torch==2.13.0"
        fi
    fi
    "$VENV/bin/python" -m pip install -q -e ".[$extras]"
    touch "$stamp"
fi

shift || true
case "$cmd" in
    test)
        exec "$VENV/bin/python" -m pytest -q "$@"
        ;;
    *)
        exec "$VENV/bin/faceedit" "$cmd" "$@"
        ;;
esac
