"""site.yaml schema: a valid file loads, paths resolve, every bad case names file and field."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from fieldvision.errors import ConfigError
from fieldvision.pipelines.flow.site import SiteConfig, load_site

SQUARE = [[100, 100], [200, 100], [200, 200], [100, 200]]


def _camera(cam_id: str, det: str) -> dict:
    return {
        "id": cam_id,
        "fps": 10,
        "size": [640, 480],
        "source": {"kind": "mot", "path": det, "embeddings": "emb.npy"},
        "lines": [{"id": "door", "points": [[10, 400], [300, 20]], "in_side": "right"}],
        "zones": [{"id": "shop", "points": SQUARE}],
    }


VALID = {
    "site": "test-mall",
    "start": "2024-05-04T10:00:00Z",
    "cameras": [_camera("a", "a/det/det.txt"), _camera("b", "b/det/det.txt")],
    "graph": [
        {"src": "a", "dst": "b", "min_s": -3, "max_s": 5},
        {"src": "b", "dst": "a", "min_s": -3, "max_s": 5},
    ],
    "linking": {"threshold": 0.45},
}


@pytest.fixture
def site_dir(tmp_path: Path) -> Path:
    for cam in ("a", "b"):
        (tmp_path / cam / "det").mkdir(parents=True)
        (tmp_path / cam / "det" / "det.txt").write_text("1,-1,1,1,10,20,0.9,-1,-1,-1\n")
    (tmp_path / "emb.npy").write_bytes(b"")
    return tmp_path


def _write(folder: Path, data: dict) -> Path:
    path = folder / "site.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_valid_site_loads_and_resolves_paths(site_dir):
    site = load_site(_write(site_dir, VALID))
    assert isinstance(site, SiteConfig)
    assert [c.id for c in site.cameras] == ["a", "b"]
    assert site.start == datetime(2024, 5, 4, 10, 0, tzinfo=UTC)
    cam = site.camera("b")
    assert cam.source.path == site_dir.resolve() / "b" / "det" / "det.txt"
    assert cam.source.embeddings == site_dir.resolve() / "emb.npy"
    assert cam.lines[0].points == [(10.0, 400.0), (300.0, 20.0)]
    assert site.graph[0].min_s == -3 and site.linking.threshold == 0.45
    assert site.tracker == {"preset": "bytetrack"} and site.sample_s == 1.0


def test_paths_resolve_against_the_yaml_folder_not_the_cwd(site_dir, tmp_path_factory, monkeypatch):
    monkeypatch.chdir(tmp_path_factory.mktemp("elsewhere"))
    site = load_site(_write(site_dir, VALID))
    assert site.cameras[0].source.path.is_file()


def test_sequence_folder_means_its_det_txt_and_tracker_keeps_fields(site_dir):
    data = copy.deepcopy(VALID)
    data["cameras"][0]["source"]["path"] = "a"
    data["tracker"] = {"high_thresh": 0.6}
    data["start"] = "2024-05-04T12:00:00+02:00"
    site = load_site(_write(site_dir, data))
    assert site.cameras[0].source.path.name == "det.txt"
    assert site.tracker == {"preset": "bytetrack", "high_thresh": 0.6}
    assert site.start == datetime(2024, 5, 4, 10, 0, tzinfo=UTC)


def _set(path: str, value):
    """A mutation of VALID setting the dotted `path` (list indices as numbers)."""

    def mutate(data: dict) -> None:
        *parents, leaf = path.split(".")
        node = data
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if isinstance(node, list):
            node[int(leaf)] = value
        else:
            node[leaf] = value

    return mutate


BAD = [
    ("fps zero", _set("cameras.1.fps", 0), "cameras[1].fps: Input should be greater than 0"),
    ("fps negative", _set("cameras.0.fps", -5), "cameras[0].fps"),
    (
        "unknown camera in graph",
        _set("graph.0.dst", "c"),
        "graph[0].dst: unknown camera 'c' (cameras: a, b)",
    ),
    (
        "duplicate camera id",
        _set("cameras.1.id", "a"),
        "cameras[1].id: duplicate camera id 'a' (also cameras[0])",
    ),
    (
        "duplicate line id",
        _set("cameras.0.lines", [{"id": "l", "points": [[0, 0], [5, 5]]}] * 2),
        "cameras[0].lines[1].id: duplicate id 'l' (also lines[0])",
    ),
    (
        "duplicate zone id",
        _set("cameras.1.zones", [{"id": "z", "points": SQUARE}] * 2),
        "cameras[1].zones[1].id: duplicate id 'z' (also zones[0])",
    ),
    (
        "zone id equal to a line id",
        _set("cameras.0.zones.0.id", "door"),
        "cameras[0].zones[0].id: duplicate id 'door' (also lines[0])",
    ),
    (
        "zero-length line",
        _set("cameras.0.lines.0.points", [[5, 5], [5, 5]]),
        "cameras[0].lines[0].points: line has zero length",
    ),
    (
        "line with three points",
        _set("cameras.0.lines.0.points", [[5, 5], [6, 6], [7, 9]]),
        "cameras[0].lines[0].points: line needs exactly 2 points",
    ),
    (
        "bow-tie zone",
        _set("cameras.1.zones.0.points", [[0, 0], [10, 0], [0, 20], [12, 18]]),
        "cameras[1].zones[0].points: polygon is not simple",
    ),
    (
        "zone with two vertices",
        _set("cameras.0.zones.0.points", [[0, 0], [10, 0]]),
        "cameras[0].zones[0].points: polygon needs at least 3 vertices",
    ),
    (
        "missing source file",
        _set("cameras.1.source.path", "nope/det.txt"),
        "cameras[1].source.path: file not found",
    ),
    (
        "missing embeddings",
        _set("cameras.0.source.embeddings", "x.npy"),
        "cameras[0].source.embeddings: file not found",
    ),
    ("bad source kind", _set("cameras.0.source.kind", "rtsp"), "cameras[0].source.kind"),
    (
        "min_s not below max_s",
        _set("graph.1.min_s", 5),
        "graph[1].max_s: must be greater than min_s",
    ),
    (
        "duplicate edge",
        _set("graph.1", {"src": "a", "dst": "b", "min_s": 0, "max_s": 1}),
        "graph[1]: duplicate edge a -> b (also graph[0])",
    ),
    ("bad in_side", _set("cameras.0.lines.0.in_side", "up"), "cameras[0].lines[0].in_side"),
    ("unknown field", _set("cameras.0.colour", "red"), "cameras[0].colour: unknown field (typo?)"),
    ("no cameras", _set("cameras", []), "cameras: List should have at least 1 item"),
    ("bad start", _set("start", "yesterday"), "start: Input should be a valid datetime"),
    ("threshold out of range", _set("linking.threshold", 2), "linking.threshold"),
    ("bad size", _set("cameras.0.size", [640, 0]), "cameras[0].size[1]"),
    ("bad id", _set("cameras.0.id", "a b"), "cameras[0].id: String should match pattern"),
    (
        "non-positive min_frames",
        _set("cameras.0.zones.0.min_frames", 0),
        "cameras[0].zones[0].min_frames",
    ),
    ("tracker preset not a name", _set("tracker", {"preset": 3}), "tracker: preset must be a name"),
]


@pytest.mark.parametrize(("mutate", "fragment"), [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_bad_site_names_file_and_field(site_dir, mutate, fragment):
    data = copy.deepcopy(VALID)
    mutate(data)
    path = _write(site_dir, data)
    with pytest.raises(ConfigError) as err:
        load_site(path)
    message = str(err.value)
    assert message.startswith(f"{path}: ")
    assert fragment in message


def test_video_source_checks_its_detector(site_dir):
    (site_dir / "clip.mp4").write_bytes(b"")
    data = copy.deepcopy(VALID)
    data["cameras"][0]["source"] = {"kind": "video", "path": "clip.mp4", "detector": "yolo.pt"}
    with pytest.raises(
        ConfigError, match=r"cameras\[0\]\.source\.detector: must be 'hog' or an \.onnx"
    ):
        load_site(_write(site_dir, data))
    data["cameras"][0]["source"] = {"kind": "video", "path": "clip.mp4", "detector": "hog"}
    assert load_site(_write(site_dir, data)).cameras[0].source.detector == "hog"


def test_video_source_reid_run_must_be_a_run(site_dir):
    (site_dir / "clip.mp4").write_bytes(b"")
    (site_dir / "reid").mkdir()
    data = copy.deepcopy(VALID)
    data["cameras"][0]["source"] = {"kind": "video", "path": "clip.mp4", "reid_run": "reid"}
    with pytest.raises(ConfigError, match=r"source\.reid_run: not a run directory"):
        load_site(_write(site_dir, data))
    (site_dir / "reid" / "run.json").write_text("{}")
    assert load_site(_write(site_dir, data)).cameras[0].source.reid_run == site_dir / "reid"
    data["cameras"][1]["source"]["reid_run"] = "reid"
    with pytest.raises(ConfigError, match="reid_run is only for kind 'video'"):
        load_site(_write(site_dir, data))


def test_file_level_problems(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        load_site(tmp_path / "missing.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_site(tmp_path / "list.yaml")
