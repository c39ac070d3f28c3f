#!/usr/bin/env bash
# On a machine with a CUDA GPU: the CUDA tests, then the GPU benchmarks, figures into $OUT (default
# benchmarks/gpu_results). Needs a CUDA build of torch in .venv (./dev installs the CPU wheel:
# `.venv/bin/pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cu126` first).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-benchmarks/gpu_results}"; mkdir -p "$OUT"
PY=.venv/bin/python
$PY -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.cuda.get_device_name())" | tee "$OUT/device.txt"
$PY -m pytest -m cuda tests/test_cuda.py -q -p no:cacheprovider --junitxml "$OUT/cuda_tests.xml" | tee "$OUT/cuda_tests.txt"
$PY benchmarks/sylvester.py --only batch --device cuda --json "$OUT/sylvester_batch.json" | tee "$OUT/sylvester_batch.txt"
