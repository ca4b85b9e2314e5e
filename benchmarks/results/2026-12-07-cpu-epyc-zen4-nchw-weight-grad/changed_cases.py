# Per case and layout, minima over rounds of the fused op's forward and forward+backward ms (and torch's, over both
# builds' runs), from lines "<build> r<round> | case | layout | fwd torch | ... |" of bench_separable.py's table.
import sys, collections
rows = collections.defaultdict(lambda: collections.defaultdict(list))
for line in open(sys.argv[1]):
    build, _, rest = line.split(" ", 2)
    c = [x.strip() for x in rest.strip().strip("|").split("|")]
    key = (c[0], c[1])
    rows[key]["ft"].append(float(c[2])); rows[key]["bt"].append(float(c[7]))
    rows[key]["f" + build].append(float(c[4])); rows[key]["b" + build].append(float(c[9]))
print("| case | layout | fwd torch | fwd base | fwd new | f+b torch | f+b base | f+b new | f+b vs torch base -> new |")
print("|---|---|---|---|---|---|---|---|---|")
for (case, layout), r in rows.items():
    m = {k: min(v) for k, v in r.items()}
    print(f"| {case} | {layout} | {m['ft']:.3f} | {m['fbase']:.3f} | {m['fnew']:.3f} | {m['bt']:.3f} | {m['bbase']:.3f} | "
          f"{m['bnew']:.3f} | {m['bt']/m['bbase']:.2f}x -> {m['bt']/m['bnew']:.2f}x |")
