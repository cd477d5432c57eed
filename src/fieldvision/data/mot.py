"""MOTChallenge text files: detections, tracks and ``seqinfo.ini``.

A MOTChallenge sequence folder holds ``det/det.txt`` (detector output), optionally
``gt/gt.txt`` (ground truth) and ``seqinfo.ini`` (frame rate, length, image size). Every box
file has one row per box, ``frame,id,x,y,w,h,score[,x,y,z]``: 1-based frame, track id (-1 in
detection files), the top-left corner and size in pixels, the detector score (in ground truth,
the "considered" flag: 0 marks a box the benchmark ignores) and optional world coordinates.

Every reader checks each row and raises `DataError` naming the file and line
(``".../det.txt line 17: ..."``), so a broken file fails here and not in the tracker.
"""

from __future__ import annotations

import configparser
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from fieldvision.errors import DataError
from fieldvision.io import atomic_write
from fieldvision.tracking.detections import Detections, Tracks, xyxy_to_xywh

__all__ = [
    "MotSequence",
    "SeqInfo",
    "read_mot_detections",
    "read_mot_tracks",
    "read_seqinfo",
    "read_sequence",
    "write_mot_tracks",
]

PathLike = str | os.PathLike[str]
COLUMNS = ("frame", "id", "x", "y", "w", "h", "score", "world x", "world y", "world z")
MIN_COLUMNS, MAX_COLUMNS = 7, 10


@dataclass(frozen=True)
class SeqInfo:
    """What ``seqinfo.ini`` says about a sequence (``None`` where it says nothing).

    Args:
        name: Sequence name (``ETH-Bahnhof``).
        fps: Frame rate in frames per second.
        length: Number of frames.
        width: Image width in pixels.
        height: Image height in pixels.
    """

    name: str
    fps: float | None = None
    length: int | None = None
    width: int | None = None
    height: int | None = None


@dataclass(frozen=True)
class MotSequence:
    """A sequence ready for a tracker.

    Args:
        info: Name, frame rate (always set), length (always set) and image size.
        frames: ``(frame, Detections)`` for every frame from 1 to ``info.length``, in order.
    """

    info: SeqInfo
    frames: list[tuple[int, Detections]]

    @property
    def name(self) -> str:
        """The sequence name."""
        return self.info.name

    @property
    def fps(self) -> float:
        """The frame rate (`read_sequence` guarantees one)."""
        assert self.info.fps is not None
        return self.info.fps


# --- seqinfo.ini ---------------------------------------------------------------------------


def _ini_value(
    path: Path, section: configparser.SectionProxy, key: str, kind: type
) -> float | None:
    raw = section.get(key)
    if raw is None or not raw.strip():
        return None
    try:
        value = kind(raw.strip())
    except ValueError:
        raise DataError(f"{path}: {key}={raw.strip()!r} is not a {kind.__name__}") from None
    if not math.isfinite(value) or value <= 0:
        raise DataError(f"{path}: {key}={raw.strip()!r} must be a positive number")
    return value


