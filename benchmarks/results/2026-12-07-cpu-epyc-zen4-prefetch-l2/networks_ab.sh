# Network mode, channels_last batch 8, base and new builds alternating: BASE=<python dir of the base build> OUT=<dir> bash networks_ab.sh
export MALLOC_MMAP_THRESHOLD_=1073741824 MALLOC_TRIM_THRESHOLD_=4294967296
cd "$(git rev-parse --show-toplevel)"
for t in 1 2; do
for v in base new; do
  pp=python; [ $v = base ] && pp=$BASE
  PYTHONPATH=$pp .venv/bin/python benchmarks/bench_depthwise.py --networks --config "batch 8" --layout channels_last --threads $t --rounds 1 --markdown $OUT/net_cl_b8_${t}t_$v.md > $OUT/net_${t}_$v.log 2>&1
done; done
