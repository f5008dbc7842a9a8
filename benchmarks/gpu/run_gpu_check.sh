#!/usr/bin/env bash
# The GPU check of the "triton" backend, in one go on a CUDA machine (about 5-8 minutes on an H100):
#   1. installs the package into a venv that sees the machine's own CUDA torch and Triton (no download:
#      --no-deps --no-build-isolation; the machine must have torch with CUDA, triton, numpy, safetensors, h5py,
#      pillow, tqdm, matplotlib, pytest, pytest-benchmark, scikit-build-core, pybind11, cmake and a C++ compiler),
#   2. runs tests/ops/test_triton.py compiled on CUDA tensors (no interpreter; bf16 included),
#   3. the error table (benchmarks/gpu/error_table.py: max relative error per op, dtype and n, vs float64),
#   4. the GPU benchmarks (benchmarks/bench_gpu.py: ours vs torch.fft + gather/scatter vs the dense reference,
#      per rate 0/50/90 %, fp32 and bf16, the paper's sizes),
# and writes OUT_DIR/gpu_check.json (everything) plus the raw files, and prints the Markdown tables.
#
#   bash benchmarks/gpu/run_gpu_check.sh [OUT_DIR]        (default: $OUT if set, else benchmarks/gpu/out)
#   PYTHON=/path/to/python3 bash benchmarks/gpu/run_gpu_check.sh ...
set -uo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
out=${1:-${OUT:-$root/benchmarks/gpu/out}}
mkdir -p "$out"
out=$(cd "$out" && pwd)
py=${PYTHON:-python3}
work=$(mktemp -d)
export PYTHONUNBUFFERED=1 CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}
unset TRITON_INTERPRET
status() { echo "$1=$2" >> "$out/steps.txt"; }
: > "$out/steps.txt"

echo "== device"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/nvidia-smi.txt"

echo "== install (venv with the system's packages, the package built here)"
"$py" -m venv --system-site-packages "$work/venv"
vpy="$work/venv/bin/python"
start=$SECONDS
"$vpy" -m pip install -q --no-deps --no-build-isolation "$root" > "$out/install.log" 2>&1
status install $?
echo "install: $((SECONDS - start)) s"
"$vpy" -c "import torch, triton, s4op_kernels; assert torch.cuda.is_available(); print('torch', torch.__version__, \
'triton', triton.__version__, 'backends', s4op_kernels.available_backends())" | tee "$out/versions.txt"

# pytest from outside the source tree (the installed package must be imported), with the repository's config.
cd "$work"
echo "== tests/ops/test_triton.py on CUDA (compiled)"
start=$SECONDS
timeout 330 "$vpy" -m pytest "$root/tests/ops/test_triton.py" -q -p no:cacheprovider --rootdir "$root" \
  -c "$root/pyproject.toml" --junitxml "$out/tests.xml" 2>&1 | tee "$out/tests.log" | tail -25
status tests "${PIPESTATUS[0]}"
echo "tests: $((SECONDS - start)) s"

echo "== error table"
timeout 150 "$vpy" "$root/benchmarks/gpu/error_table.py" --seeds 2 --json "$out/errors.json" | tee "$out/errors.md"
status errors "${PIPESTATUS[0]}"

echo "== benchmarks/bench_gpu.py"
start=$SECONDS
timeout 300 "$vpy" -m pytest "$root/benchmarks/bench_gpu.py" -q -p no:cacheprovider --rootdir "$root" \
  -c "$root/pyproject.toml" --benchmark-only --benchmark-json "$out/bench_gpu.json" > "$out/bench.log" 2>&1
status bench $?
tail -5 "$out/bench.log"
echo "benchmarks: $((SECONDS - start)) s"

echo "== report"
"$vpy" "$root/benchmarks/gpu/gpu_report.py" "$out" | tee "$out/report.md"
cd "$root"
rm -rf "$work"
cat "$out/steps.txt"
