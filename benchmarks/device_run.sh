#!/usr/bin/env bash
# The accelerator check as one command of under five minutes: the GPU-relevant tests and the benchmark,
# on JAX's default device.
#
# It needs the repository, JAX with its accelerator plugin, Optax, pytest and Hypothesis (Flax and
# PyTorch for the peer contenders); the package runs from the source tree. JAXNET_LITE_DATA_DIR must name
# a folder holding mnist/ with the four IDX files (default: .devdata/ in the repository root, git-ignored):
#   JAXNET_LITE_DATA_DIR=/path/to/data bash benchmarks/device_run.sh
# Results land in $OUT (./device-out without one):
#   env.txt (GPU, versions), tests.log (the training and layer tests, on the GPU),
#   bench.log and bench.json (`python -m benchmarks`: cnn, mlp and wide, each under float32 and under
#   mixed_bfloat16, fit / fit on device arrays / make_train_step against the hand-written jit step and
#   whole-epoch scan; the JSON holds every finished row even when the time limit cuts the run short).
# DEVICE_RUN_QUICK=1 shrinks it to a minute-scale smoke run (tests/test_benchmarks.py runs it on the CPU);
# DEVICE_RUN_TESTS=0 skips the tests, DEVICE_RUN_BENCH="..." replaces the benchmark's arguments (skip: none) and
# DEVICE_RUN_BENCH_LIMIT its time limit in seconds, for a shorter follow-up run.
# DEVICE_RUN_SEQUENCE=1 adds the sequence workloads, each step time-limited: the IMDB LSTMs
# (sequence.log, sequence.json) and the character-level GPT race (char_gpt.log, char_gpt.json).
# DEVICE_RUN_GPT=1 adds the GPT race at nanoGPT's GPU configuration (`--size gpu`: 6 x 384, context 256,
# dropout 0.2, bfloat16, 5,000 iterations; char_gpt_gpu.log, char_gpt_gpu.json), limited to
# DEVICE_RUN_GPT_LIMIT seconds (default 560). Alone, as one call of under ten minutes:
#   DEVICE_RUN_TESTS=0 DEVICE_RUN_BENCH=skip DEVICE_RUN_GPT=1 bash benchmarks/device_run.sh
# DEVICE_RUN_ANATOMY=1 adds `python -m benchmarks.epoch_anatomy` (anatomy.log, anatomy.json).
# DEVICE_RUN_PROFILE=1 adds `python -m benchmarks.profile_step` on the MLP: each contender's dispatches,
# launch time and kernels from a jax.profiler trace (profile.log, profile.json, traces/ for Perfetto).
# The peers (keras_jax, flax_nnx, torch_eager) under float32, in one run of about five minutes:
#   DEVICE_RUN_TESTS=0 DEVICE_RUN_BENCH_LIMIT=250 DEVICE_RUN_BENCH="--workloads cnn,mlp,wide --windows 2
#   --contenders jnl_fit,ref_jit,keras_jax,flax_nnx,torch_eager --no-cold-start" bash benchmarks/device_run.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-device-out}
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export JAXNET_LITE_DATA_DIR="${JAXNET_LITE_DATA_DIR:-$PWD/.devdata}"
PY=${PYTHON:-python3}

contenders=jnl_fit,jnl_fit_dev,jnl_step,ref_jit,ref_scan
if [ "${DEVICE_RUN_QUICK:-0}" = 1 ]; then
  tests=(tests/test_training.py::test_iris_mlp_learns_with_compile_fit_evaluate)
  bench=(--quick --workloads cnn,mlp,mlp@mixed_bfloat16 --windows 1 --steps 4 --contenders jnl_fit,ref_jit)
  sequence=(--quick --workloads lstm --windows 1 --steps 2 --contenders jnl_fit,ref_jit)
  gpt=(--quick --contenders jnl_step,ref_gpt)
  gpt_gpu=(--size gpu --quick --windows 2 --contenders jnl_step,ref_gpt,nanogpt_torch)
  profile=(--quick --workload mlp --contenders jnl_fit_dev,ref_jit)
  test_limit=120 bench_limit=240 sequence_limit=240
else
  # At most 100 s of tests and 200 s of benchmark: on an H200 each of the six workload/policy pairs costs
  # some 25-30 s of worker start-up and compilation (five contenders) and a few seconds of windows.
  tests=(tests/test_training.py tests/test_conv_impl.py tests/test_layers_reference.py tests/test_resume.py
         tests/test_mixed_precision.py)
  bench=(--workloads cnn,mlp,wide --policy float32,mixed_bfloat16 --windows 2 --eval-windows 1 --no-cold-start
         --contenders "$contenders")
  sequence=(--workloads lstm,lstm_wide --windows 2 --eval-windows 1 --no-cold-start --contenders "$contenders")
  gpt=(--iters 500 --windows 4)
  gpt_gpu=(--size gpu --windows 5 --contenders jnl_step,ref_gpt,nanogpt_torch)
  profile=(--workload mlp --contenders "$contenders")
  test_limit=100 bench_limit=200 sequence_limit=120
