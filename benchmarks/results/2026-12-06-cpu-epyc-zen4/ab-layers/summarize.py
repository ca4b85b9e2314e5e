# Prints the A/B table of a file of "base|new <json>" lines written by ab_layers.py (one line a layer, run and build).
import sys,json,collections,statistics
d=collections.defaultdict(lambda: collections.defaultdict(list))
for line in open(sys.argv[1]):
    v,rest=line.split(' ',1); shape,t,dr,res=json.loads(rest)
    key=(tuple(shape),t,dr)
    d[key][v+'_torch']+=res['torch']; d[key][v+'_ours']+=res['ours']
print('| layer (N,C,H,W,k,s,d) | threads | dir | torch/base (min, med) | torch/new (min, med) | base ms min | new ms min |')
print('|---|---|---|---|---|---|---|')
for key,r in d.items():
    tmin=min(r['base_torch']+r['new_torch']); tmed=statistics.median(r['base_torch']+r['new_torch'])
    bm,nm=min(r['base_ours']),min(r['new_ours']); bmed,nmed=statistics.median(r['base_ours']),statistics.median(r['new_ours'])
    print(f"| {key[0]} | {key[1]} | {key[2]} | {tmin/bm:.2f}x, {tmed/bmed:.2f}x | {tmin/nm:.2f}x, {tmed/nmed:.2f}x | {bm:.3f} | {nm:.3f} |")
