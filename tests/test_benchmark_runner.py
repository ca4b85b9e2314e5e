"""benchmarks/run.py's pieces that take no timing: the suite table names scripts and options that
exist, and the whole-network plot draws from a models.json of the shape bench_models.py writes."""

import json
import os
import subprocess
import sys

import pytest

import atrous

BENCH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks")
sys.path.insert(0, BENCH)
import run  # noqa: E402


@pytest.mark.slow
@pytest.mark.parametrize("name", list(run.SUITES))
def test_every_suite_names_a_script_that_takes_its_options(name):
    script, quick, takes = run.SUITES[name]
    path = os.path.join(BENCH, script[0])
    assert os.path.exists(path)
    # The scripts import the atrous this test runs (PYTHONPATH may name it relative to the root).
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.dirname(os.path.dirname(atrous.__file__)),
                                                       os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run([sys.executable, path, "--help"], capture_output=True, text=True, cwd=BENCH, env=env,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    helptext = done.stdout
    for option in [a for a in script[1:] + quick if a.startswith("--")] + ["--markdown"]:
        assert option in helptext, (name, option)
    for option in takes:
        assert f"--{option}" in helptext, (name, option)


def test_models_plot_is_drawn(tmp_path):
    pytest.importorskip("matplotlib")
    records = [{"network": n, "configuration": c, "layout": lay, "batch": 1, "size": 224,
                "seconds": {"torch": 0.02, "atrous": 0.02 / s}, "speedup": s}
               for c in ("inference batch 1, 224 px", "training step batch 8, 160 px")
               for n, s in (("mobilenet_v2", 1.1), ("segnet", 0.9)) for lay in ("contiguous", "channels_last")]
    data = {"machine": {"cpu": "test CPU", "threads": 2, "platform": "x", "cpu_capability": "avx2"},
            "torch": "2.14.1", "atrous": "0.1.0", "commit": "abc1234", "records": records}
    src, png = tmp_path / "models.json", tmp_path / "models.png"
    src.write_text(json.dumps(data))
    assert run.plot_models(str(src), str(png))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