def read_seqinfo(path: PathLike) -> SeqInfo:
    """Read a MOTChallenge ``seqinfo.ini``.

    Keys are read from the ``[Sequence]`` section: ``name`` (default: the folder the file is
    in), ``frameRate``, ``seqLength``, ``imWidth``, ``imHeight``; a missing key gives ``None``.

    Raises:
        DataError: Missing or unparsable file, no ``[Sequence]`` section, or a value that is
            not a positive number (names the file and the key).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(path.read_text(encoding="utf-8"), source=str(path))
    except (configparser.Error, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a readable ini file ({exc})") from None
    if not parser.has_section("Sequence"):
        raise DataError(f"{path}: no [Sequence] section")
    sec = parser["Sequence"]
    name = (sec.get("name") or "").strip() or path.resolve().parent.name
    return SeqInfo(
        name=name,
        fps=_ini_value(path, sec, "frameRate", float),
        length=_ini_value(path, sec, "seqLength", int),
        width=_ini_value(path, sec, "imWidth", int),
        height=_ini_value(path, sec, "imHeight", int),
    )


# --- box files -----------------------------------------------------------------------------


def _parse(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``(N, 10)`` float64 rows (missing trailing columns NaN) and their ``(N,)`` line numbers.

    Blank lines are skipped; a single trailing comma is tolerated (TrackEval does the same).
    """
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read ({exc})") from None
    rows: list[list[float]] = []
    lines: list[int] = []
    for n, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not stripped:
            continue
        fields = [f.strip() for f in stripped.split(",")]
        if len(fields) > MIN_COLUMNS and fields[-1] == "":
            fields.pop()
        if not MIN_COLUMNS <= len(fields) <= MAX_COLUMNS:
            raise DataError(
                f"{path} line {n}: expected {MIN_COLUMNS} to {MAX_COLUMNS} comma-separated values "
                f"(frame,id,x,y,w,h,score[,x,y,z]), got {len(fields)}"
            )
        values = []
        for i, field in enumerate(fields):
            try:
                values.append(float(field))
            except ValueError:
                raise DataError(
                    f"{path} line {n}: {COLUMNS[i]} (column {i + 1}) is not a number: {field!r}"
                ) from None
        rows.append(values + [math.nan] * (MAX_COLUMNS - len(values)))
        lines.append(n)
    return np.asarray(rows, np.float64).reshape(-1, MAX_COLUMNS), np.asarray(lines, np.int64)


Check = tuple[np.ndarray, Callable[[int], str]]


def _validate(
    path: Path,
    rows: np.ndarray,
    lines: np.ndarray,
    *,
    seq_length: int | None,
    sorted_frames: bool,
    track_ids: bool,
) -> None:
    """Raise for the first line (in file order) that breaks any rule."""
    frame, ids, wh = rows[:, 0], rows[:, 1], rows[:, 4:6]
    core = rows[:, :MIN_COLUMNS]
    finite = np.isfinite(core).all(axis=1)
    # Every check but the first skips non-finite rows, so no message has to print a NaN.
    checks: list[Check] = [
        (
            ~finite,
            lambda i: (
                "non-finite value in "
                + ", ".join(COLUMNS[c] for c in np.flatnonzero(~np.isfinite(core[i])))
            ),
        ),
        (
            finite & (frame != np.round(frame)),
            lambda i: f"frame {frame[i]:g} is not a whole number",
        ),
        (finite & (frame < 1), lambda i: f"frame {frame[i]:g} is below 1 (frames start at 1)"),
        (
            finite & (wh < 0).any(axis=1),
            lambda i: f"negative width or height (w={wh[i, 0]:g}, h={wh[i, 1]:g})",
        ),
    ]
    if track_ids:
        checks += [
            (
                finite & (ids != np.round(ids)),
                lambda i: f"track id {ids[i]:g} is not a whole number",
            ),
            (finite & (ids < 0), lambda i: f"track id {ids[i]:g} is negative (ids must be >= 0)"),
        ]
    if seq_length is not None:
        checks.append(
            (
                finite & (frame > seq_length),
                lambda i: f"frame {frame[i]:g} is beyond the sequence length {seq_length}",
            )
        )
    if sorted_frames and len(frame):
        # NaN frames are caught above; fmax keeps them from poisoning the running maximum.
        running = np.fmax.accumulate(np.where(finite, frame, -np.inf))
        before = np.r_[-np.inf, running[:-1]]
        checks.append(
            (
                finite & (frame < before),
                lambda i: (
                    f"frame {frame[i]:g} comes after frame {before[i]:g}; "
                    "rows must be sorted by frame"
                ),
            )
        )
    if track_ids and len(frame):
        key = np.stack([frame, ids], axis=1)
        _, first, inverse = np.unique(key, axis=0, return_index=True, return_inverse=True)
        inverse = inverse.reshape(-1)
        dup = finite & (first[inverse] != np.arange(len(frame)))
        checks.append(
            (
                dup,
                lambda i: (
                    f"track id {ids[i]:g} appears twice in frame {frame[i]:g} "
                    f"(first on line {lines[first[inverse[i]]]})"
                ),
            )
        )
    firsts = [(int(np.flatnonzero(mask)[0]), msg) for mask, msg in checks if mask.any()]
    if firsts:
        i, msg = min(firsts, key=lambda item: item[0])
        raise DataError(f"{path} line {lines[i]}: {msg(i)}")


