"""MOTChallenge readers and writer: frames, embeddings, validation, seqinfo, round trip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fieldvision.data.mot import (
    SeqInfo,
    read_mot_detections,
    read_mot_tracks,
    read_seqinfo,
    read_sequence,
    write_mot_tracks,
)
from fieldvision.errors import DataError
from fieldvision.tracking.detections import Tracks

MOT15 = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "mot15"

INI = """[Sequence]
name=Demo
imDir=img1
frameRate=25
seqLength=5
imWidth=640
imHeight=480
imExt=.jpg
"""


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def _sequence(root: Path, det: str, ini: str | None = INI) -> Path:
    _write(root / "det" / "det.txt", det)
    if ini is not None:
        _write(root / "seqinfo.ini", ini)
    return root


DET = "1,-1,10,20,30,40,0.9,-1,-1,-1\n1,-1,0,0,5,5,0.4,-1,-1,-1\n3,-1,1.5,2.5,3,4,0.7,-1,-1,-1\n"


# --- detections ----------------------------------------------------------------------------


def test_detections_one_entry_per_frame_with_empty_gaps(tmp_path: Path) -> None:
    frames = read_mot_detections(_write(tmp_path / "det.txt", DET), seq_length=5)
    assert [f for f, _ in frames] == [1, 2, 3, 4, 5]
    assert [len(d) for _, d in frames] == [2, 0, 1, 0, 0]
    np.testing.assert_allclose(frames[0][1].xyxy, [[10, 20, 40, 60], [0, 0, 5, 5]])
    np.testing.assert_allclose(frames[0][1].confidence, [0.9, 0.4])
    np.testing.assert_allclose(frames[2][1].xyxy, [[1.5, 2.5, 4.5, 6.5]])


def test_detections_without_seq_length_stop_at_last_frame(tmp_path: Path) -> None:
    frames = read_mot_detections(_write(tmp_path / "det.txt", DET))
    assert [f for f, _ in frames] == [1, 2, 3]


@pytest.mark.parametrize(
    ("text", "seq_length", "frames"),
    [
        ("", None, 0),
        ("", 3, 3),
        ("\n\n", 2, 2),
    ],
)
def test_empty_file_is_ok(tmp_path: Path, text: str, seq_length: int | None, frames: int) -> None:
    out = read_mot_detections(_write(tmp_path / "det.txt", text), seq_length=seq_length)
    assert len(out) == frames
    assert all(len(d) == 0 for _, d in out)


def test_whitespace_seven_columns_blank_lines_and_trailing_comma(tmp_path: Path) -> None:
    text = " 1 , -1 , 1, 2, 3, 4, 0.5 \n\n2,-1,1,2,3,4,0.6,\n2,-1,1,2,3,4,0.7,1,2\n"
    frames = read_mot_detections(_write(tmp_path / "det.txt", text))
    assert [len(d) for _, d in frames] == [1, 2]
    np.testing.assert_allclose(frames[1][1].confidence, [0.6, 0.7])


def test_min_score_filters_rows_and_keeps_the_frame_count(tmp_path: Path) -> None:
    emb = np.arange(6, dtype=np.float32).reshape(3, 2)
    frames = read_mot_detections(_write(tmp_path / "det.txt", DET), embeddings=emb, min_score=0.8)
    # Frame 3's only box (0.7) is dropped, but frame 3 still exists.
    assert [len(d) for _, d in frames] == [1, 0, 0]
    np.testing.assert_array_equal(frames[0][1].embedding, [[0, 1]])
    assert frames[2][1].embedding.shape == (0, 2)


def test_embeddings_from_npy_follow_file_order(tmp_path: Path) -> None:
    emb = np.arange(9, dtype=np.float64).reshape(3, 3)
    np.save(tmp_path / "emb.npy", emb)
    frames = read_mot_detections(_write(tmp_path / "det.txt", DET), embeddings=tmp_path / "emb.npy")
    np.testing.assert_array_equal(frames[0][1].embedding, emb[:2])
    assert frames[1][1].embedding.shape == (0, 3)
    np.testing.assert_array_equal(frames[2][1].embedding, emb[2:])
    assert frames[0][1].embedding.dtype == np.float32


@pytest.mark.parametrize(
    ("embeddings", "error"),
    [
        (np.zeros((2, 4)), r"2 embedding rows but .*det\.txt has 3 detection lines"),
        (np.zeros(3), "2-D"),
        (np.full((3, 2), np.nan), "row 0 has non-finite"),
        ("missing.npy", "missing.npy: embedding file not found"),
    ],
)
def test_bad_embeddings(tmp_path: Path, embeddings: object, error: str) -> None:
    det = _write(tmp_path / "det.txt", DET)
    if isinstance(embeddings, str):
        embeddings = tmp_path / embeddings
    with pytest.raises(DataError, match=error):
        read_mot_detections(det, embeddings=embeddings)


def test_embedding_count_error_names_the_npy_file(tmp_path: Path) -> None:
    np.save(tmp_path / "emb.npy", np.zeros((5, 2)))
    with pytest.raises(DataError, match=r"emb\.npy has 5 embedding rows but .*det\.txt has 3"):
        read_mot_detections(_write(tmp_path / "det.txt", DET), embeddings=tmp_path / "emb.npy")


GOOD = "1,-1,1,2,3,4,0.9"


@pytest.mark.parametrize(
    ("text", "seq_length", "error"),
    [
        ("1,-1,1,2,3,4\n", None, "det.txt line 1: expected 7 to 10 comma-separated values"),
        (GOOD + ",1,2,3,4\n", None, "line 1: expected 7 to 10 .* got 11"),
        (f"{GOOD}\n1;-1;1;2;3;4;0.9\n", None, "line 2: expected 7 to 10 .* got 1$"),
        ("1,-1,a,2,3,4,0.9\n", None, "line 1: x \\(column 3\\) is not a number: 'a'"),
        ("1,-1,1,2,3,4,\n", None, "line 1: score \\(column 7\\) is not a number: ''"),
        ("1,-1,1,2,-3,4,0.9\n", None, r"line 1: negative width or height \(w=-3, h=4\)"),
        ("1,-1,1,2,3,-0.5,0.9\n", None, "line 1: negative width or height"),
        ("1,-1,1,2,nan,4,0.9\n", None, "line 1: non-finite value in w"),
        ("1,-1,1,2,3,inf,0.9\n", None, "line 1: non-finite value in h"),
        ("0,-1,1,2,3,4,0.9\n", None, "line 1: frame 0 is below 1"),
        ("1.5,-1,1,2,3,4,0.9\n", None, "line 1: frame 1.5 is not a whole number"),
        (f"2{GOOD[1:]}\n{GOOD}\n", None, "line 2: frame 1 comes after frame 2"),
        (f"{GOOD}\n3{GOOD[1:]}\n2{GOOD[1:]}\n", None, "line 3: frame 2 comes after frame 3"),
        (f"{GOOD}\n4{GOOD[1:]}\n", 3, "line 2: frame 4 is beyond the sequence length 3"),
        # Blank lines count: the error gives the line of the file, not the row.
        (f"\n{GOOD}\n\n0{GOOD[1:]}\n", None, "line 4: frame 0 is below 1"),
        # The first bad line wins even when a later line breaks an earlier-checked rule.
        (f"2{GOOD[1:]}\n1{GOOD[1:]}\n1,-1,1,2,nan,4,0.9\n", None, "line 2: frame 1 comes after"),
    ],
)
def test_bad_detection_files(tmp_path: Path, text: str, seq_length: int | None, error: str) -> None:
    with pytest.raises(DataError, match=error):
        read_mot_detections(_write(tmp_path / "det.txt", text), seq_length=seq_length)


def test_missing_detection_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="nope.txt: file not found"):
        read_mot_detections(tmp_path / "nope.txt")


# --- tracks --------------------------------------------------------------------------------


def test_tracks_keep_file_order_and_conf_column(tmp_path: Path) -> None:
    # Ordered by track like MOT16/17 ground truth: accepted, not re-sorted.
    text = "2,1,0,0,10,10,1,-1,-1,-1\n1,1,0,0,10,10,0,-1,-1,-1\n1,2,5,5,1,2,1,3.5,2,0\n"
    tracks = read_mot_tracks(_write(tmp_path / "gt.txt", text))
    np.testing.assert_array_equal(tracks.frame, [2, 1, 1])
    np.testing.assert_array_equal(tracks.track_id, [1, 1, 2])
    np.testing.assert_array_equal(tracks.confidence, [1, 0, 1])
    np.testing.assert_allclose(tracks.xyxy[2], [5, 5, 6, 7])


def test_empty_tracks_file(tmp_path: Path) -> None:
    assert len(read_mot_tracks(_write(tmp_path / "t.txt", ""))) == 0


@pytest.mark.parametrize(
    ("text", "seq_length", "error"),
    [
        (
            "1,1,0,0,1,1,1\n1,2,0,0,1,1,1\n1,1,0,0,1,1,1\n",
            None,
            "line 3: track id 1 appears twice in frame 1 \\(first on line 1\\)",
        ),
        ("1,-1,0,0,1,1,1\n", None, "line 1: track id -1 is negative"),
        ("1,2.5,0,0,1,1,1\n", None, "line 1: track id 2.5 is not a whole number"),
        ("1,1,0,0,1,1,1\n9,1,0,0,1,1,1\n", 5, "line 2: frame 9 is beyond the sequence length 5"),
        ("1,1,0,0,1,-1,1\n", None, "line 1: negative width or height"),
        ("1,1,0,0,1,1,x\n", None, "line 1: score \\(column 7\\) is not a number"),
    ],
)
def test_bad_track_files(tmp_path: Path, text: str, seq_length: int | None, error: str) -> None:
    with pytest.raises(DataError, match=error):
        read_mot_tracks(_write(tmp_path / "gt.txt", text), seq_length=seq_length)


def test_write_read_round_trip(tmp_path: Path) -> None:
    tracks = Tracks(
        frame=[3, 1, 1, 2],
        track_id=[1, 7, 2, 7],
        xyxy=[[1.004, 2.0, 11.5, 22.25], [0, 0, 1, 1], [5.555, 6, 8, 9], [10, 10, 20, 30]],
        confidence=[0.5, 1.0, 0.25, 0.75],
    )
    path = write_mot_tracks(tmp_path / "out" / "seq.txt", tracks)
    lines = path.read_text().splitlines()
    assert lines[0] == "1,2,5.55,6.00,2.45,3.00,0.25,-1,-1,-1"  # sorted by (frame, id)
    assert [ln.split(",")[:2] for ln in lines] == [["1", "2"], ["1", "7"], ["2", "7"], ["3", "1"]]
    back = read_mot_tracks(path)
    ordered = tracks.sorted()
    np.testing.assert_array_equal(back.frame, ordered.frame)
    np.testing.assert_array_equal(back.track_id, ordered.track_id)
    np.testing.assert_allclose(back.xyxy, ordered.xyxy, atol=0.011)
    np.testing.assert_allclose(back.confidence, ordered.confidence)
    assert [p.name for p in path.parent.iterdir()] == ["seq.txt"]  # no temp file left


def test_write_empty_tracks(tmp_path: Path) -> None:
    path = write_mot_tracks(tmp_path / "e.txt", Tracks.empty())
    assert path.read_text() == ""
    assert len(read_mot_tracks(path)) == 0


# --- seqinfo and sequence folders ----------------------------------------------------------


def test_read_seqinfo(tmp_path: Path) -> None:
    info = read_seqinfo(_write(tmp_path / "seqinfo.ini", INI))
    assert info == SeqInfo(name="Demo", fps=25.0, length=5, width=640, height=480)


def test_seqinfo_missing_keys_are_none_and_name_defaults_to_folder(tmp_path: Path) -> None:
    info = read_seqinfo(_write(tmp_path / "MySeq" / "seqinfo.ini", "[Sequence]\nframeRate=7.5\n"))
    assert info == SeqInfo(name="MySeq", fps=7.5, length=None, width=None, height=None)


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("[Sequence]\nframeRate=fast\n", "seqinfo.ini: frameRate='fast' is not a float"),
        ("[Sequence]\nseqLength=10.5\n", "seqinfo.ini: seqLength='10.5' is not a int"),
        ("[Sequence]\nseqLength=-3\n", "seqinfo.ini: seqLength='-3' must be a positive"),
        ("[Sequence]\nframeRate=nan\n", "frameRate='nan' must be a positive"),
        ("[Other]\nframeRate=25\n", r"no \[Sequence\] section"),
        ("frameRate=25\n", "not a readable ini file"),
    ],
)
def test_bad_seqinfo(tmp_path: Path, text: str, error: str) -> None:
    with pytest.raises(DataError, match=error):
        read_seqinfo(_write(tmp_path / "seqinfo.ini", text))


def test_read_sequence_with_seqinfo(tmp_path: Path) -> None:
    seq = read_sequence(_sequence(tmp_path / "Demo", DET))
    assert seq.info == SeqInfo(name="Demo", fps=25.0, length=5, width=640, height=480)
    assert (seq.name, seq.fps) == ("Demo", 25.0)
    assert [len(d) for _, d in seq.frames] == [2, 0, 1, 0, 0]


def test_read_sequence_fps_overrides_and_length_falls_back_to_detections(tmp_path: Path) -> None:
    seq = read_sequence(_sequence(tmp_path / "NoIni", DET, ini=None), fps=10)
    assert seq.info == SeqInfo(name="NoIni", fps=10.0, length=3)
    assert read_sequence(_sequence(tmp_path / "Demo", DET), fps=12.5).fps == 12.5


@pytest.mark.parametrize(
    ("ini", "fps", "error"),
    [
        (None, None, r"NoFps has no seqinfo.ini .*hint: pass --fps"),
        ("[Sequence]\nseqLength=5\n", None, r"seqinfo.ini has no frameRate .*--fps"),
        (INI, 0.0, "fps must be a positive number"),
        (
            "[Sequence]\nseqLength=2\n",
            5.0,
            "det.txt line 3: frame 3 is beyond the sequence length 2",
        ),
    ],
)
def test_bad_sequences(tmp_path: Path, ini: str | None, fps: float | None, error: str) -> None:
    with pytest.raises(DataError, match=error):
        read_sequence(_sequence(tmp_path / "NoFps", DET, ini=ini), fps=fps)


def test_read_sequence_without_det_file_names_the_path(tmp_path: Path) -> None:
    (tmp_path / "Empty").mkdir()
    with pytest.raises(DataError, match=r"Empty/det/det\.txt: file not found"):
        read_sequence(tmp_path / "Empty", fps=25)


def test_real_mot15_sequence() -> None:
    seq_dir = MOT15 / "ETH-Bahnhof"
    if not seq_dir.is_dir():
        pytest.skip(f"MOT15 data not found at {MOT15}")
    seq = read_sequence(seq_dir)
    lines = (seq_dir / "det" / "det.txt").read_text().splitlines()
    assert (seq.info.fps, seq.info.length, len(seq.frames)) == (14.0, 1000, 1000)
    assert sum(len(d) for _, d in seq.frames) == len(lines)
    gt = read_mot_tracks(seq_dir / "gt" / "gt.txt", seq_length=1000)
    assert len(gt) == len((seq_dir / "gt" / "gt.txt").read_text().splitlines())
    assert set(np.unique(gt.confidence)) == {0.0, 1.0}
