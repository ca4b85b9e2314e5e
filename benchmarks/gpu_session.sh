#!/usr/bin/env bash
# One lent-GPU session in one call: build, CUDA tests, compute-sanitizer, benchmarks.
#   bash benchmarks/gpu_session.sh [steps...]
# steps: build diag test memcheck racecheck initcheck bench bench-bf16 unpool unpool-nv pool (default: all).
# Each step's log goes to $LOGS; at the end they are packed into $OUT/logs.tgz beside
# $OUT/summary.txt (the device tool brings back a few files only). BUDGET (seconds, default 570)
# bounds the whole run: a step gets what is left of it and is skipped when under 20 s remain.
set -u
OUT=${OUT:-/tmp/atrous-gpu}
LOGS=${LOGS:-/tmp/atrous-logs}
BUDGET=${BUDGET:-570}
mkdir -p "$OUT" "$LOGS"
# The device image's default CXX (/opt/gcc/bin/g++) links libstdc++ statically into the
# extension, which then crashes in its first iostream use inside torch's process: use the
# system compiler, which links libstdc++ dynamically as torch does.
[ -x /usr/bin/g++ ] && export CC=/usr/bin/gcc CXX=/usr/bin/g++
export PYTHONUNBUFFERED=1 MAX_JOBS=${MAX_JOBS:-16} CUDA_HOME=${CUDA_HOME:-/usr/local/cuda}
steps=${*:-build diag test memcheck racecheck initcheck bench bench-bf16 unpool unpool-nv pool}
summary=$OUT/summary.txt
: > "$summary"
note() { echo "$*" | tee -a "$summary"; }
run() {  # run <name> <limit s> <command...>
  local name=$1 limit=$2; shift 2
  local left=$((BUDGET - SECONDS))
  if [ "$left" -lt 20 ]; then note "$name: skipped, budget spent"; return; fi
  [ "$limit" -gt "$left" ] && limit=$left
  local t0=$SECONDS
  timeout "$limit" "$@" > "$LOGS/$name.log" 2>&1
  local rc=$?
  note "$name: rc=$rc in $((SECONDS - t0)) s"
  tail -n 3 "$LOGS/$name.log" | cut -c1-300 | sed 's/^/    /' | tee -a "$summary"
}
# The lent machine's copy of the tree has carried a stale .git (it printed the session's first
# commit for every run), so pass ATROUS_COMMIT=$(git rev-parse --short HEAD) from the checkout.
note "date $(date -u +%FT%TZ) commit ${ATROUS_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null)$(git diff --quiet HEAD 2>/dev/null || echo +dirty) (git on this machine)}"
note "$(nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem --format=csv,noheader 2>&1)"
note "$(python3 -c 'import torch; print("torch", torch.__version__, torch.version.cuda)' 2>&1)"
# Packages the device image lacks travel as wheels in .whl (carried by the device tool).
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
fi
SAN="compute-sanitizer --kernel-name kns=atrous --error-exitcode 9"
BENCH="--device cuda --rounds 2 --min-run-time 0.1"
for s in $steps; do
  case $s in
    build) run build 300 python3 -m pip install --no-build-isolation --no-deps -e . ;;
    diag) run diag 120 bash -c 'python3 -X faulthandler -c "import atrous, json; print(json.dumps(atrous.build_info()))" ||
            cuda-gdb -batch -ex run -ex bt --args python3 -c "import atrous"' ;;
    test) run test 330 python3 -m pytest -q -p no:cacheprovider -n 12 tests --ignore tests/test_build.py -rfE ;;
    memcheck) PYTORCH_NO_CUDA_MEMORY_CACHING=1 run memcheck 240 $SAN --tool memcheck python3 tests/cuda_sanitize.py ;;
    racecheck) run racecheck 240 $SAN --tool racecheck python3 tests/cuda_sanitize.py ;;
    # initcheck watches every kernel: filtered to ours, it would count what torch's own kernels
    # write as uninitialised.
    initcheck) PYTORCH_NO_CUDA_MEMORY_CACHING=1 run initcheck 240 compute-sanitizer --error-exitcode 9 --tool initcheck python3 tests/cuda_sanitize.py ;;
    bench) run bench 300 python3 benchmarks/bench_depthwise.py $BENCH --dtype float32 ;;
    bench-bf16) run bench-bf16 300 python3 benchmarks/bench_depthwise.py $BENCH --dtype bfloat16 ;;
    unpool) run unpool 200 python3 benchmarks/bench_max_unpool.py $BENCH ;;
    unpool-nv) run unpool-nv 200 python3 benchmarks/bench_max_unpool.py $BENCH --no-validate ;;
    pool) run pool 200 python3 benchmarks/bench_max_pool.py $BENCH ;;
    *) note "unknown step $s" ;;
  esac
done
tar czf "$OUT/logs.tgz" -C "$LOGS" .