def _check_seq_length(seq_length: int | None) -> None:
    if seq_length is not None and (isinstance(seq_length, bool) or int(seq_length) != seq_length):
        raise ValueError(f"seq_length must be an int, got {seq_length!r}")


def _load_embeddings(embeddings: np.ndarray | PathLike, det_path: Path, n_rows: int) -> np.ndarray:
    if isinstance(embeddings, (str, os.PathLike)):
        source = str(embeddings)
        emb_path = Path(embeddings)
        if not emb_path.is_file():
            raise DataError(f"{emb_path}: embedding file not found")
        try:
            array = np.load(emb_path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise DataError(f"{emb_path}: not a readable .npy array ({exc})") from None
    else:
        source, array = "the embedding array", np.asarray(embeddings)
    if array.ndim != 2:
        raise DataError(f"{source}: embeddings must be a 2-D (rows, dim) array, got {array.shape}")
    if array.shape[0] != n_rows:
        raise DataError(
            f"{source} has {array.shape[0]} embedding rows but {det_path} has {n_rows} "
            "detection lines; the embeddings need one row per line, in file order"
        )
    if not np.issubdtype(array.dtype, np.number):
        raise DataError(f"{source}: embeddings must be numbers, got dtype {array.dtype}")
    array = array.astype(np.float32)
    bad = np.flatnonzero(~np.isfinite(array).all(axis=1))
    if len(bad):
        raise DataError(f"{source}: embedding row {int(bad[0])} has non-finite values")
    return array


def read_mot_detections(
    path: PathLike,
    *,
    seq_length: int | None = None,
    embeddings: np.ndarray | PathLike | None = None,
    min_score: float | None = None,
) -> list[tuple[int, Detections]]:
    """Read a MOTChallenge detection file (``det/det.txt``) frame by frame.

    Args:
        path: ``frame,id,x,y,w,h,score[,x,y,z]`` rows sorted by frame (ids are ignored).
        seq_length: Number of frames of the sequence: frames after the last box up to it get
            empty entries, and a box beyond it is an error.
        embeddings: ``(rows, D)`` appearance features, one row per data line of `path` in file
            order, as an array or the path of an ``.npy`` file.
        min_score: Drop boxes scored below this (after all rows are checked).

    Returns:
        ``(frame, Detections)`` for every frame from 1 to ``max(seq_length, last frame)`` in
        order; frames without boxes get empty `Detections` (with ``(0, D)`` embeddings when
        `embeddings` is given). ``[]`` for an empty file without `seq_length`.

    Raises:
        DataError: Missing file, a line with the wrong number of columns, a non-number, a
            non-finite value, negative width/height, frame < 1, a frame smaller than an
            earlier one, a frame beyond `seq_length` (all naming the file and line), or an
            embedding row count that differs from the line count.
    """
    _check_seq_length(seq_length)
    path = Path(path)
    rows, lines = _parse(path)
    _validate(path, rows, lines, seq_length=seq_length, sorted_frames=True, track_ids=False)
    emb = None if embeddings is None else _load_embeddings(embeddings, path, len(rows))
    # The frame count comes from every row, so filtering cannot shorten the sequence.
    last = int(rows[-1, 0]) if len(rows) else 0
    if min_score is not None:
        keep = rows[:, 6] >= min_score
        rows = rows[keep]
        emb = None if emb is None else emb[keep]
    frame = rows[:, 0].astype(np.int64)
    n_frames = max(last, seq_length or 0)
    everything = Detections.from_xywh(rows[:, 2:6], confidence=rows[:, 6], embedding=emb)
    # Rows are sorted by frame, so each frame's boxes are one contiguous slice.
    bounds = np.searchsorted(frame, np.arange(1, n_frames + 2))
    return [
        (f, everything[slice(int(bounds[f - 1]), int(bounds[f]))]) for f in range(1, n_frames + 1)
    ]


def read_mot_tracks(path: PathLike, *, seq_length: int | None = None) -> Tracks:
    """Read a MOTChallenge ground-truth or tracker file.

    Unlike detections, rows may come in any order (MOT16/17 ground truth is ordered by track);
    they are returned in file order.

    Args:
        path: ``frame,id,x,y,w,h,conf[,x,y,z]`` rows; ``conf`` goes to ``Tracks.confidence``
            (the "considered" flag in ground truth, a score in tracker output).
        seq_length: When given, a frame beyond it is an error.

    Returns:
        One row per line (``Tracks.empty()`` for an empty file).

    Raises:
        DataError: Missing file, wrong column count, a non-number, non-finite value, negative
            width/height, frame < 1, a non-integer or negative id, an id twice in one frame, a
            frame beyond `seq_length` (all naming the file and line).
    """
    _check_seq_length(seq_length)
    path = Path(path)
    rows, lines = _parse(path)
    _validate(path, rows, lines, seq_length=seq_length, sorted_frames=False, track_ids=True)
    if not len(rows):
        return Tracks.empty()
    return Tracks(
        frame=rows[:, 0].astype(np.int64),
        track_id=rows[:, 1].astype(np.int64),
        xyxy=Detections.from_xywh(rows[:, 2:6]).xyxy,
        confidence=rows[:, 6],
    )


def write_mot_tracks(path: PathLike, tracks: Tracks) -> Path:
    """Write `tracks` as a MOTChallenge tracker file, atomically.

    Rows are sorted by (frame, id) and written as ``frame,id,x,y,w,h,conf,-1,-1,-1`` with the
    box to 2 decimals (what the benchmark expects of a submission).

    Returns:
        `path`.
    """
    path = Path(path)
    ordered = tracks.sorted()
    xywh = xyxy_to_xywh(ordered.xyxy)
    with atomic_write(path) as fh:
        for f, tid, (x, y, w, h), conf in zip(
            ordered.frame, ordered.track_id, xywh, ordered.confidence, strict=True
        ):
            fh.write(f"{f},{tid},{x:.2f},{y:.2f},{w:.2f},{h:.2f},{conf:.6g},-1,-1,-1\n")
    return path


# --- sequence folders ----------------------------------------------------------------------


def read_sequence(
    directory: PathLike,
    *,
    fps: float | None = None,
    embeddings: np.ndarray | PathLike | None = None,
    min_score: float | None = None,
) -> MotSequence:
    """Read a MOTChallenge sequence folder: ``det/det.txt`` and, if present, ``seqinfo.ini``.

    Args:
        directory: The sequence folder.
        fps: Frame rate; overrides ``frameRate`` of ``seqinfo.ini``.
        embeddings: Appearance features of the detections (see `read_mot_detections`).
        min_score: Drop detections scored below this.

    Returns:
        The sequence; ``info.length`` is ``seqLength`` or, without it, the last detected frame,
        and ``frames`` has one entry per frame.

    Raises:
        DataError: Missing folder or ``det/det.txt``, no frame rate from either ``seqinfo.ini``
            or `fps`, and everything `read_seqinfo` / `read_mot_detections` raise.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise DataError(f"{directory}: sequence folder not found")
    det_path = directory / "det" / "det.txt"
    if not det_path.is_file():
        raise DataError(f"{det_path}: file not found (a MOTChallenge folder has det/det.txt)")
    ini = directory / "seqinfo.ini"
    info = read_seqinfo(ini) if ini.is_file() else SeqInfo(name=directory.resolve().name)
    if fps is not None:
        if not (math.isfinite(fps) and fps > 0):
            raise DataError(f"fps must be a positive number, got {fps!r}")
        info = replace(info, fps=float(fps))
    if info.fps is None:
        where = f"{ini} has no frameRate" if ini.is_file() else f"{directory} has no seqinfo.ini"
        raise DataError(f"no frame rate for {info.name}: {where}", hint="pass --fps")
    frames = read_mot_detections(
        det_path, seq_length=info.length, embeddings=embeddings, min_score=min_score
    )
    return MotSequence(info=replace(info, length=len(frames)), frames=frames)
