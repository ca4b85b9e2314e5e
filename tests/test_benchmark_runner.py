"""benchmarks/run.py's pieces that take no timing: the suite table names scripts and options that
exist, the suites' reports keep their figures for JSON with the machine they ran on, and the plots
draw from results of the shape the suites write."""

import json
import os
import subprocess
import sys

import pytest

import atrous

BENCH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks")
sys.path.insert(0, BENCH)
import common  # noqa: E402
import run  # noqa: E402

MACHINE = {"machine": {"cpu": "test CPU", "cpu_flags": ["avx2"], "threads": 2, "platform": "x",
                       "cpu_capability": "avx2"},
           "torch": "2.14.1", "atrous": "0.1.0", "commit": "abc1234", "date": "2026-12-03T18:00:00"}


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
    for option in [a for a in script[1:] + quick if a.startswith("--")] + ["--markdown", "--json"]:
        assert option in helptext, (name, option)
    for option in takes:
        assert f"--{option}" in helptext, (name, option)


def test_models_plot_is_drawn(tmp_path):
    pytest.importorskip("matplotlib")
    records = [{"network": n, "configuration": c, "layout": lay, "batch": 1, "size": 224,
                "seconds": {"torch": 0.02, "atrous": 0.02 / s}, "speedup": s}
               for c in ("inference batch 1, 224 px", "training step batch 8, 160 px")
               for n, s in (("mobilenet_v2", 1.1), ("segnet", 0.9)) for lay in ("contiguous", "channels_last")]
    data = dict(MACHINE, records=records)
    src, png = tmp_path / "models.json", tmp_path / "models.png"
    src.write_text(json.dumps(data))
    assert run.plot_models(str(src), str(png))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_records_rows_under_their_heading_with_the_machine(tmp_path, capsys):
    emit = common.Report()
    emit("\n### max_pool2d, cpu, float32")
    rows = [("case a", "contiguous", {"forward": {"torch": 2.0, "ours": 1.0}, "forward+backward":
                                      {"torch": 3.0, "ours": 1.5}, "copy": 0.5}, 1000)]
    common.emit_comparison(emit, iter(rows), same_size_copy=True, total=1)
    path = tmp_path / "suite.json"
    emit.write_json(str(path), 2)
    data = json.loads(path.read_text())
    assert data["machine"]["threads"] == 2 and data["machine"]["cpu_capability"] == atrous.build_info()["cpu_capability"]
    assert isinstance(data["machine"]["cpu_flags"], list) and data["commit"] and data["torch"]
    (rec,) = data["records"]
    assert rec["table"] == "max_pool2d, cpu, float32" and rec["case"] == "case a"
    assert rec["forward"] == {"torch": 2.0, "ours": 1.0} and rec["same_size_copy"] == 0.5
    assert rec["bytes_moved"] == 1000
    assert "| case a | contiguous | 2000.000 | 1000.000 | 2.00x |" in capsys.readouterr().out


def test_case_and_floor_plots_are_drawn(tmp_path):
    pytest.importorskip("matplotlib")

    def case(name, layout, ours, t, o):
        return {"table": "t", "case": name, "layout": layout, "same_size_copy": o / 2,
                "forward": {"torch": t, ours: o}, "forward+backward": {"torch": 2 * t, ours: o}}

    results = dict(MACHINE, suites={"max_pool": [case("a", "contiguous", "ours", 2.0, 1.0),
                                                 case("a", "channels_last", "ours", 1.0, 2.0)],
                                    "separable": [case("b", "contiguous", "fused", 1.0, 0.5)],
                                    "models": []})
    for floor in (False, True):
        png = tmp_path / f"{floor}.png"
        assert run.plot_cases(results, str(png), floor=floor)
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not run.plot_cases(dict(MACHINE, suites={"models": []}), str(tmp_path / "none.png"), floor=False)
