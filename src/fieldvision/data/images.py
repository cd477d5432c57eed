"""Read and write images as RGB uint8 arrays, failing loudly on anything broken.

`read_rgb` always returns ``np.ndarray[H, W, 3]`` uint8 RGB, whatever the file holds:

* grayscale (8- or 16-bit, 1-bit)  -> the gray channel repeated three times;
* RGBA / gray + alpha              -> alpha is **dropped** (not composited): field photos
  carry no meaningful transparency, and compositing onto a colour would invent pixels;
* 16-bit                           -> scaled to 8-bit (``round(v / 257)``, so 65535 -> 255);
* palette, CMYK                    -> expanded to RGB by the decoder;
* float images                     -> values in [0, 1] scaled by 255, others clipped.

What was converted is returned with ``return_info=True`` (`ImageInfo`) and recorded by the
image cache. A missing, empty, corrupt or truncated file raises `DataError` naming the path.
Truncated JPEGs matter: many decoders silently fill the missing half with grey, so JPEGs
are additionally decoded by Pillow with truncated images disallowed. EXIF orientation is
not applied (the pixels are used as stored, like the Kaggle photos).

Decompression bombs: a few kilobytes of PNG can claim 30000 x 30000 pixels and need gigabytes
once decoded. Every read is bounded by ``max_pixels`` (default `DEFAULT_MAX_PIXELS`, the
same number as Pillow's default warning threshold). The width x height comes from the file
header (Pillow's ``Image.open`` reads only the header), so an image over the limit is
refused with a `DataError` *before* it is decoded. Pillow's own global limit
(``PIL.Image.MAX_IMAGE_PIXELS``) is neither changed nor allowed to decide: its warning is
silenced locally and its error is caught, so ``max_pixels`` alone decides. For formats only
OpenCV can read (Pillow cannot identify the header) the check falls back to the decoded
array's size, after ``cv2.imdecode`` (which has its own hard cap,
``OPENCV_IO_MAX_IMAGE_PIXELS``, 2**30 by default).
"""

from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

from fieldvision.errors import DataError
from fieldvision.io import write_bytes

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "AspectRatioWarning",
    "ImageInfo",
    "check_aspect",
    "check_image_pixels",
    "read_rgb",
    "read_rgba",
    "write_image",
]


#: Default bound on width x height of a decoded image (Pillow's default warning threshold,
#: ~89.5 Mpx, i.e. 256 MiB of 24-bit pixels). Configurable as ``data.max_image_pixels``.
DEFAULT_MAX_PIXELS = 89_478_485

_MAX_PIXELS_HINT = "raise data.max_image_pixels in the config if the image is genuine"


class AspectRatioWarning(UserWarning):
    """An image's width / height ratio differs from the expected one."""


@dataclass(frozen=True)
class ImageInfo:
    """What `read_rgb` / `read_rgba` found in the file.

    Attributes:
        converted_from: e.g. ``"grayscale"``, ``"16-bit rgba"``, ``"palette"``; None when the
            file already was 8-bit RGB.
        original_shape: Shape of the decoded array before conversion.
        dtype: Decoded dtype name before conversion (``"uint8"``, ``"uint16"``, ...).
    """

    converted_from: str | None
    original_shape: tuple[int, ...]
    dtype: str


def _read_bytes(path: Path) -> bytes:
    if not path.is_file():
        raise DataError(f"{path}: image file not found")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read image file: {exc}") from exc
    if not data:
        raise DataError(f"{path}: image file is empty (0 bytes)")
    return data


def _resolve_max_pixels(max_pixels: int | None) -> int:
    if max_pixels is None:
        return DEFAULT_MAX_PIXELS
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, int | np.integer):
        raise TypeError(f"max_pixels must be an int or None, got {max_pixels!r}")
    if max_pixels < 1:
        raise ValueError(f"max_pixels must be >= 1, got {max_pixels}")
    return int(max_pixels)


def _mpx(pixels: int) -> str:
    mega = pixels / 1e6
    return f"{mega:.1f} Mpx" if mega >= 0.1 else f"{mega:.2g} Mpx"


