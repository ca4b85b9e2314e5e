#!/bin/bash
# The channels_last prefetch, off (this machine's reported 320 MB L3: threshold 20 MB) and on from 3 MB (ATROUS_CPU_CACHE_BYTES=32 MiB, the L3 sysfs reports), one build, alternating. $1 fwd|fb
export MALLOC_MMAP_THRESHOLD_=1073741824 MALLOC_TRIM_THRESHOLD_=4294967296
PY=/work/main/.venv/bin/python
DIR=$1; OUTF=$2; ROUNDS=${3:-3}
S='[[8,32,80,80,3,1,1],[8,144,40,40,3,1,1],[8,96,80,80,3,2,1],[8,24,80,80,3,1,1],[8,144,56,56,3,1,1],[8,240,28,28,5,1,1],[8,240,20,20,5,1,1]]'
for r in $(seq $ROUNDS); do
  for t in 1 2; do
    PYTHONPATH=/work/main/python $PY /tmp/ab/ab_layers.py "$S" $t $DIR 2>/dev/null | sed 's/^/base /' >> $OUTF
    ATROUS_CPU_CACHE_BYTES=33554432 PYTHONPATH=/work/main/python $PY /tmp/ab/ab_layers.py "$S" $t $DIR 2>/dev/null | sed 's/^/new /' >> $OUTF
  done
done