fi

{
  date -u
  nvidia-smi 2>&1 || echo "nvidia-smi: not found"
  "$PY" -c "import jax, jaxlib, optax; print('jax', jax.__version__, 'jaxlib', jaxlib.__version__, 'optax', optax.__version__); print(jax.devices())"
} >"$OUT/env.txt" 2>&1
echo "== env"; cat "$OUT/env.txt"

if [ -n "${DEVICE_RUN_BENCH:-}" ]; then
  read -r -a bench <<<"$DEVICE_RUN_BENCH"
  bench_limit=${DEVICE_RUN_BENCH_LIMIT:-$bench_limit}
fi

if [ "${DEVICE_RUN_TESTS:-1}" = 1 ]; then
  echo "== tests (limit ${test_limit}s)"
  # Full-precision f32 matmuls for the tests: their tolerances assume it (GPUs default to TF32 for f32).
  JAX_DEFAULT_MATMUL_PRECISION=highest timeout "$test_limit" "$PY" -m pytest -q -x -p no:cacheprovider \
    "${tests[@]}" >"$OUT/tests.log" 2>&1
  echo "tests exit status: $?"; tail -n 5 "$OUT/tests.log"
fi

table() {  # the table of a results document, also of one a time limit cut short
  [ -f "$1" ] && "$PY" -c 'import json, sys; from benchmarks import report
doc = json.load(open(sys.argv[1])); print(report.table(doc)); print("complete:", doc.get("complete"))' "$1"
}

status=0
if [ "${DEVICE_RUN_BENCH:-}" != skip ]; then
  echo "== benchmark (limit ${bench_limit}s)"
  timeout "$bench_limit" "$PY" -m benchmarks "${bench[@]}" --out "$OUT/bench.json" >"$OUT/bench.log" 2>&1
  status=$?
  echo "benchmark exit status: $status"; grep -v "round\|cold start" "$OUT/bench.log" | tail -n 50
  [ "$status" = 124 ] && table "$OUT/bench.json"
fi

if [ "${DEVICE_RUN_SEQUENCE:-0}" = 1 ]; then
  echo "== sequence workloads (limit ${sequence_limit}s each)"
  timeout "$sequence_limit" "$PY" -m benchmarks "${sequence[@]}" --out "$OUT/sequence.json" \
    >"$OUT/sequence.log" 2>&1
  sequence_status=$?
  echo "sequence exit status: $sequence_status"; table "$OUT/sequence.json"
  timeout "$sequence_limit" "$PY" -m benchmarks --workloads char_gpt "${gpt[@]}" --out "$OUT/char_gpt.json" \
    >"$OUT/char_gpt.log" 2>&1
  echo "char_gpt exit status: $?"; tail -n 12 "$OUT/char_gpt.log"
fi

if [ "${DEVICE_RUN_GPT:-0}" = 1 ]; then
  gpt_limit=${DEVICE_RUN_GPT_LIMIT:-560}
  echo "== GPT race, nanoGPT's GPU configuration (limit ${gpt_limit}s)"
  timeout "$gpt_limit" "$PY" -m benchmarks.char_gpt "${gpt_gpu[@]}" --out "$OUT/char_gpt_gpu.json" \
    >"$OUT/char_gpt_gpu.log" 2>&1
  gpt_status=$?
  echo "char_gpt gpu exit status: $gpt_status"; grep -v "^round" "$OUT/char_gpt_gpu.log" | tail -n 14
  [ "$status" = 0 ] && status=$gpt_status
fi

if [ "${DEVICE_RUN_ANATOMY:-0}" = 1 ]; then
  echo "== epoch anatomy (limit 150s)"
  anatomy=()
  [ "${DEVICE_RUN_QUICK:-0}" = 1 ] && anatomy=(--repeats 1,2 --rounds 1 --steps 16)
  timeout 150 "$PY" -m benchmarks.epoch_anatomy "${anatomy[@]}" --out "$OUT/anatomy.json" >"$OUT/anatomy.log" 2>&1
  echo "epoch anatomy exit status: $?"; tail -n 8 "$OUT/anatomy.log"
fi
if [ "${DEVICE_RUN_PROFILE:-0}" = 1 ]; then
  echo "== profile (limit 150s)"
  timeout 150 "$PY" -m benchmarks.profile_step "${profile[@]}" --keep "$OUT/traces" --out "$OUT/profile.json" \
    >"$OUT/profile.log" 2>&1
  echo "profile exit status: $?"; head -n 12 "$OUT/profile.log"
fi
exit "$status"
