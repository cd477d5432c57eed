"""Image reading: conversions, loud failures on broken files, atomic writes, aspect checks."""

from __future__ import annotations

import struct
import warnings
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from fieldvision.data.images import (
    DEFAULT_MAX_PIXELS,
    AspectRatioWarning,
    check_aspect,
    check_image_pixels,
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


# --------------------------------------------------------------------------- pixel limit


def header_only_png(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims `width` x `height` 8-bit RGB pixels, with an empty IDAT.

    Pillow opens its header fine; decoding it would allocate width * height * 3 bytes.
    """

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # depth 8, colour type RGB
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b""))
        + chunk(b"IEND", b"")
    )


def _write_hdr(path: Path, img: np.ndarray) -> None:
    """Radiance HDR: OpenCV reads it, Pillow cannot identify it."""
    ok, buf = cv2.imencode(".hdr", img.astype(np.float32) / 255.0)
    assert ok
    path.write_bytes(buf.tobytes())


def _forbid_decoding(monkeypatch) -> None:
    import fieldvision.data.images as images

    def imdecode(*args, **kwargs):
        pytest.fail("the image was decoded although its header is over the limit")

    monkeypatch.setattr(images.cv2, "imdecode", imdecode)


PHOTO_PIXELS = 64 * 128


@pytest.mark.parametrize("reader", [read_rgb, read_rgba])
@pytest.mark.parametrize("ext", [".png", ".jpg", ".bmp", ".tif", ".webp"])
@pytest.mark.parametrize(
    ("max_pixels", "error"),
    [
        (None, None),  # default limit: far above 64 x 128
        (PHOTO_PIXELS, None),  # exactly at the limit passes
        (PHOTO_PIXELS - 1, "128×64 = 0.0082 Mpx \\(header size\\), over the limit of 8191"),
        (100, "over the limit of 100 pixels"),
    ],
)
def test_pixel_limit_is_checked_from_the_header(
    tmp_path, monkeypatch, reader, ext, max_pixels, error
):
    path = write_image(tmp_path / f"photo{ext}", photo())
    if error is None:
        img = reader(path, max_pixels=max_pixels)
        assert img.shape[:2] == (64, 128)
        return
    _forbid_decoding(monkeypatch)  # refused before any full decode
    with pytest.raises(DataError, match=error) as exc:
        reader(path, max_pixels=max_pixels)
    assert str(path) in str(exc.value)
    assert "data.max_image_pixels" in exc.value.hint


@pytest.mark.parametrize(
    ("width", "height", "max_pixels", "error"),
    [
        # Over twice Pillow's default limit: Pillow itself would raise DecompressionBombError.
        (30_000, 30_000, None, "30000×30000 = 900.0 Mpx .*limit of 89478485 pixels"),
        # Between Pillow's warning and error thresholds: Pillow would decode it fully.
        (10_000, 10_000, None, "10000×10000 = 100.0 Mpx"),
        (30_000, 30_000, 10**6, "30000×30000 .*limit of 1000000 pixels"),
        (9460, 9460, None, "9460×9460 = 89.5 Mpx"),  # just over DEFAULT_MAX_PIXELS
    ],
)
def test_decompression_bomb_is_refused_without_decoding(
    tmp_path, monkeypatch, width, height, max_pixels, error
):
    path = tmp_path / "bomb.png"
    path.write_bytes(header_only_png(width, height))
    _forbid_decoding(monkeypatch)
    pil_limit = Image.MAX_IMAGE_PIXELS
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no DecompressionBombWarning either
        with pytest.raises(DataError, match=error) as exc:
            read_rgb(path, max_pixels=max_pixels)
    assert str(path) in str(exc.value)
    assert "raise data.max_image_pixels in the config" in str(exc.value)
    assert exc.value.__cause__ is None  # no Pillow exception chained into the traceback
    assert pil_limit == Image.MAX_IMAGE_PIXELS  # Pillow's global limit left alone


def test_a_raised_limit_overrides_pillows_global_limit(tmp_path, monkeypatch):
    """Our limit decides: an image Pillow would refuse reaches the decoder when allowed."""
    import fieldvision.data.images as images

    calls = []

    def imdecode(buf, flags):
        calls.append(flags)
        return np.zeros((4, 8, 3), np.uint8)  # stand-in for the 900 Mpx decode

    monkeypatch.setattr(images.cv2, "imdecode", imdecode)
    path = tmp_path / "huge.png"
    path.write_bytes(header_only_png(30_000, 30_000))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        img = read_rgb(path, max_pixels=30_000 * 30_000)
    assert calls and img.shape == (4, 8, 3)


@pytest.mark.parametrize(
    ("max_pixels", "error"),
    [
        (None, "claims more than 178956970 pixels.*limit of 89478485"),
        (2 * DEFAULT_MAX_PIXELS, "claims more than 178956970 pixels"),
        (30_000 * 30_000, None),  # ours is higher than Pillow's: the decoded size decides
    ],
)
def test_pillow_bomb_without_a_readable_size_still_follows_our_limit(
    tmp_path, monkeypatch, max_pixels, error
):
    """If Pillow's plugins cannot give the size, Pillow's refusal is turned into ours."""
    import fieldvision.data.images as images

    monkeypatch.setattr(images, "_open_bypassing_pillow_limit", lambda data: None)
    monkeypatch.setattr(images.cv2, "imdecode", lambda buf, flags: np.zeros((4, 8), np.uint8))
    path = tmp_path / "bomb.png"
    path.write_bytes(header_only_png(30_000, 30_000))
    if error is None:
        assert read_rgb(path, max_pixels=max_pixels).shape == (4, 8, 3)
        return
    with pytest.raises(DataError, match=error) as exc:
        read_rgb(path, max_pixels=max_pixels)
    assert str(path) in str(exc.value) and "data.max_image_pixels" in exc.value.hint


@pytest.mark.parametrize(
    ("pil_global_limit", "max_pixels", "error"),
    [
        (None, PHOTO_PIXELS - 1, "over the limit of 8191"),  # Pillow's limit switched off
        (100, None, None),  # Pillow's limit far below the photo: ours (the default) allows it
        (100, PHOTO_PIXELS - 1, "128×64 .*over the limit of 8191"),
    ],
)
def test_pillows_global_limit_never_decides(
    tmp_path, monkeypatch, pil_global_limit, max_pixels, error
):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", pil_global_limit)
    path = write_image(tmp_path / "photo.png", photo())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        if error is None:
            assert np.array_equal(read_rgb(path, max_pixels=max_pixels), photo())
            return
        with pytest.raises(DataError, match=error):
            read_rgb(path, max_pixels=max_pixels)


@pytest.mark.parametrize(
    ("max_pixels", "error"),
    [(PHOTO_PIXELS, None), (PHOTO_PIXELS - 1, "128×64 .*\\(decoded size\\).*limit of 8191")],
)
def test_opencv_only_formats_are_checked_after_decoding(tmp_path, max_pixels, error):
    path = tmp_path / "photo.hdr"
    _write_hdr(path, photo())
    if error is None:
        assert read_rgb(path, max_pixels=max_pixels).shape == (64, 128, 3)
        return
    with pytest.raises(DataError, match=error) as exc:
        read_rgb(path, max_pixels=max_pixels)
    assert str(path) in str(exc.value)


@pytest.mark.parametrize(
    ("width", "height", "max_pixels", "error"),
    [
        (1, DEFAULT_MAX_PIXELS, None, None),
        (1, DEFAULT_MAX_PIXELS + 1, None, DataError),
        (10, 10, 100, None),
        (10, 11, 100, DataError),
        (10, 10, 0, ValueError),
        (10, 10, -5, ValueError),
        (10, 10, 2.5, TypeError),
        (10, 10, True, TypeError),
    ],
)
def test_check_image_pixels(width, height, max_pixels, error):
    if error is None:
        check_image_pixels("x.png", width, height, max_pixels=max_pixels)
    else:
        with pytest.raises(error):
            check_image_pixels("x.png", width, height, max_pixels=max_pixels)


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
