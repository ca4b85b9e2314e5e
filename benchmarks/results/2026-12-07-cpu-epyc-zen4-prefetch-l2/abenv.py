"""python abenv.py THREADS SCRIPT ROUNDS label=ENV1:V1;ENV2:V2 ... (separate processes, alternating)"""
import os, sys, subprocess
th, script, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
variants = [a.split("=",1) for a in sys.argv[4:]]
res = {}
for rnd in range(rounds):
    for label, spec in variants:
        env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="1073741824", MALLOC_TRIM_THRESHOLD_="4294967296")
        for kv in filter(None, spec.split(";")):
            k, v = kv.split(":", 1); env[k] = v
        out = subprocess.run([sys.executable, script, th], env=env, capture_output=True, text=True).stdout
        for line in out.splitlines():
            k, v = line.rsplit(" ", 1)
            res.setdefault((k, label), []).append(float(v))
keys = list(dict.fromkeys(k for k, _ in res))
print("| case | " + " | ".join(f"{l} min | {l} med" for l, _ in variants) + " |")
print("|---|" + "---|---|" * len(variants))
for k in keys:
    cells = []
    for l, _ in variants:
        v = sorted(res[(k, l)]); cells += [f"{v[0]:.3f}", f"{v[len(v)//2]:.3f}"]
    print(f"| {k} | " + " | ".join(cells) + " |")
