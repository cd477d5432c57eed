"""Tracker behaviour on hand-made sequences: association, life cycle in seconds, re-id."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from fieldvision.errors import ConfigError
from fieldvision.tracking.detections import Detections, Tracks
from fieldvision.tracking.tracker import Tracker, TrackerConfig, track_frames

W, H = 40.0, 100.0  # person box size in pixels
MOT15 = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "mot15"


def _box(cx: float, cy: float = 200.0) -> list[float]:
    return [cx - W / 2, cy - H / 2, cx + W / 2, cy + H / 2]


def _dets(centres, scores=None, embedding=None, class_id=None) -> Detections:
    """Detections of one frame from ``[(cx, cy), ...]``."""
    if not centres:
        return Detections.empty(None if embedding is None else embedding.shape[1])
    return Detections(
        xyxy=np.array([_box(*c) for c in centres]),
        confidence=scores,
        embedding=embedding,
        class_id=class_id,
    )


def _ids_by_person(out: Tracks, x_of_person) -> dict[int, set[int]]:
    """Which track ids were given to each person (matched by nearest box centre).

    Frames where two people stand within 10 px of each other are skipped (ambiguous).
    """
    people: dict[int, set[int]] = {}
    for f, tid, box in zip(out.frame, out.track_id, out.xyxy, strict=True):
        cx = (box[0] + box[2]) / 2
        dist = np.array([abs(cx - p[0]) for p in x_of_person(int(f))])
        if np.sort(dist)[1] - dist.min() < 10:
            continue
        people.setdefault(int(np.argmin(dist)), set()).add(int(tid))
    return people


def _unit(rng, dim=16) -> np.ndarray:
    v = rng.normal(size=dim)
    return v / np.linalg.norm(v)


# --- config ---------------------------------------------------------------------------------


def test_presets():
    assert TrackerConfig.preset("bytetrack") == TrackerConfig()
    assert TrackerConfig.preset("ByteTrack") == TrackerConfig()
    sort = TrackerConfig.preset("sort")
    assert sort.min_hits == 3 and not sort.low_score_stage and not sort.use_appearance
    assert sort.tentative_in_first_stage and sort.match_thresh == pytest.approx(0.7)
    assert Tracker(sort, fps=7).max_lost_frames == 1  # SORT's max_age of one frame
    assert Tracker(TrackerConfig(), fps=30).max_lost_frames == 30
    with pytest.raises(ConfigError, match="preset"):
        TrackerConfig.preset("deepsort")
    with pytest.raises(ValidationError):
        TrackerConfig(lost_bufer_s=2.0)  # typo
    with pytest.raises(ConfigError, match="fps"):
        Tracker(TrackerConfig(), fps=0)
    with pytest.raises(ConfigError, match="low_thresh"):
        Tracker(TrackerConfig(low_thresh=0.8, high_thresh=0.6))


# --- association ----------------------------------------------------------------------------


def _crossing(frame: int) -> list[tuple[float, float]]:
    """Person 0 walks right, person 1 left; they overlap fully around frame 16."""
    return [(50.0 + 10 * frame, 200.0), (370.0 - 10 * frame, 206.0)]


@pytest.mark.parametrize("preset", ["bytetrack", "sort"])
def test_two_people_crossing_keep_their_ids(preset):
    frames = [(f, _dets(_crossing(f), scores=[0.95, 0.9])) for f in range(1, 33)]
    out = track_frames(frames, TrackerConfig.preset(preset), fps=25)
    assert set(out.ids) == {1, 2}
    for _, rows in out.by_track():
        cx = (rows.xyxy[:, 0] + rows.xyxy[:, 2]) / 2
        steps = np.diff(cx)
        assert np.all(steps > 0) or np.all(steps < 0)  # never jumps to the other person
        assert len(rows) == 32  # reported in every frame, through the crossing
    assert _ids_by_person(out, _crossing) == {0: {1}, 1: {2}}


def _bounce(frame: int) -> list[tuple[float, float]]:
    """Two people meet at x = 200 in frame 20 and both turn back."""
    d = 5.0 * (20 - abs(20 - frame))
    return [(100.0 + d, 200.0), (300.0 - d, 203.0)]


def test_appearance_prevents_the_swap_when_people_turn_back():
    rng = np.random.default_rng(0)
    looks = np.stack([_unit(rng), _unit(rng)])

    def frames(with_embeddings: bool):
        for f in range(1, 41):
            emb = looks + 0.05 * rng.normal(size=looks.shape) if with_embeddings else None
            yield f, _dets(_bounce(f), scores=[0.95, 0.95], embedding=emb)

    motion_only = track_frames(frames(False), TrackerConfig(), fps=10)
    with_looks = track_frames(frames(True), TrackerConfig(), fps=10)
    # the motion model expects them to walk on through each other and swaps the ids
    assert _ids_by_person(motion_only[motion_only.frame > 25], _bounce) == {0: {2}, 1: {1}}
    assert _ids_by_person(with_looks, _bounce) == {0: {1}, 1: {2}}
    assert with_looks.embedding is not None and with_looks.embedding.shape == (80, 16)


def test_class_aware_matching():
    tracker = Tracker(TrackerConfig(min_hits=1), fps=10)
    a = tracker.update(_dets([(100, 200)], class_id=[0]), 1)
    b = tracker.update(_dets([(100, 200)], class_id=[1]), 2)
    assert a.track_id.tolist() == [1] and b.track_id.tolist() == [2]
    assert b.class_id.tolist() == [1]


# --- life cycle in seconds --------------------------------------------------------------------


@pytest.mark.parametrize("fps", [10, 30])
def test_birth_confirmation_and_death_in_seconds(fps):
    cfg = TrackerConfig(lost_buffer_s=0.5, min_hits=3)
    buffer = round(0.5 * fps)  # 5 or 15 frames
    tracker = Tracker(cfg, fps=fps)
    assert tracker.max_lost_frames == buffer
    assert len(tracker.update(_dets([]), 1)) == 0  # first frame empty: no instant confirmation

    # born in frame 2, reported from its third consecutive match on
    reported = [len(tracker.update(_dets([(100, 200)]), f)) for f in range(2, 11)]
    assert reported == [0, 0, 1, 1, 1, 1, 1, 1, 1]
    # unseen: kept (not reported) for `buffer` frames, gone after
    for f in range(11, 11 + buffer):
        assert len(tracker.update(_dets([]), f)) == 0
        assert len(tracker.tracks) == 1
    tracker.update(_dets([]), 11 + buffer)
    assert len(tracker.tracks) == 0

    # a gap shorter than the buffer (0.4 s) keeps the id, one longer (0.7 s) does not
    def gap_then_return(gap_s: float) -> int:
        tr = Tracker(cfg, fps=fps)
        for f in range(1, 11):
            tr.update(_dets([(100, 200)]), f)
        back = 11 + round(gap_s * fps)
        out = tr.update(_dets([(100, 200)]), back)
        for f in range(back + 1, back + 3):
            out = tr.update(_dets([(100, 200)]), f)
        return int(out.track_id[0])

    assert gap_then_return(0.4) == 1
    assert gap_then_return(0.7) == 2


def test_first_frame_tracks_are_confirmed_at_once():
    tracker = Tracker(TrackerConfig(min_hits=3), fps=10)
    out = tracker.update(_dets([(100, 200), (300, 200)]), 1)
    assert out.track_id.tolist() == [1, 2]
    assert len(tracker.update(_dets([(100, 200), (300, 200), (500, 200)]), 2)) == 2


def test_empty_frames_and_frame_gaps():
    assert len(track_frames([(f, Detections.empty()) for f in range(1, 6)], fps=10)) == 0
    assert len(track_frames([], fps=10)) == 0
    tracker = Tracker(TrackerConfig(), fps=10)
    assert tracker.update(_dets([(100, 200)]), 1).track_id.tolist() == [1]
    assert len(tracker.update(Detections.empty(), 2)) == 0
    assert tracker.update(_dets([(100, 200)]), 3).track_id.tolist() == [1]
    # 5 s later: the skipped frames count as unseen, so this is a new person
    out = tracker.update(_dets([(100, 200)]), 53)
    assert len(out) == 0 and len(tracker.tracks) == 1
    assert tracker.update(_dets([(100, 200)]), 54).track_id.tolist() == [2]
    with pytest.raises(ValueError, match="does not follow"):
        tracker.update(_dets([]), 54)


def test_low_score_detections_keep_the_id_under_bytetrack_not_sort():
    scores = {f: (0.4 if f in (10, 11, 12) else 0.95) for f in range(1, 21)}
    frames = [(f, _dets([(100 + 3 * f, 200)], scores=[scores[f]])) for f in range(1, 21)]
    byte = track_frames(frames, TrackerConfig.preset("bytetrack"), fps=10)
    assert byte.track_id.tolist() == [1] * 20  # matched in the low-score stage, reported
    np.testing.assert_allclose(byte.confidence[9:12], 0.4)
    sort = track_frames(frames, TrackerConfig.preset("sort"), fps=10)
    assert 10 not in sort.frame and 12 not in sort.frame  # SORT drops them
    assert set(sort.track_id[sort.frame < 10]) == {1}
    assert set(sort.track_id[sort.frame > 12]) == {2}  # and the person comes back as new


# --- appearance re-identification ---------------------------------------------------------------


def _occluded(shift: float, with_embeddings: bool, fps: float = 10.0):
    """Person 0 stands at x=100, is hidden for 1 s, reappears `shift` px away; person 1 stays."""
    rng = np.random.default_rng(1)
    looks = np.stack([_unit(rng), _unit(rng)])
    hidden = range(11, 11 + round(fps))  # 1 s without a detection of person 0
    frames = []
    for f in range(1, 11 + round(fps) + 10):
        centres, emb = [(400.0, 200.0)], [looks[1]]
        if f not in hidden:
            centres.insert(0, (100.0 if f < 11 else 100.0 + shift, 200.0))
            emb.insert(0, looks[0])
        e = np.stack(emb) + 0.03 * rng.normal(size=(len(emb), 16))
        frames.append((f, _dets(centres, embedding=e if with_embeddings else None)))
    return frames


def test_lost_track_is_reidentified_by_appearance():
    with_emb = track_frames(_occluded(100.0, True), TrackerConfig(), fps=10)
    without = track_frames(_occluded(100.0, False), TrackerConfig(), fps=10)
    late = with_emb[with_emb.frame > 20]
    assert sorted(late.track_id.tolist()[:2]) == [1, 2]  # old ids, no new person
    assert set(with_emb.ids) == {1, 2}
    assert set(without.ids) == {1, 2, 3}  # no overlap, no embeddings: a new id
    # the re-identified track restarts its motion where the person reappeared
    reappeared = with_emb[(with_emb.frame == 22) & (with_emb.track_id == 1)]
    np.testing.assert_allclose((reappeared.xyxy[0, 0] + reappeared.xyxy[0, 2]) / 2, 200, atol=1)


def test_reidentification_is_gated_by_distance_and_switchable():
    # 600 px in 1 s is more than 3 box heights per second: not the same person
    far = track_frames(_occluded(600.0, True), TrackerConfig(), fps=10)
    assert set(far.ids) == {1, 2, 3}
    ungated = track_frames(_occluded(600.0, True), TrackerConfig(reid_max_speed=None), fps=10)
    assert set(ungated.ids) == {1, 2}
    off = track_frames(_occluded(100.0, True), TrackerConfig(reid=False), fps=10)
    assert set(off.ids) == {1, 2, 3}


# --- outputs and API ----------------------------------------------------------------------------


def test_output_box_choice_and_reset():
    frames = [(f, _dets([(100 + 5 * f + (-1) ** f * 3, 200)])) for f in range(1, 11)]
    det_out = track_frames(frames, TrackerConfig(output_box="detection"), fps=10)
    np.testing.assert_allclose(det_out.xyxy, np.concatenate([d.xyxy for _, d in frames]))
    filt = track_frames(frames, TrackerConfig(output_box="filtered"), fps=10)
    jitter = np.abs(np.diff(np.diff(filt.xyxy[3:, 0])))
    assert jitter.mean() < np.abs(np.diff(np.diff(det_out.xyxy[3:, 0]))).mean()  # smoother

    tracker = Tracker(TrackerConfig(), fps=10)
    manual = Tracks.concat([tracker.update(d, f) for f, d in frames])
    np.testing.assert_array_equal(manual.xyxy, filt.xyxy)
    tracker.reset()
    assert len(tracker.tracks) == 0
    assert tracker.update(frames[0][1], 1).track_id.tolist() == [1]


# --- real data ----------------------------------------------------------------------------------


def test_bytetrack_beats_sort_on_real_mot15():
    """Guard for the tuned defaults on the two shortest MOT15 sequences with ground truth.

    The full seven-sequence comparison is ``benchmarks/flow_tracking.py``.
    """
    pytest.importorskip("trackeval")
    if not MOT15.is_dir():
        pytest.skip(f"{MOT15} not found (shared MOT15 data)")
    from fieldvision.data.mot import read_mot_tracks, read_sequence
    from fieldvision.metrics.tracking import evaluate_sequences

    seqs = {n: read_sequence(MOT15 / n) for n in ("TUD-Campus", "ETH-Sunnyday")}
    gts = {n: read_mot_tracks(MOT15 / n / "gt" / "gt.txt") for n in seqs}
    combined = {}
    for preset in ("bytetrack", "sort"):
        cfg = TrackerConfig.preset(preset)
        pairs = {
            n: (gts[n], track_frames(s.frames, cfg, s.fps), s.info.length) for n, s in seqs.items()
        }
        combined[preset] = evaluate_sequences(pairs)[1]
    byte, sort = combined["bytetrack"], combined["sort"]
    assert byte.idf1 > sort.idf1 + 3  # 76.1 vs 70.6 when written
    assert byte.hota > sort.hota
    assert byte.idsw < sort.idsw


def test_embedding_size_change_is_an_error():
    rng = np.random.default_rng(2)
    tracker = Tracker(TrackerConfig(), fps=10)
    tracker.update(_dets([(100, 200)], embedding=rng.normal(size=(1, 8))), 1)
    with pytest.raises(ValueError, match="8-d"):
        tracker.update(_dets([(100, 200), (400, 200)], embedding=rng.normal(size=(2, 4))), 2)
    # the refused frame changed nothing: the next good frame continues the track
    out = tracker.update(_dets([(100, 200)], embedding=rng.normal(size=(1, 8))), 2)
    assert out.track_id.tolist() == [1]


# --- the fast paths: same numbers, valid containers ---------------------------------------------


@pytest.mark.parametrize("preset", ["bytetrack", "sort"])
def test_per_frame_output_passes_the_containers_checks(preset):
    # update() builds its Tracks unchecked (Tracks._trusted): every row must still satisfy
    # what the validating constructor enforces, with classes, embeddings and frame gaps
    rng = np.random.default_rng(5)
    looks = np.stack([_unit(rng, 8) for _ in range(6)])
    tracker = Tracker(TrackerConfig.preset(preset), fps=10)
    frame, seen = 0, 0
    for step in range(60):
        frame += 1 if step % 9 else 3  # a few gaps in the frame numbers
        people = [i for i in range(6) if rng.uniform() < 0.9]  # some missed detections
        centres = [(60.0 * i + 3 * step + rng.normal(0, 2), 200.0) for i in people]
        emb = looks[people] + 0.05 * rng.normal(size=(len(people), 8))
        dets = _dets(
            centres, scores=rng.uniform(0.3, 1.0, len(people)), embedding=emb,
            class_id=[i % 2 for i in people],
        )  # fmt: skip
        out = tracker.update(dets, frame)
        checked = Tracks(
            frame=out.frame, track_id=out.track_id, xyxy=out.xyxy,
            confidence=out.confidence, class_id=out.class_id, embedding=out.embedding,
        )  # fmt: skip
        for name in ("frame", "track_id", "xyxy", "confidence", "class_id"):
            col = getattr(out, name)
            assert col.dtype == getattr(checked, name).dtype and col.shape[0] == len(out)
        assert np.all(out.frame == frame) and np.all(np.diff(out.track_id) > 0)
        seen += len(out)
    assert seen > 50


def test_track_covariance_is_the_full_kalman_filters():
    # the table keeps the block form; its `cov` must be what the plain filter computes
    from fieldvision.ops.kalman import BoxKalmanFilter, xyxy_to_xyah

    tracker = Tracker(TrackerConfig(), fps=10)
    kf = BoxKalmanFilter()
    boxes = [np.array([_box(100 + 7 * f + (-1) ** f, 200)]) for f in range(1, 12)]
    mean, cov = kf.initiate(xyxy_to_xyah(boxes[0]))
    tracker.update(Detections(xyxy=boxes[0]), 1)
    for f, box in enumerate(boxes[1:], start=2):
        tracker.update(Detections(xyxy=box), f)
        mean, cov = kf.update(*kf.predict(mean, cov), xyxy_to_xyah(box))
    np.testing.assert_allclose(tracker.tracks.mean, mean, rtol=1e-12)
    np.testing.assert_allclose(tracker.tracks.cov, cov, rtol=1e-12, atol=1e-12)
