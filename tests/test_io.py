import json

import pandas as pd
import pytest

from fieldvision.io import atomic_path, atomic_write, read_yaml, write_csv, write_json, write_yaml


def test_atomic_write_replaces_only_on_success(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_write(target) as fh:
        fh.write("partial")
        raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]  # no temp file left behind
    with atomic_write(target) as fh:
        fh.write("new")
    assert target.read_text() == "new"


def test_atomic_path_creates_parents_and_keeps_suffix(tmp_path):
    target = tmp_path / "a" / "b" / "x.png"
    with atomic_path(target) as tmp:
        assert tmp.suffix == ".png" and tmp.parent == target.parent
        tmp.write_bytes(b"123")
    assert target.read_bytes() == b"123"


def test_writers_roundtrip(tmp_path):
    write_json(tmp_path / "m.json", {"b": 1, "a": [1.5]})
    assert json.loads((tmp_path / "m.json").read_text()) == {"a": [1.5], "b": 1}
    write_yaml(tmp_path / "c.yaml", {"z": 1, "a": {"b": "c"}})
    assert read_yaml(tmp_path / "c.yaml") == {"z": 1, "a": {"b": "c"}}
    frame = pd.DataFrame({"sample_id": ["a", "b"], "target": [1.0, 2.5]})
    write_csv(tmp_path / "s.csv", frame)
    assert (tmp_path / "s.csv").read_text().splitlines() == ["sample_id,target", "a,1.0", "b,2.5"]


def test_atomic_write_rejects_read_mode(tmp_path):
    with pytest.raises(ValueError), atomic_write(tmp_path / "x", "r"):
        pass
