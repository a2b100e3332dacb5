"""bench/scale.py without a lab: arguments, the pack choice, the table and the plot drawn
from a figures dict (what ``--replot`` does); no root needed."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_scale", ROOT / "bench" / "scale.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


scale = _load()


def figures() -> dict[str, Any]:
    return {
        "machine": "2 CPUs, 23 GiB",
        "notes": ["a note"],
        "runs": [
            {"shape": "ring", "nodes": 10, "pack": 0, "links": 10, "bringup_s": 14.4,
             "ospf_ours_s": 4.84, "ospf_frr_s": 7.1, "ospf_ratio": 0.68,
             "rss_mib_per_node": 62.0, "pss_mib_per_node": 39.3,
             "idle_cpu_pct_per_node": 0.58, "qe_hops": 5, "qe_p50_ms": 31.6, "qe_p99_ms": 42.8},
            {"shape": "ring", "nodes": 100, "pack": 25, "links": 100, "bringup_s": 80.0,
             "ospf_ours_s_note": "not in 180 s", "ospf_frr_s": 12.5,
             "rss_mib_per_node": 40.0, "qe_hops": 50, "qe_p50_ms": 90.0, "qe_p99_ms": 120.0},
            {"shape": "grid", "nodes": 10, "pack": 0, "links": 13, "bringup_s": 15.0},
        ],
    }  # fmt: skip


def test_arguments() -> None:
    a = scale.parse_args(["--quick"])
    assert a.size_list == [10, 100] and a.shape_list == ["ring", "grid", "random"]
    assert a.pack is None and a.skip_set == set()
    a = scale.parse_args(
        ["--sizes", "300,1000", "--shapes", "grid", "--pack", "0", "--skip", "frr"]
    )
    assert (a.size_list, a.shape_list, a.pack, a.skip_set) == ([300, 1000], ["grid"], 0, {"frr"})
    assert scale.parse_args([]).size_list == [10, 100, 300, 1000]


@pytest.mark.parametrize("argv", [["--shapes", "star"], ["--skip", "everything"]])
def test_bad_arguments_are_refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        scale.parse_args(argv)
    assert e.value.code == 2
    assert "error" in capsys.readouterr().err


def test_pack_choice() -> None:
    assert scale.pack_for(10, None, cpus=2) == 0
    assert scale.pack_for(100, None, cpus=2) == 25
    assert scale.pack_for(1000, None, cpus=2) == 250
    assert scale.pack_for(300, None, cpus=4) == 38
    assert scale.pack_for(1000, 0, cpus=2) == 0
    assert scale.pack_for(10, 5, cpus=2) == 5


def test_table_has_a_row_per_run_and_says_what_did_not_finish() -> None:
    text = scale.table(figures())
    lines = text.splitlines()
    assert lines[0] == "qkdnet scale, 2 CPUs, 23 GiB"
    assert lines[1].split()[:4] == ["shape", "nodes", "links", "pack"]
    assert len(lines) == 2 + 3 + 1 and lines[-1] == "note: a note"
    ring100 = lines[3]
    assert "not in 180 s" in ring100 and "12.50" in ring100 and "90.0" in ring100
    # columns line up: every row is as wide as the heading
    assert len({len(x) for x in lines[1:5]}) == 1
    grid10 = lines[4].split()
    assert grid10[:5] == ["grid", "10", "13", "0", "15.0"] and grid10[5:] == ["-"] * 9


def test_plot_and_replot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("matplotlib")
    src = tmp_path / "figures.json"
    src.write_text(json.dumps(figures()))
    out = tmp_path / "scale.svg"
    assert scale.main(["--replot", str(src), "--plot", str(out)]) == 0
    svg = out.read_text()
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg
    assert "OSPF convergence" in svg and "ring100 ospf_ours_s: not in 180 s" in svg
    printed = capsys.readouterr().out
    assert printed.splitlines()[0] == "qkdnet scale, 2 CPUs, 23 GiB" and f"plot: {out}" in printed
    png = tmp_path / "scale.png"
    scale.plot(figures(), png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
