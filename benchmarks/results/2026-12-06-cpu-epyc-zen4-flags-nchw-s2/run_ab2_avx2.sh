#!/bin/bash
# base (/tmp/native, HEAD of main before this change, portable) and new (/work/main) alternating over rounds, forward.
export ATROUS_CPU_CAPABILITY=avx2 ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MALLOC_MMAP_THRESHOLD_=1073741824 MALLOC_TRIM_THRESHOLD_=4294967296
PY=/work/main/.venv/bin/python
SHAPES=$1; OUTF=$2; ROUNDS=${3:-3}
for r in $(seq $ROUNDS); do
  for t in 1 2; do
    PYTHONPATH=/tmp/native/python $PY /tmp/ab/ab_fwd.py "$SHAPES" $t 2>/dev/null | sed 's/^/base /' >> $OUTF
    PYTHONPATH=/work/main/python $PY /tmp/ab/ab_fwd.py "$SHAPES" $t 2>/dev/null | sed 's/^/new /' >> $OUTF
  done
done
