"""Tests for `flow run`: cameras → tracks → events → identities → store."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from fieldvision.data.synthetic.site import generate_site
from fieldvision.errors import DataError
from fieldvision.pipelines.flow.run import process_site, run_site
from fieldvision.pipelines.flow.site import load_site
from fieldvision.store.events import EventStore, StoreError


@pytest.fixture(scope="module")
def small_site(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("site")
    generate_site(root, cameras=3, people=25, minutes=1.5, seed=3)
    return root


def test_run_stores_every_event_once_and_counts_match_the_events(small_site, tmp_path):
    site = load_site(small_site / "site.yaml")
    url = f"sqlite:///{tmp_path / 'flow.db'}"
    run = run_site(site, url, tracks_dir=tmp_path / "tracks", progress=False)
    assert run.inserted == len(run.events) > 0
    assert sorted(p.name for p in (tmp_path / "tracks").iterdir()) == [
        "cam0.txt", "cam1.txt", "cam2.txt",
    ]  # fmt: skip
    crossings = Counter(
        (e.camera_id, e.target, e.type.value) for e in run.events if e.type.value.startswith("line")
    )
    with EventStore.open(url) as store:
        for row in store.totals():
            assert row["in"] == crossings[(row["camera_id"], row["line"], "line_in")]
            assert row["out"] == crossings[(row["camera_id"], row["line"], "line_out")]
        assert store.count() == len(run.events)
        linked = store.people()["global_ids"]
    assert linked == len(set(run.global_ids.values()))
    # The same site again (a replay, or a restart after a crash) adds nothing.
    again = run_site(site, url, progress=False)
    assert again.inserted == 0
    with EventStore.open(url) as store:
        assert store.count() == len(run.events)


def test_cross_camera_links_respect_the_graph(small_site):
    site = load_site(small_site / "site.yaml")
    run = process_site(site, progress=False)
    edges = {(e.src, e.dst) for e in site.graph}
    for a, b, *_ in run.links:
        assert a[0] == b[0] or (a[0], b[0]) in edges
    assert len(set(run.global_ids.values())) < sum(c.n_tracks for c in run.cameras)


def test_bad_camera_file_writes_nothing(small_site, tmp_path):
    broken = tmp_path / "site"
    broken.mkdir()
    text = (small_site / "site.yaml").read_text()
    det = small_site / "cameras" / "cam1" / "det" / "det.txt"
    bad = tmp_path / "bad_det.txt"
    lines = det.read_text().splitlines()
    lines[5] = "1,-1,10,10,-4,20,0.9,-1,-1,-1"  # negative width, and frame out of order
    bad.write_text("\n".join(lines) + "\n")
    text = text.replace("cameras/cam1/det/det.txt", str(bad)).replace(
        "cameras/", f"{small_site}/cameras/"
    )
    (broken / "site.yaml").write_text(text)
    site = load_site(broken / "site.yaml")
    db = tmp_path / "never.db"
    with pytest.raises(DataError, match="bad_det.txt line 6"):
        run_site(site, f"sqlite:///{db}", tracks_dir=tmp_path / "tracks", progress=False)
    assert not db.exists() and not (tmp_path / "tracks").exists()


def test_unreachable_database_fails_before_any_work(small_site, tmp_path):
    site = load_site(small_site / "site.yaml")
    with pytest.raises(StoreError, match="127.0.0.1"):
        run_site(
            site, "postgresql://fv:secret@127.0.0.1:9/flow", tracks_dir=tmp_path / "t",
            progress=False,
        )  # fmt: skip
    assert not (tmp_path / "t").exists()
