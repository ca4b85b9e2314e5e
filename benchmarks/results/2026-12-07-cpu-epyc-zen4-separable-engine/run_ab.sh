# Interleaved A/B of the separable suite: BASE=<python dir of the base build> OUT=<dir> bash run_ab.sh
# (run from the repository root; "new" is the build in python/). Two rounds, 2 then 1 thread.
export MALLOC_MMAP_THRESHOLD_=1073741824 MALLOC_TRIM_THRESHOLD_=4294967296
for r in 1 2; do
for t in 2 1; do
for v in base new; do
  pp=python; [ $v = base ] && pp=$BASE
  PYTHONPATH=$pp .venv/bin/python benchmarks/bench_separable.py --threads $t --rounds 1 --markdown $OUT/suite_${v}_${t}t_r$r.md
done; done; done