def check_image_pixels(
    path: str | os.PathLike[str],
    width: int,
    height: int,
    *,
    max_pixels: int | None = None,
    source: str = "header",
) -> None:
    """Refuse an image whose ``width * height`` exceeds `max_pixels`.

    Args:
        path: The image file, named in the error.
        width: Width in pixels (e.g. from the file header).
        height: Height in pixels.
        max_pixels: Largest allowed ``width * height``; None means `DEFAULT_MAX_PIXELS`.
            An image of exactly `max_pixels` pixels passes.
        source: Where the size came from (``"header"`` or ``"decoded"``), for the message.

    Raises:
        DataError: The image has more than `max_pixels` pixels.
        ValueError: `max_pixels` is not a positive integer.
    """
    limit = _resolve_max_pixels(max_pixels)
    pixels = int(width) * int(height)
    if pixels > limit:
        raise DataError(
            f"{path}: image is {width}×{height} = {_mpx(pixels)} ({source} size), over the "
            f"limit of {limit} pixels ({_mpx(limit)}); refusing to decode it (a huge image "
            "or a decompression bomb)",
            hint=_MAX_PIXELS_HINT,
        )


def _open_bypassing_pillow_limit(data: bytes) -> ImageFile.ImageFile | None:
    """Open the header with Pillow's format plugins, skipping Pillow's global pixel check.

    Used only after ``Image.open`` raised ``DecompressionBombError``, so that our
    ``max_pixels`` (and not Pillow's global setting) decides, and the error can name the
    size. Returns None when no plugin opens the header (or a plugin refuses it itself).
    """
    try:
        Image.init()
        registry = [(fmt, *Image.OPEN[fmt]) for fmt in Image.ID]
    except (AttributeError, KeyError, TypeError, ValueError):
        return None  # Pillow's plugin registry changed shape: caller falls back
    prefix = data[:16]
    for _fmt, factory, accept in registry:
        try:
            ok = True if accept is None else accept(prefix)
            if ok and not isinstance(ok, str):  # a str is Pillow's "recognised, but no"
                return factory(io.BytesIO(data), "")
        except Exception:  # any failure (a plugin's own bomb check too): not this plugin
            continue
    return None


def _open_header(path: Path, data: bytes, limit: int) -> ImageFile.ImageFile | None:
    """Pillow's lazily-decoding image for `data` (header read only), or None if unknown."""
    with warnings.catch_warnings():
        # Pillow warns from ~89 Mpx on; our own limit decides instead.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            return Image.open(io.BytesIO(data))  # reads the header only
        except Image.DecompressionBombError as exc:
            im = _open_bypassing_pillow_limit(data)
            if im is not None:
                return im
            # Pillow identified the header as over twice its global limit but no plugin
            # gives us the size: refuse unless our limit is higher than Pillow's.
            pil_limit = Image.MAX_IMAGE_PIXELS
            if pil_limit is not None and limit <= 2 * pil_limit:
                raise DataError(
                    f"{path}: image header claims more than {2 * pil_limit} pixels ({exc}), "
                    f"over the limit of {limit} pixels ({_mpx(limit)}); refusing to decode it",
                    hint=_MAX_PIXELS_HINT,
                ) from None
            return None  # cv2 decodes it; the decoded size is checked below
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
            return None  # a format (or variant) only OpenCV knows; cv2 decides below


