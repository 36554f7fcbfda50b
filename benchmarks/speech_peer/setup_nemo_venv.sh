#!/usr/bin/env bash
# The NeMo peer of benchmarks/bench_speech_to_text.py: nemo-toolkit[asr]==3.0.0 from PyPI in its own virtual
# environment, beside (never inside) tao's .venv, because NeMo pins its own lightning, hydra and transformers.
#
#   benchmarks/speech_peer/setup_nemo_venv.sh [VENV]     (default benchmarks/.nemo-venv, git-ignored)
#
# Idempotent: a venv whose marker file matches these pins and which imports NeMo's ASR collection is kept.
# torch is installed first and pinned by a constraints file through the whole install: NeMo asks for
# torch>=2.6, and a looser pin lets pip swap in a CUDA build of several GB. The exact torch is the one tao
# trains with (TORCH_VERSION, as in the Makefile), so both sides run the same kernels.
# Prints the install time and the venv's size at the end.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
VENV="${1:-$REPO/benchmarks/.nemo-venv}"
PYTHON="${PYTHON:-python3.11}"
TORCH_VERSION="${TORCH_VERSION:-2.13.0}"
NEMO_VERSION="${NEMO_VERSION:-3.0.0}"
MARKER="$VENV/.nemo-installed"
WANT="torch==$TORCH_VERSION nemo-toolkit[asr]==$NEMO_VERSION"

if [[ -f "$MARKER" && "$(cat "$MARKER")" == "$WANT" ]] \
        && "$VENV/bin/python" -c "import nemo.collections.asr" >/dev/null 2>&1; then
    echo "setup_nemo_venv: $VENV already has $WANT (delete $MARKER to reinstall)"
    exit 0
fi

started=$(date +%s)
command -v "$PYTHON" >/dev/null || { echo "setup_nemo_venv: $PYTHON not found: set PYTHON=<a python >= 3.10>" >&2; exit 2; }
test -x "$VENV/bin/python" || "$PYTHON" -m venv "$VENV"

# one constraints file for every pip call: torch stays exactly TORCH_VERSION
CONSTRAINTS="$VENV/constraints.txt"
printf 'torch==%s\n' "$TORCH_VERSION" >"$CONSTRAINTS"

"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/pip" install -c "$CONSTRAINTS" "torch==$TORCH_VERSION"
"$VENV/bin/pip" install -c "$CONSTRAINTS" "nemo-toolkit[asr]==$NEMO_VERSION"

# what the benchmark uses must import, with the pinned torch
"$VENV/bin/python" - "$TORCH_VERSION" <<'PY'
import sys
import torch
assert torch.__version__.split("+")[0] == sys.argv[1], f"torch {torch.__version__} is not the pinned {sys.argv[1]}"
import nemo
from nemo.collections.asr.models import EncDecCTCModel  # noqa: F401
from nemo.collections.asr.metrics.wer import word_error_rate  # noqa: F401
print(f"setup_nemo_venv: nemo {nemo.__version__}, torch {torch.__version__} import")
PY

echo "$WANT" >"$MARKER"
echo "setup_nemo_venv: installed in $(( $(date +%s) - started )) s; $VENV is $(du -sh "$VENV" | cut -f1)"
