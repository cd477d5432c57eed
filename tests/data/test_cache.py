"""The decode-and-clean cache: hits, invalidation, layout, damaged entries, concurrency."""

from __future__ import annotations

import json
import os
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from fieldvision.data.cache import ImageCache
from fieldvision.data.images import AspectRatioWarning, write_image
from fieldvision.errors import DataError
from fieldvision.ops.cleaning import CleanConfig, CleaningReport

CFG = CleanConfig(size=(16, 32))


def make_photo(path, seed=0, h=40, w=80):
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    write_image(path, img)
    return path


@pytest.fixture
def photo(tmp_path):
    return make_photo(tmp_path / "a.png")


def test_get_cleans_once_and_persists(tmp_path, photo):
    cache = ImageCache(tmp_path / "cache", CFG)
    img = cache.get(photo)
    assert img.shape == (16, 32, 3) and img.dtype == np.uint8
    assert np.array_equal(cache.get(photo), img)
    assert cache.misses == 1
    # A new cache object (another process, another fold) reads the stored entry.
    again = ImageCache(tmp_path / "cache", CFG)
    assert np.array_equal(again.get(photo), img)
    assert again.misses == 0


def test_layout_npy_plus_report_sidecar(tmp_path, photo):
    cache = ImageCache(tmp_path / "cache", CFG)
    cache.get(photo)
    directory = tmp_path / "cache" / CFG.fingerprint()
    assert cache.directory == directory
    names = sorted(p.suffix for p in directory.iterdir())
    assert names == [".json", ".npy"]
    sidecar = json.loads(next(directory.glob("*.json")).read_text())
    assert sidecar["source"] == str(photo.resolve())
    assert sidecar["original_size"] == [40, 80]


def test_report_round_trips(tmp_path, photo):
    cache = ImageCache(tmp_path / "cache", CFG)
    report = cache.report(photo)
    assert isinstance(report, CleaningReport)
    assert report.original_size == (40, 80) and report.cropped_rows == 4
    assert ImageCache(tmp_path / "cache", CFG).report(photo) == report


def test_changed_file_is_cleaned_again(tmp_path, photo):
    cache = ImageCache(tmp_path / "cache", CFG)
    first = cache.get(photo).copy()
    make_photo(photo, seed=1)
    st = photo.stat()
    os.utime(photo, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    second = cache.get(photo)
    assert cache.misses == 2
    assert not np.array_equal(first, second)


def test_each_config_has_its_own_directory(tmp_path, photo):
    a = ImageCache(tmp_path / "cache", CFG)
    b = ImageCache(tmp_path / "cache", CFG.model_copy(update={"clahe": True}))
    a.get(photo)
    b.get(photo)
    assert a.directory != b.directory and b.misses == 1


def test_disabled_cache_decodes_every_time_and_writes_nothing(tmp_path, photo):
    cache = ImageCache(tmp_path / "cache", CFG, enabled=False)
    first = cache.get(photo)
    cache.get(photo)
    assert cache.misses == 2
    assert np.array_equal(first, ImageCache(tmp_path / "c2", CFG).get(photo))
    assert isinstance(cache.report(photo), CleaningReport)
    assert not (tmp_path / "cache").exists()


@pytest.mark.parametrize("damage", [b"", b"garbage", None])
def test_damaged_entry_is_recomputed(tmp_path, photo, damage):
    cache = ImageCache(tmp_path / "cache", CFG)
    good = cache.get(photo).copy()
    npy = next(cache.directory.glob("*.npy"))
    if damage is None:  # valid .npy of the wrong shape (e.g. from an old config)
        np.save(npy, np.zeros((3, 3, 3), np.uint8))
    else:
        npy.write_bytes(damage)
    fresh = ImageCache(tmp_path / "cache", CFG)
    assert np.array_equal(fresh.get(photo), good)
    assert fresh.misses == 1


def test_missing_and_corrupt_files_raise_data_error(tmp_path):
    cache = ImageCache(tmp_path / "cache", CFG)
    with pytest.raises(DataError, match="not found"):
        cache.get(tmp_path / "nope.jpg")
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 broken")
    with pytest.raises(DataError, match="bad.jpg"):
        cache.get(bad)


def test_warm_returns_reports_in_order(tmp_path):
    paths = [make_photo(tmp_path / f"{i}.png", seed=i) for i in range(3)]
    cache = ImageCache(tmp_path / "cache", CFG)
    reports = cache.warm(paths, progress=False)
    assert len(reports) == 3 and cache.misses == 3
    cache.warm(paths, progress=False)
    assert cache.misses == 3


def test_memory_lru_keeps_recent_items(tmp_path):
    paths = [make_photo(tmp_path / f"{i}.png", seed=i) for i in range(3)]
    cache = ImageCache(tmp_path / "cache", CFG, memory_items=2)
    first = cache.get(paths[0])
    assert cache.get(paths[0]) is first
    cache.get(paths[1])
    cache.get(paths[2])  # evicts paths[0]
    assert cache.get(paths[0]) is not first


def test_wrong_aspect_ratio_warns_once_per_decode(tmp_path):
    square = make_photo(tmp_path / "square.png", h=40, w=40)
    cache = ImageCache(tmp_path / "cache", CFG)
    with pytest.warns(AspectRatioWarning, match="square.png"):
        cache.get(square)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cache.get(square)  # cached: no decode, no warning
        ImageCache(tmp_path / "c2", CFG, expected_aspect=None).get(square)


def test_concurrent_gets_agree(tmp_path):
    paths = [make_photo(tmp_path / f"{i}.png", seed=i) for i in range(4)]
    cache_root = tmp_path / "cache"

    def work(p):
        return ImageCache(cache_root, CFG).get(p)

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(work, paths * 3))
    for i, img in enumerate(results):
        assert np.array_equal(img, results[i % 4])
    leftovers = [p for p in (cache_root / CFG.fingerprint()).iterdir() if p.name.startswith(".")]
    assert leftovers == []


@pytest.mark.parametrize(
    ("max_pixels", "error"),
    [
        (None, None),
        (40 * 80, None),  # exactly at the limit
        (40 * 80 - 1, "a.png: image is 80×40"),
    ],
)
def test_max_pixels_is_honoured(tmp_path, photo, max_pixels, error):
    cache = ImageCache(tmp_path / "cache", CFG, max_pixels=max_pixels)
    if error is None:
        assert cache.get(photo).shape == (16, 32, 3)
        assert cache.report(photo).original_size == (40, 80)
        return
    for method in (cache.get, cache.report):
        with pytest.raises(DataError, match=error):
            method(photo)
    assert cache.misses == 0
    assert not (tmp_path / "cache").exists()  # nothing cached for a refused photo
    disabled = ImageCache(tmp_path / "c2", CFG, enabled=False, max_pixels=max_pixels)
    with pytest.raises(DataError, match=error):
        disabled.get(photo)


def test_max_pixels_is_not_part_of_the_cache_key(tmp_path, photo):
    """The limit changes no pixel: entries are shared across limits (the key is unchanged)."""
    img = ImageCache(tmp_path / "cache", CFG).get(photo)
    strict = ImageCache(tmp_path / "cache", CFG, max_pixels=10)
    assert strict.directory == ImageCache(tmp_path / "cache", CFG).directory
    assert np.array_equal(strict.get(photo), img)  # already cleaned: nothing is decoded
    assert strict.misses == 0
