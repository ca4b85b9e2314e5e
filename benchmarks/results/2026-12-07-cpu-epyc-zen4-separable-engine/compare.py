# Compares the suites run_ab.sh wrote: python compare.py 2 1 (threads) > compare.md
# Per case the minimum over the rounds of each build; torch: the minimum over every run.
import sys, re, glob, statistics as st
# parse md tables: case, layout, fwd fused ms (col 5), fwd torch (col 3), fb torch (col 8), fb fused (col 10)
def parse(f):
    rows={}
    for line in open(f):
        c=[x.strip() for x in line.strip().strip('|').split('|')]
        if len(c)>=15 and c[2].replace('.','').isdigit():
            rows[(c[0],c[1])]=dict(ft=float(c[2]),ff=float(c[4]),bt=float(c[7]),bf=float(c[9]))
    return rows
for t in sys.argv[1:]:
    runs={v:[parse(f) for f in sorted(glob.glob(f"suite_{v}_{t}t_r*.md"))] for v in ("base","new")}
    print(f"## {t} thread(s): torch / fused, min over runs (torch min over all runs of both)")
    print("| case | layout | fwd torch | fwd base | fwd new | fwd ratio base -> new | f+b torch | f+b base | f+b new | f+b ratio base -> new |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    gm={k:[] for k in ("fb","fn","bb","bn")}
    import math
    for key in runs["base"][0]:
        g=lambda v,fld: min(r[key][fld] for r in runs[v])
        ft=min(g("base","ft"),g("new","ft")); bt=min(g("base","bt"),g("new","bt"))
        fb,fn,bb,bn=g("base","ff"),g("new","ff"),g("base","bf"),g("new","bf")
        for k,v in (("fb",ft/fb),("fn",ft/fn),("bb",bt/bb),("bn",bt/bn)): gm[k].append(math.log(v))
        print(f"| {key[0]} | {key[1]} | {ft:.3f} | {fb:.3f} | {fn:.3f} | {ft/fb:.2f}x -> {ft/fn:.2f}x | {bt:.3f} | {bb:.3f} | {bn:.3f} | {bt/bb:.2f}x -> {bt/bn:.2f}x |")
    e={k:math.exp(sum(v)/len(v)) for k,v in gm.items()}
    slow={k:sum(1 for x in v if x<0) for k,v in gm.items()}
    print(f"\ngeometric mean over torch: forward {e['fb']:.2f}x -> {e['fn']:.2f}x, forward+backward {e['bb']:.2f}x -> {e['bn']:.2f}x; slower than torch: forward {slow['fb']} -> {slow['fn']}, forward+backward {slow['bb']} -> {slow['bn']} of {len(gm['fb'])}\n")
