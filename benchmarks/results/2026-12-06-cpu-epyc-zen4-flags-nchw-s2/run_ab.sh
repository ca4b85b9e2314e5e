#!/bin/bash
# Alternates builds over rounds: portable (main), native (/tmp/native), and portable with the L3 of 32 MB (prefetching channels_last rows from 3 MB).
export MALLOC_MMAP_THRESHOLD_=1073741824 MALLOC_TRIM_THRESHOLD_=4294967296
PY=/work/main/.venv/bin/python
SHAPES='[[8,240,28,28,5,1,1,"cl"],[8,384,14,14,7,1,1,"nchw"],[1,256,33,33,3,1,6,"nchw"],[8,144,56,56,3,1,1,"cl"],[8,144,56,56,3,2,1,"nchw"],[8,32,80,80,3,1,1,"cl"],[8,144,40,40,3,1,1,"cl"],[8,96,80,80,3,2,1,"cl"],[8,24,80,80,3,1,1,"cl"],[1,96,112,112,3,2,1,"nchw"],[1,144,56,56,3,2,1,"nchw"]]'
OUTF=$1; ROUNDS=${2:-3}
for r in $(seq $ROUNDS); do
  for t in 1 2; do
    PYTHONPATH=/work/main/python $PY /tmp/ab/ab_fwd.py "$SHAPES" $t | sed 's/^/portable /' >> $OUTF
    PYTHONPATH=/tmp/native/python $PY /tmp/ab/ab_fwd.py "$SHAPES" $t | sed 's/^/native /' >> $OUTF
    ATROUS_CPU_CACHE_BYTES=33554432 PYTHONPATH=/work/main/python $PY /tmp/ab/ab_fwd.py "$SHAPES" $t | sed 's/^/l3-32mb /' >> $OUTF
  done
done
