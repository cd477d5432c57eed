"""`fieldvision demo`: the command wires to the pipeline demos and prints their results.

The demos themselves train for minutes; their wiring is checked here with the pipeline
functions replaced, and they run for real as slow tests and in the README's `make demo`.
"""

from __future__ import annotations

import pytest

from fieldvision.cli.__main__ import main


def test_biomass_demo_prints_the_summary_line(tmp_path, capsys, monkeypatch):
    seen = {}

    def fake(out, overrides=None, repeats=1, **_):
        seen.update(out=out, overrides=overrides, repeats=repeats)
        return {
            "pipeline_oof_r2": 0.5,
            "baseline_oof_r2": 0.4,
            "pipeline_test_r2": 0.6,
            "baseline_test_r2": 0.3,
            "pipeline_oof_r2_std": 0.05,
            "baseline_oof_r2_std": 0.04,
            "pipeline_test_r2_std": 0.06,
            "baseline_test_r2_std": 0.03,
            "repeats": float(repeats),
            "seconds": 12.0,
        }

    monkeypatch.setattr("fieldvision.pipelines.biomass.demo.run_biomass_demo", fake)
    args = ["demo", "biomass", "--out", str(tmp_path), "--no-progress", "--set", "phase2.epochs=2"]
    assert main(args) == 0
    out, table = capsys.readouterr()  # the key=value line on stdout, the table on stderr
    assert "pipeline_oof_r2=0.5000 baseline_oof_r2=0.4000" in out and "seconds=12" in out
    assert "pipeline_oof_r2_std=0.0500" in out and "repeats=3" in out  # 3 repeats by default
    assert "0.5000 ± 0.0500" in table and "3 repeats" in table
    assert seen["out"] == tmp_path / "biomass" and seen["repeats"] == 3
    assert seen["overrides"] == ["train.progress=false", "phase2.epochs=2"]
    assert main([*args, "--repeats", "1"]) == 0
    single, table = capsys.readouterr()
    assert "±" not in single + table and "repeats=1" in single and seen["repeats"] == 1
    assert main([*args, "--repeats", "0"]) == 2  # at least one


def test_reid_demo_prints_the_evaluation(tmp_path, capsys, monkeypatch):
    metrics = {"mAP": 0.5, "rank1": 0.7, "rank5": 0.9, "rank10": 1.0, "mINP": 0.2}
    results = {
        "protocol": "closed",
        "sets": {"validation": {"variants": {"raw": metrics, "+QE": metrics}}},
        "background": None,
    }

    def fake(out, progress=True, overrides=None):
        assert progress is False and overrides == []
        return {
            "results": results,
            "seconds": dict.fromkeys(("synth", "train", "evaluate", "total"), 1.0),
            "report": str(out / "run" / "report.md"),
        }

    monkeypatch.setattr("fieldvision.pipelines.reid.demo.run_reid_demo", fake)
    assert main(["demo", "reid", "--out", str(tmp_path), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "raw:mAP=0.5000,rank1=0.7000" in out and "report:" in out


@pytest.mark.parametrize("name", ["nope", "Flow"])
def test_unknown_demo_is_a_clear_error(tmp_path, capsys, name):
    assert main(["demo", name, "--out", str(tmp_path)]) == 2
    assert "unknown demo" in capsys.readouterr().err


@pytest.mark.e2e
def test_flow_demo_end_to_end(tmp_path, capsys, monkeypatch):
    from fieldvision.pipelines.flow import demo as flow_demo

    # A smaller site than the shipped demo keeps this under ten seconds; same code path.
    monkeypatch.setitem(flow_demo.DEMO_SITE, "people", 40)
    monkeypatch.setitem(flow_demo.DEMO_SITE, "minutes", 3)
    assert main(["demo", "flow", "--out", str(tmp_path), "--no-progress"]) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("line_count_mape="))
    scores = dict(kv.split("=") for kv in line.split())
    assert {"idf1_cam0", "idf1_cam1", "idf1_cam2", "link_precision", "link_recall"} <= set(scores)
    assert float(scores["link_precision"]) > 0.5 and float(scores["idf1_cam0"]) > 30
    report = tmp_path / "flow" / "report" / "report.md"
    assert "Camera-to-camera flow" in report.read_text()
    assert (tmp_path / "flow" / "report" / "counts.png").is_file()
    # Re-running stores nothing twice: ingest is idempotent.
    assert main(["demo", "flow", "--out", str(tmp_path), "--no-progress"]) == 0
    assert "stored 0 new" in capsys.readouterr().err