def _pil_mode_and_check(path: Path, data: bytes, limit: int) -> str | None:
    """Pillow's mode for the header, after the pixel-limit check; JPEGs are decoded too.

    JPEGs are decoded (at 1/8 scale) to catch truncation; other formats are not decoded.
    """
    im = _open_header(path, data, limit)
    if im is None:
        return None
    with im:
        check_image_pixels(path, im.width, im.height, max_pixels=limit)
        if im.format not in ("JPEG", "MPO"):
            return im.mode
        if ImageFile.LOAD_TRUNCATED_IMAGES:
            # Someone flipped Pillow's global switch; our check would be silently off.
            raise DataError(
                f"{path}: cannot verify JPEG integrity while "
                "PIL.ImageFile.LOAD_TRUNCATED_IMAGES is True"
            )
        try:
            # Decoding at 1/8 scale (DCT scaling) still reads every entropy-coded byte, so
            # truncation is detected at a fraction of the full decode cost.
            im.draft(im.mode, (max(im.width // 8, 1), max(im.height // 8, 1)))
            im.load()
        except (OSError, SyntaxError, ValueError) as exc:
            raise DataError(f"{path}: corrupt or truncated JPEG ({exc})") from exc
        return im.mode


def _decode(
    path: str | os.PathLike[str], max_pixels: int | None
) -> tuple[np.ndarray, str | None, Path]:
    """Decode to OpenCV's native layout (BGR/BGRA/gray, any depth) plus Pillow's mode."""
    limit = _resolve_max_pixels(max_pixels)
    path = Path(path)
    data = _read_bytes(path)
    pil_mode = _pil_mode_and_check(path, data, limit)
    arr = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None or arr.size == 0:
        raise DataError(f"{path}: not a readable image (corrupt, truncated or unsupported)")
    # Fallback for headers Pillow cannot read (OpenCV-only formats): the decoded size.
    check_image_pixels(path, arr.shape[1], arr.shape[0], max_pixels=limit, source="decoded")
    return arr, pil_mode, path


def _to_uint8(arr: np.ndarray, path: Path) -> tuple[np.ndarray, str | None]:
    if arr.dtype == np.uint8:
        return arr, None
    if arr.dtype == np.uint16:
        # round(v / 257) maps 0..65535 exactly onto 0..255.
        return ((arr.astype(np.uint32) + 128) // 257).astype(np.uint8), "16-bit"
    if arr.dtype in (np.float16, np.float32, np.float64):
        a = arr.astype(np.float32)
        if np.nanmax(a) <= 1.0:
            a = a * 255.0
        return np.clip(np.nan_to_num(a), 0, 255).round().astype(np.uint8), "float"
    raise DataError(f"{path}: unsupported pixel type {arr.dtype}")


def _split_channels(arr: np.ndarray, path: Path) -> tuple[np.ndarray, np.ndarray | None, str]:
    """Return (rgb, alpha or None, colour kind) from an OpenCV-layout uint8 array."""
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3:
        raise DataError(f"{path}: unsupported image shape {arr.shape}")
    ch = arr.shape[2]
    if ch == 1:
        return cv2.cvtColor(arr, cv2.COLOR_GRAY2RGB), None, "grayscale"
    if ch == 2:  # gray + alpha
        rgb = cv2.cvtColor(np.ascontiguousarray(arr[:, :, 0]), cv2.COLOR_GRAY2RGB)
        return rgb, np.ascontiguousarray(arr[:, :, 1]), "grayscale+alpha"
    if ch == 3:
        return cv2.cvtColor(arr, cv2.COLOR_BGR2RGB), None, "rgb"
    if ch == 4:
        rgb = cv2.cvtColor(arr, cv2.COLOR_BGRA2RGB)
        return rgb, np.ascontiguousarray(arr[:, :, 3]), "rgba"
    raise DataError(f"{path}: unsupported number of channels ({ch})")


def _convert(arr: np.ndarray, pil_mode: str | None, path: Path):
    original_shape, dtype = tuple(arr.shape), str(arr.dtype)
    arr8, depth = _to_uint8(arr, path)
    rgb, alpha, kind = _split_channels(arr8, path)
    # Pillow knows what the file stored when the decoder has already expanded it.
    if pil_mode == "P":
        kind = "palette" if alpha is None else "palette+alpha"
    elif pil_mode == "1":
        kind = "1-bit"
    elif pil_mode == "CMYK":
        kind = "cmyk"
    elif pil_mode == "LA" and kind == "rgba":
        kind = "grayscale+alpha"
    parts = [p for p in (depth, None if kind == "rgb" else kind) if p]
    info = ImageInfo(" ".join(parts) or None, original_shape, dtype)
    return rgb, alpha, info


def read_rgb(
    path: str | os.PathLike[str],
    *,
    return_info: bool = False,
    max_pixels: int | None = None,
) -> np.ndarray | tuple[np.ndarray, ImageInfo]:
    """Read an image file as RGB.

    Args:
        path: Image file (JPEG, PNG, TIFF, BMP, WebP, ...).
        return_info: Also return an `ImageInfo` saying what was converted.
        max_pixels: Refuse images with more than this many pixels (width x height, read
            from the header before decoding); None means `DEFAULT_MAX_PIXELS`.

    Returns:
        np.ndarray[H, W, 3] uint8 RGB, or ``(image, info)`` with `return_info`.

    Raises:
        DataError: The file is missing, empty, corrupt, truncated, of an unsupported kind,
            or larger than `max_pixels`.
        ValueError: `max_pixels` is not a positive integer.
    """
    arr, pil_mode, p = _decode(path, max_pixels)
    rgb, _alpha, info = _convert(arr, pil_mode, p)
    rgb = np.ascontiguousarray(rgb)
    return (rgb, info) if return_info else rgb


def read_rgba(
    path: str | os.PathLike[str],
    *,
    return_info: bool = False,
    max_pixels: int | None = None,
) -> np.ndarray | tuple[np.ndarray, ImageInfo]:
    """Read an image file as RGBA (alpha 255 where the file has none).

    Args:
        path: Image file.
        return_info: Also return an `ImageInfo`.
        max_pixels: As `read_rgb` (None means `DEFAULT_MAX_PIXELS`).

    Returns:
        np.ndarray[H, W, 4] uint8 RGBA, or ``(image, info)`` with `return_info`.

    Raises:
        DataError: As `read_rgb`.
        ValueError: As `read_rgb`.
    """
    arr, pil_mode, p = _decode(path, max_pixels)
    rgb, alpha, info = _convert(arr, pil_mode, p)
    if alpha is None:
        alpha = np.full(rgb.shape[:2], 255, dtype=np.uint8)
    rgba = np.ascontiguousarray(np.dstack([rgb, alpha]))
    return (rgba, info) if return_info else rgba


def write_image(path: str | os.PathLike[str], img: np.ndarray, *, quality: int = 95) -> Path:
    """Write an RGB / RGBA / gray uint8 image atomically; the extension picks the codec.

    Args:
        path: Target file; ``.jpg``, ``.png``, ``.webp``, ``.bmp``, ``.tif`` ...
        img: np.ndarray[H, W, 3] RGB, [H, W, 4] RGBA or [H, W] gray, uint8 (or uint16 PNG/TIFF).
        quality: JPEG / WebP quality (1-100).

    Returns:
        The target path.
    """
    path = Path(path)
    ext = path.suffix.lower()
    if not ext:
        raise ValueError(f"{path}: need a file extension to choose the image codec")
    if img.ndim == 3 and img.shape[2] == 3:
        bgr = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
    elif img.ndim == 3 and img.shape[2] == 4:
        bgr = cv2.cvtColor(img, cv2.COLOR_RGBA2BGRA)
    elif img.ndim == 2:
        bgr = img
    else:
        raise ValueError(f"cannot write an image of shape {img.shape}")
    params: list[int] = []
    if ext in (".jpg", ".jpeg"):
        params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)]
    elif ext == ".webp":
        params = [cv2.IMWRITE_WEBP_QUALITY, int(quality)]
    try:
        ok, buf = cv2.imencode(ext, bgr, params)
    except cv2.error as exc:
        raise ValueError(f"{path}: OpenCV cannot write {ext!r} files ({exc.err})") from None
    if not ok:
        raise ValueError(f"{path}: OpenCV could not encode a {img.dtype} {img.shape} image")
    return write_bytes(path, buf.tobytes())


def check_aspect(
    img: np.ndarray, expected: float = 2.0, tol: float = 0.05, name: str = "image"
) -> bool:
    """Warn (`AspectRatioWarning`) when ``W / H`` is off by more than `tol` (relative).

    The cleaner's resize will still bring the image to the model size, stretching it; the
    warning tells the user which file is not a CSIRO-style 2:1 photo.

    Args:
        img: np.ndarray[H, W, ...].
        expected: Expected ``W / H``.
        tol: Allowed relative deviation, ``|ratio / expected - 1| <= tol``.
        name: File name used in the warning.

    Returns:
        True when the ratio is within tolerance.
    """
    H, W = img.shape[:2]
    ratio = W / H if H else float("inf")
    if abs(ratio / expected - 1.0) <= tol:
        return True
    warnings.warn(
        AspectRatioWarning(
            f"{name}: aspect ratio W/H = {W}/{H} = {ratio:.3f}, expected {expected:g} "
            f"(±{tol:.0%}); the image will be stretched to the model size"
        ),
        stacklevel=2,
    )
    return False
