"""Interleaved A/B of separate processes: python ab.py THREADS SCRIPT ROUNDS label=PYTHONPATH[,WHICH][;NAME:VALUE...] ...
Each round runs every variant once, with glibc keeping freed memory and the NAME=VALUE variables set;
prints each case's min and median (ms)."""

import os, sys, subprocess
th, script, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
variants = [a.split("=",1) for a in sys.argv[4:]]
res = {}
for rnd in range(rounds):
    for label, spec in variants:
        spec, *extra = spec.split(";")
        pp, _, which = spec.partition(",")
        env = dict(os.environ, PYTHONPATH=pp, WHICH=which or "ours",
                   MALLOC_MMAP_THRESHOLD_="1073741824", MALLOC_TRIM_THRESHOLD_="4294967296")
        env.update(kv.split(":", 1) for kv in extra)
        out = subprocess.run([sys.executable, script, th], env=env, capture_output=True, text=True).stdout
        for line in out.splitlines():
            k, v = line.rsplit(" ", 1)
            res.setdefault((k, label), []).append(float(v))
keys = list(dict.fromkeys(k for k, _ in res))
print("| case | " + " | ".join(f"{l} min | {l} med" for l, _ in variants) + " |")
for k in keys:
    cells = []
    for l, _ in variants:
        v = sorted(res[(k, l)]); cells += [f"{v[0]:.3f}", f"{v[len(v)//2]:.3f}"]
    print(f"| {k} | " + " | ".join(cells) + " |")
