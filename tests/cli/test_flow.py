"""CLI behaviour of `fieldvision flow`: real MOT15 and synthetic runs, table-driven bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fieldvision.cli.__main__ import main
from fieldvision.cli.flow import parse_time
from fieldvision.errors import ConfigError

MOT15 = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "mot15"
GOOD_ROWS = [f"{f},-1,{10 + 3 * f},20,30,80,0.95,-1,-1,-1" for f in range(1, 11)]


def _sequence(root: Path, rows: list[str], length: int | None = 10) -> Path:
    seq = root / "seq"
    (seq / "det").mkdir(parents=True)
    (seq / "det" / "det.txt").write_text("\n".join(rows) + "\n")
    info = "[Sequence]\nname=seq\nframeRate=10\n" + (f"seqLength={length}\n" if length else "")
    (seq / "seqinfo.ini").write_text(info)
    return seq


def test_track_prints_frames_seconds_fps_and_writes_mot(tmp_path, capsys):
    seq = _sequence(tmp_path, GOOD_ROWS)
    out = tmp_path / "tracks.txt"
    assert main(["flow", "track", "--sequence", str(seq), "--out", str(out)]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    keys = dict(kv.split("=") for kv in last.split())
    assert set(keys) == {"frames", "seconds", "fps"} and keys["frames"] == "10"
    rows = [r.split(",") for r in out.read_text().splitlines()]
    assert len(rows) == 10 and {r[1] for r in rows} == {"1"} and len(rows[0]) == 10


def test_track_detections_with_embeddings_and_sort(tmp_path, capsys):
    seq = _sequence(tmp_path, GOOD_ROWS)
    np.save(tmp_path / "emb.npy", np.tile(np.eye(1, 8, dtype=np.float32), (10, 1)))
    out = tmp_path / "t.txt"
    det, emb = str(seq / "det" / "det.txt"), str(tmp_path / "emb.npy")
    args = ["flow", "track", "--detections", det, "--fps", "10", "--embeddings", emb,
            "--out", str(out), "--tracker", "sort"]  # fmt: skip
    assert main(args) == 0
    assert "frames=10" in capsys.readouterr().out and out.is_file()


BAD_TRACK = [
    # (det.txt rows, extra args, message fragment)
    (["1,-1,1,2,3"], [], "line 1"),
    (["1,-1,a,2,3,4,0.9,-1,-1,-1"], [], "line 1"),
    (["1,-1,1,2,-3,4,0.9,-1,-1,-1"], [], "line 1"),
    (["2,-1,1,2,3,4,0.9,-1,-1,-1", "1,-1,1,2,3,4,0.9,-1,-1,-1"], [], "line 2"),
    (["11,-1,1,2,3,4,0.9,-1,-1,-1"], [], "11"),  # beyond seqLength=10
    (GOOD_ROWS, ["--tracker", "deepsort"], "deepsort"),
    (GOOD_ROWS, ["--set", "min_hits=0"], "min_hits"),
    (GOOD_ROWS, ["--embeddings", "EMB3"], "embeddings"),
]


@pytest.mark.parametrize(("rows", "extra", "message"), BAD_TRACK)
def test_track_bad_input_exits_2_and_writes_nothing(tmp_path, capsys, rows, extra, message):
    seq = _sequence(tmp_path, rows)
    np.save(tmp_path / "emb3.npy", np.ones((3, 4), np.float32))
    extra = [str(tmp_path / "emb3.npy") if a == "EMB3" else a for a in extra]
    out = tmp_path / "tracks.txt"
    assert main(["flow", "track", "--sequence", str(seq), "--out", str(out), *extra]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--sequence", "S", "--detections", "S/det/det.txt"], "exactly one"),
        (["--detections", "S/det/det.txt"], "--fps"),
        (["--sequence", "MISSING"], "sequence folder not found"),
    ],
)
def test_track_bad_arguments(tmp_path, capsys, args, message):
    seq = _sequence(tmp_path, GOOD_ROWS)
    args = [a.replace("S", str(seq)) if a.startswith("S") else a for a in args]
    args = [str(tmp_path / "nope") if a == "MISSING" else a for a in args]
    assert main(["flow", "track", "--out", str(tmp_path / "o.txt"), *args]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.skipif(not MOT15.is_dir(), reason="../shared/data/mot15 (real MOT15) not present")
def test_real_mot15_track_then_evaluate(tmp_path, capsys):
    tracks = tmp_path / "tracks"
    for seq in ("TUD-Campus", "ETH-Sunnyday"):
        out = tracks / f"{seq}.txt"
        assert main(["flow", "track", "--sequence", str(MOT15 / seq), "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["flow", "evaluate", "--tracks", str(tracks), "--gt", str(MOT15)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [ln.split()[0] for ln in lines] == ["seq=ETH-Sunnyday", "seq=TUD-Campus", "seq=COMBINED"]
    scores = {ln.split()[0]: dict(kv.split("=") for kv in ln.split()) for ln in lines}
    # Far above chance and at least SORT's published MOTA neighbourhood on these detections.
    assert float(scores["seq=TUD-Campus"]["MOTA"]) > 50
    assert float(scores["seq=COMBINED"]["IDF1"]) > 60


def test_evaluate_without_matching_sequences(tmp_path, capsys):
    (tmp_path / "tracks").mkdir()
    (tmp_path / "tracks" / "a.txt").write_text("")
    (tmp_path / "gt").mkdir()
    assert main(["flow", "evaluate", "--tracks", str(tmp_path / "tracks"),
                 "--gt", str(tmp_path / "gt")]) == 2  # fmt: skip
    assert "a.txt" in capsys.readouterr().err


@pytest.fixture(scope="module")
def site_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("flowsite") / "site"
    assert main(["flow", "synth", "--out", str(root), "--people", "20", "--minutes", "1"]) == 0
    return root


@pytest.mark.e2e
def test_synth_run_report(site_dir, tmp_path, capsys):
    db = f"sqlite:///{tmp_path / 'flow.db'}"
    assert main(["flow", "run", "--site", str(site_dir / "site.yaml"), "--store", db,
                 "--no-progress"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert out.count("camera=") == 3 and "inserted=" in out
    assert (
        main(["flow", "report", "--store", db, "--out", str(tmp_path / "r"), "--bucket", "30"]) == 0
    )
    text = (tmp_path / "r" / "report.md").read_text()
    for heading in ("Line counts", "Zones", "Presence heatmaps", "Camera-to-camera flow"):
        assert heading in text
    assert (tmp_path / "r" / "heatmap_cam0.png").is_file()


def test_bad_site_files_exit_2(site_dir, tmp_path, capsys):
    yaml_path = site_dir / "bad_graph.yaml"  # beside site.yaml: its relative paths resolve
    text = (site_dir / "site.yaml").read_text()
    assert "src: cam1" in text
    yaml_path.write_text(text.replace("src: cam1", "src: cam9", 1))
    db = tmp_path / "x.db"
    assert main(["flow", "run", "--site", str(yaml_path), "--store", f"sqlite:///{db}"]) == 2
    assert "cam9" in capsys.readouterr().err
    assert not db.exists()


def test_zero_length_line_and_bowtie_zone_are_refused(site_dir, tmp_path, capsys):
    import yaml

    data = yaml.safe_load((site_dir / "site.yaml").read_text())
    data["cameras"][0]["lines"][0]["points"] = [[5, 5], [5, 5]]
    data["cameras"][1]["zones"][0]["points"] = [[0, 0], [10, 10], [10, 0], [0, 10]]
    for cam in data["cameras"]:
        for key in ("path", "embeddings"):
            cam["source"][key] = str(site_dir / cam["source"][key])
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(data))
    assert main(["flow", "run", "--site", str(bad), "--store", f"sqlite:///{tmp_path}/x.db"]) == 2
    err = capsys.readouterr().err
    assert "cameras[0].lines[0].points" in err and "zero length" in err
    assert "cameras[1].zones[0].points" in err and "not simple" in err


@pytest.mark.parametrize(
    ("store", "message"),
    [
        ("mysql://u@h/db", "scheme"),
        ("postgresql://fv:hunter2@127.0.0.1:9/flow", "127.0.0.1"),
    ],
)
def test_bad_store_urls(site_dir, tmp_path, capsys, store, message):
    code = main(["flow", "report", "--store", store, "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "hunter2" not in err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from", "2026-01-02T00:00", "--to", "2026-01-01T00:00"], "--to must be after"),
        (["--from", "yesterday"], "not a time"),
        (["--bucket", "0"], "--bucket"),
    ],
)
def test_report_bad_windows(tmp_path, capsys, args, message):
    db = f"sqlite:///{tmp_path / 'e.db'}"
    assert main(["flow", "report", "--store", db, "--out", str(tmp_path / "r"), *args]) == 2
    assert message in capsys.readouterr().err


def test_parse_time_forms():
    assert parse_time(None, "--from") is None
    assert parse_time("12.5", "--from") == 12.5
    assert parse_time("1970-01-01T00:01:00", "--from") == 60.0
    assert parse_time("1970-01-01T01:00:00+01:00", "--from") == 0.0
    with pytest.raises(ConfigError):
        parse_time("soon", "--to")


def test_serve_refuses_a_public_interface_without_a_token(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("FIELDVISION_TOKEN", raising=False)
    db = f"sqlite:///{tmp_path / 'e.db'}"
    assert main(["flow", "serve", "--store", db, "--host", "0.0.0.0", "--port", "1"]) == 2
    assert "token" in capsys.readouterr().err
