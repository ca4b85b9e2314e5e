#!/bin/bash
# The max_pool2d suite at 1 and 2 threads, before (BASE: a python/atrous of 435d3a1, Python autograd
# and the former channels_last backward) and after (this checkout), alternating, glibc keeping freed memory.
set -e
OUT=$(dirname "$0")
export MALLOC_MMAP_THRESHOLD_=1073741824 MALLOC_TRIM_THRESHOLD_=4294967296
for round in 1 2; do
  for th in 2 1; do
    PYTHONPATH=$BASE .venv/bin/python benchmarks/bench_max_pool.py --threads $th --rounds 3 --markdown $OUT/pool_base_${th}t_r$round.md > /dev/null 2>&1
    .venv/bin/python benchmarks/bench_max_pool.py --threads $th --rounds 3 --markdown $OUT/pool_new_${th}t_r$round.md > /dev/null 2>&1
  done
done
