"""Image reading: conversions, loud failures on broken files, atomic writes, aspect checks."""

from __future__ import annotations

import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from fieldvision.data.images import (
    AspectRatioWarning,
    check_aspect,
    read_rgb,
    read_rgba,
    write_image,
)
from fieldvision.errors import DataError


def photo(h: int = 64, w: int = 128) -> np.ndarray:
    """A smooth RGB test image (JPEG-friendly)."""
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // w, y * 255 // h, (x + y) % 256], -1).astype(np.uint8)


# --------------------------------------------------------------------------- conversions


def _write_gray(path: Path) -> np.ndarray:
    gray = photo()[..., 0]
    Image.fromarray(gray, mode="L").save(path)
    return np.repeat(gray[..., None], 3, 2)


def _write_rgba(path: Path) -> np.ndarray:
    rgb = photo()
    alpha = np.full(rgb.shape[:2], 7, np.uint8)
    Image.fromarray(np.dstack([rgb, alpha]), mode="RGBA").save(path)
    return rgb


def _write_gray16(path: Path) -> np.ndarray:
    values = (np.arange(64 * 128).reshape(64, 128) % 256).astype(np.uint16)
    cv2.imwrite(str(path), values * 257)  # 16-bit PNG; v * 257 must map back to v
    return np.repeat(values.astype(np.uint8)[..., None], 3, 2)


def _write_rgb16(path: Path) -> np.ndarray:
    rgb = photo()
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR).astype(np.uint16) * 257)
    return rgb


def _write_palette(path: Path) -> np.ndarray:
    rgb = photo() // 64 * 64  # few colours: the palette holds them exactly
    Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=64).save(path)
    return rgb


def _write_rgb(path: Path) -> np.ndarray:
    rgb = photo()
    Image.fromarray(rgb).save(path)
    return rgb


@pytest.mark.parametrize(
    ("writer", "converted_from"),
    [
        (_write_rgb, None),
        (_write_gray, "grayscale"),
        (_write_rgba, "rgba"),
        (_write_gray16, "16-bit grayscale"),
        (_write_rgb16, "16-bit"),
        (_write_palette, "palette"),
    ],
)
def test_read_rgb_converts_to_8bit_rgb(tmp_path, writer, converted_from):
    path = tmp_path / "img.png"
    expected = writer(path)
    img, info = read_rgb(path, return_info=True)
    assert img.dtype == np.uint8 and img.shape == (64, 128, 3)
    assert img.flags["C_CONTIGUOUS"]
    assert np.array_equal(img, expected)
    assert info.converted_from == converted_from


def test_read_rgb_jpeg_is_close_and_rgb_ordered(tmp_path):
    rgb = np.zeros((32, 64, 3), np.uint8)
    rgb[..., 0] = 200  # pure red: a BGR/RGB mix-up would show up as blue
    Image.fromarray(rgb).save(tmp_path / "red.jpg", quality=95)
    img = read_rgb(tmp_path / "red.jpg")
    assert abs(int(img[..., 0].mean()) - 200) < 4 and img[..., 2].mean() < 4


def test_read_rgba_keeps_alpha_or_makes_it_opaque(tmp_path):
    _write_rgba(tmp_path / "a.png")
    rgba = read_rgba(tmp_path / "a.png")
    assert rgba.shape == (64, 128, 4) and (rgba[..., 3] == 7).all()
    _write_rgb(tmp_path / "b.png")
    rgba = read_rgba(tmp_path / "b.png")
    assert (rgba[..., 3] == 255).all()
    assert np.array_equal(rgba[..., :3], photo())


# --------------------------------------------------------------------------- broken files


def _missing(path: Path) -> None:
    return None


def _zero_bytes(path: Path) -> None:
    path.write_bytes(b"")


def _garbage(path: Path) -> None:
    path.write_bytes(b"this is not an image at all" * 10)


