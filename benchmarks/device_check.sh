#!/usr/bin/env bash
# The accelerator check in one command (see benchmarks/device_check.py for what it measures).
#   bash benchmarks/device_check.sh          # on a GPU/TPU machine: under 8 minutes
#   bash benchmarks/device_check.sh --tiny   # anywhere (a CPU check of the script itself)
# Results: $OUT/device_check/ when $OUT is set (the device machine), else outputs/device_check/.
# Uses the python on PATH (or $PYTHON) with the JAX and PyTorch already installed; nothing is
# downloaded and ../shared is not needed.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-$(command -v python3 || command -v python)}"
DIR="${OUT:+$OUT/device_check}"
DIR="${DIR:-outputs/device_check}"
mkdir -p "$DIR"
# JAX and PyTorch share the chip: JAX takes 45% of its memory up front, PyTorch allocates from the rest.
export XLA_PYTHON_CLIENT_MEM_FRACTION="${XLA_PYTHON_CLIENT_MEM_FRACTION:-0.45}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
# The script stops starting new parts at its budget (400 s); the hard limit keeps the whole run
# under 8 minutes even if one part runs long. Its JSON is rewritten after every part.
set +e
timeout --signal=INT --kill-after=20 460 "$PYTHON" benchmarks/device_check.py --out "$DIR" "$@" 2>&1 | tee "$DIR/device_check.log"
rc=${PIPESTATUS[0]}
set -e
[ "$rc" = 124 ] && echo "device_check: stopped at the 460 s limit; $DIR/device_check.json has the parts that finished" >&2
exit "$rc"
