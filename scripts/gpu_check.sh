#!/usr/bin/env bash
# The checks that need a GPU, in one short command (a few minutes at most):
#   every rule's torch-exact spelling against torch.optim on CUDA (scripts/gpu_rules.py), the
#   CUDA-marked tests (lockstep runs under torch.cuda.set_sync_debug_mode("error"), the lecture's
#   numbers on CUDA, every rule in lockstep with torch.optim), then the GPU rows of the bench
#   (per-sample SGD and big N on cuda).
# Usage: scripts/gpu_check.sh [OUTDIR]   (writes OUTDIR/gpu_check.txt and bench_cuda.json)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-${OUT:-gpu_check_out}}"
mkdir -p "$OUT"
PY="${PYTHON:-.venv/bin/python}"
[ -x "$PY" ] || PY=python3
{
  echo "== $(date -u) on $(hostname)"
  "$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, \
torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'NO CUDA DEVICE')"
  PYTHONPATH=. "$PY" scripts/gpu_rules.py cuda || echo "gpu_rules.py FAILED"
  "$PY" -m pytest -q -p no:cacheprovider -m cuda tests/test_cuda.py || echo "CUDA TESTS FAILED"
  "$PY" -m torchgd bench --device cuda --only sgd,big_n --json > "$OUT/bench_cuda.json"
  "$PY" - "$OUT/bench_cuda.json" <<'PYEOF'
import json, sys
from torchgd import bench
print(bench.format_table(json.load(open(sys.argv[1]))))
PYEOF
} 2>&1 | tee "$OUT/gpu_check.txt"