def _truncated_jpeg(path: Path) -> None:
    _ok, buf = cv2.imencode(".jpg", photo(256, 512), [cv2.IMWRITE_JPEG_QUALITY, 95])
    data = buf.tobytes()
    path.write_bytes(data[: len(data) // 2])


def _truncated_png(path: Path) -> None:
    _ok, buf = cv2.imencode(".png", photo(256, 512))
    data = buf.tobytes()
    path.write_bytes(data[: len(data) // 2])


def _corrupt_jpeg_body(path: Path) -> None:
    _ok, buf = cv2.imencode(".jpg", photo())
    data = bytearray(buf.tobytes())
    data[2:40] = b"\x00" * 38  # smash the headers after SOI
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("name", "make", "message"),
    [
        ("missing.jpg", _missing, "not found"),
        ("empty.jpg", _zero_bytes, "empty"),
        ("garbage.jpg", _garbage, "not a readable image"),
        ("half.jpg", _truncated_jpeg, "truncated"),
        ("half.png", _truncated_png, "image"),
        ("corrupt.jpg", _corrupt_jpeg_body, "image"),
    ],
)
@pytest.mark.parametrize("reader", [read_rgb, read_rgba])
def test_broken_files_raise_data_error_naming_the_path(tmp_path, name, make, message, reader):
    path = tmp_path / name
    make(path)
    with pytest.raises(DataError, match=message) as exc:
        reader(path)
    assert str(path) in str(exc.value)


def test_a_decoder_that_tolerates_truncation_is_not_trusted(tmp_path, monkeypatch):
    """Some libjpeg builds fill a truncated JPEG with grey and return it: still rejected."""
    import fieldvision.data.images as images

    def lenient_imdecode(buf, flags):
        return np.full((256, 512, 3), 128, np.uint8)

    monkeypatch.setattr(images.cv2, "imdecode", lenient_imdecode)
    path = tmp_path / "half.jpg"
    _truncated_jpeg(path)
    with pytest.raises(DataError, match="truncated"):
        read_rgb(path)


# --------------------------------------------------------------------------- writing


@pytest.mark.parametrize("ext", [".png", ".bmp", ".tif"])
def test_write_image_lossless_round_trip(tmp_path, ext):
    rgb = photo()
    path = write_image(tmp_path / "sub" / f"x{ext}", rgb)
    assert np.array_equal(read_rgb(path), rgb)
    assert sorted(p.name for p in path.parent.iterdir()) == [f"x{ext}"]  # no temp files left


def test_write_image_jpeg_and_rgba(tmp_path):
    rgb = photo()
    path = write_image(tmp_path / "x.jpg", rgb, quality=95)
    assert np.abs(read_rgb(path).astype(int) - rgb).mean() < 3
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 9, np.uint8)])
    back = read_rgba(write_image(tmp_path / "x.png", rgba))
    assert np.array_equal(back, rgba)


@pytest.mark.parametrize(
    ("name", "img", "message"),
    [
        ("noext", photo(), "extension"),
        ("x.png", np.zeros((4, 4, 5), np.uint8), "shape"),
        ("x.unknownext", photo(), "cannot write"),
    ],
)
def test_write_image_bad_input(tmp_path, name, img, message):
    with pytest.raises(ValueError, match=message):
        write_image(tmp_path / name, img)
    assert not (tmp_path / name).exists()


# --------------------------------------------------------------------------- aspect ratio


def test_check_aspect_warns_naming_the_file():
    with pytest.warns(AspectRatioWarning, match="square.jpg"):
        assert not check_aspect(np.zeros((100, 100, 3)), name="square.jpg")


@pytest.mark.parametrize(("h", "w"), [(1000, 2000), (100, 204), (100, 196)])
def test_check_aspect_accepts_two_to_one_within_tolerance(h, w):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_aspect(np.zeros((h, w, 3)), expected=2.0, tol=0.05)
