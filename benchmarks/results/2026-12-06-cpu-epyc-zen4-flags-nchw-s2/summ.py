import sys,json,collections,statistics
d=collections.defaultdict(lambda: collections.defaultdict(list)); variants=[]
for line in open(sys.argv[1]):
    v,rest=line.split(' ',1); shape,t,res=json.loads(rest)
    if v not in variants: variants.append(v)
    key=(tuple(shape),t); d[key][v+'_torch']+=res['torch']; d[key][v]+=res['ours']
print('| layer (N,C,H,W,k,s,d,layout) | threads | torch ms min | '+' | '.join(f'{v} ms min (med)' for v in variants)+' | '+' | '.join(f'torch/{v} min' for v in variants)+' |')
print('|---|---|---|'+'---|'*2*len(variants))
for key,r in d.items():
    tt=[x for v in variants for x in r[v+'_torch']]; tmin=min(tt)
    print(f"| {key[0]} | {key[1]} | {tmin:.3f} | "+' | '.join(f"{min(r[v]):.3f} ({statistics.median(r[v]):.3f})" for v in variants)+' | '+' | '.join(f"{tmin/min(r[v]):.2f}x" for v in variants)+' |')
