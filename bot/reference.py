"""Fitting a user's reference image to the exact size the Videos API demands.

The API answers HTTP 400 unless `input_reference` is a jpeg, png or webp of exactly the requested
`size`, so every image is checked, decoded defensively and cropped or padded here, before a job is
ever created. Everything is synchronous and CPU-bound; async callers use `fit_reference_async`.
"""

from __future__ import annotations

import asyncio
import io
import math
import struct
from typing import Literal

from PIL import ExifTags, Image, ImageFilter, ImageOps, UnidentifiedImageError

from bot.api.models import ReferenceImage, parse_size
from bot.imagemeta import has_metadata
from bot.notice import Notice, notice

FitMode = Literal["crop", "pad"]
RejectCode = Literal["not_image", "too_large", "too_many_pixels", "unreadable", "empty"]

# About 25 megapixels: every camera photo, and at most ~100 MB of RGBA while decoding.
DEFAULT_MAX_PIXELS = 25_000_000
# Images decoded at once in the whole process (each may take a second of CPU and 100 MB).
DEFAULT_MAX_DECODES = 2
DEFAULT_MAX_BYTES = 20 * 1024 * 1024
JPEG_QUALITY = 92
WEBP_QUALITY = 92

_MIB = 1024 * 1024
# Formats are judged by Pillow's sniffing of the bytes. MPO is what Pillow calls a camera JPEG
# that carries extra preview images; its first image is an ordinary JPEG.
_ACCEPTED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF")
_JPEG_FORMATS = frozenset({"JPEG", "MPO"})
# Formats the API takes as they are, so an exact-size upload of one can be passed through.
_PASSTHROUGH_FORMATS = frozenset({"JPEG", "PNG", "WEBP"})
# Plain 8-bit modes every server decodes; CMYK or 16-bit files are re-encoded even when the size
# is right, because decoders on the server side often get them wrong.
_PASSTHROUGH_MODES = frozenset({"RGB", "RGBA", "L", "LA", "P"})
_OUTPUT_TYPES: dict[str, tuple[Literal["image/jpeg", "image/png", "image/webp"], str]] = {
    "JPEG": ("image/jpeg", "jpg"),
    "PNG": ("image/png", "png"),
    "WEBP": ("image/webp", "webp"),
}
# Signatures of the accepted formats: bytes that start like one of them but that Pillow cannot
# open are a damaged image rather than "not an image", and the user deserves the right message.
_SIGNATURES = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a")
# What Pillow raises for malformed or truncated files, depending on the plugin and the damage.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, IndexError)
_RESAMPLE = Image.Resampling.LANCZOS


class ReferenceRejected(ValueError):
    """The image cannot be used; `notice` says why to the member, `reason` is its plain form."""

    def __init__(self, code: RejectCode, message: Notice) -> None:
        super().__init__(message.plain())
        self.code: RejectCode = code
        self.notice = message
        self.reason = message.plain()


def _megabytes(n: int) -> str:
    # Rounded up, so a file a hair over the limit never reads as "20.0 MB; the limit is 20 MB".
    value = math.ceil(n * 10 / _MIB) / 10
    return f"{value:g}"


def _too_large(size_bytes: int, limit_bytes: int) -> ReferenceRejected:
    return ReferenceRejected(
        "too_large",
        notice(
            "The image is {size} MB; the limit is {limit} MB.",
            size=_megabytes(size_bytes),
            limit=_megabytes(limit_bytes),
        ),
    )


def _too_many_pixels(max_pixels: int, dims: tuple[int, int] | None = None) -> ReferenceRejected:
    limit = f"{max_pixels / 1_000_000:g}"
    if dims is None:
        return ReferenceRejected(
            "too_many_pixels",
            notice("The image has too many pixels; the limit is {limit} megapixels.", limit=limit),
        )
    return ReferenceRejected(
        "too_many_pixels",
        notice(
            "The image is {width}x{height} pixels; the limit is {limit} megapixels.",
            width=dims[0],
            height=dims[1],
            limit=limit,
        ),
    )


def _empty() -> ReferenceRejected:
    return ReferenceRejected("empty", notice("The file is empty."))


def _not_image() -> ReferenceRejected:
    return ReferenceRejected(
        "not_image", notice("That file is not an image (jpeg, png, webp or gif).")
    )


def _unreadable() -> ReferenceRejected:
    return ReferenceRejected(
        "unreadable", notice("The image could not be read; the file may be damaged or incomplete.")
    )


def check_declared_size(size_bytes: int, limit_bytes: int) -> None:
    """Refuse an attachment from its declared size, before spending bandwidth downloading it."""
    if size_bytes <= 0:
        raise _empty()
    if size_bytes > limit_bytes:
        raise _too_large(size_bytes, limit_bytes)


def _looks_like_image(data: bytes) -> bool:
    return data.startswith(_SIGNATURES) or (data[:4] == b"RIFF" and data[8:12] == b"WEBP")


def _webp_is_lossless(data: bytes) -> bool:
    # A RIFF file is a list of (fourcc, little-endian size, payload padded to even) chunks; the
    # first image chunk tells lossless (VP8L) from lossy (VP8, or ANMF frames, treated as lossy).
    pos = 12
    while pos + 8 <= len(data):
        fourcc = data[pos : pos + 4]
        if fourcc == b"VP8L":
            return True
        if fourcc in (b"VP8 ", b"ANMF"):
            return False
        size = int.from_bytes(data[pos + 4 : pos + 8], "little")
        pos += 8 + size + (size & 1)
    return False


def _orientation(im: Image.Image) -> int:
    value = im.getexif().get(ExifTags.Base.Orientation, 1)
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _to_rgb(im: Image.Image) -> Image.Image:
    """RGB, or RGBA when the image really has transparency: the only modes resizing, blurring and
    every encoder handle the same way."""
    if im.mode in ("I", "F") or im.mode.startswith("I;16"):
        # 16-bit greyscale: a plain convert clips everything above 255 to white, so scale first.
        im = im.convert("I").point(lambda v: v * (1 / 256)).convert("L")
    if im.has_transparency_data:
        im = im.convert("RGBA")
        alpha_low, _ = im.getchannel("A").getextrema()
        # Alpha that is opaque everywhere is dead weight (and stops a JPEG from being written).
        if alpha_low == 255:
            im = im.convert("RGB")
        return im
    return im if im.mode == "RGB" else im.convert("RGB")


def _contain(im: Image.Image, size: tuple[int, int]) -> Image.Image:
    # ImageOps.contain can round an extreme aspect ratio down to a zero-pixel side; never below 1.
    w, h = size
    scale = min(w / im.width, h / im.height)
    new = (max(1, min(w, round(im.width * scale))), max(1, min(h, round(im.height * scale))))
    return im.resize(new, _RESAMPLE)


def _backdrop(im: Image.Image, size: tuple[int, int]) -> Image.Image:
    """A blurred, enlarged copy of the image covering `size`.

    Blurring a small copy then enlarging it looks the same as a huge-radius blur at full size and
    costs a fraction of it. Premultiplied alpha keeps transparent pixels' hidden colour out of it.
    """
    small = (max(1, -(-size[0] // 16)), max(1, -(-size[1] // 16)))
    alpha = im.mode == "RGBA"
    bg = ImageOps.fit(im, small, method=Image.Resampling.BILINEAR)
    if alpha:
        bg = bg.convert("RGBa")
    bg = bg.filter(ImageFilter.GaussianBlur(radius=2)).resize(size, Image.Resampling.BICUBIC)
    return bg.convert("RGBA") if alpha else bg


def _pad(
    im: Image.Image, size: tuple[int, int], pad_color: tuple[int, int, int] | None
) -> Image.Image:
    inner = _contain(im, size)
    if inner.size == size:
        return inner
    if pad_color is None:
        canvas = _backdrop(im, size)
    else:
        fill = (*pad_color, 255) if im.mode == "RGBA" else pad_color
        canvas = Image.new(im.mode, size, fill)
    # No mask: the image keeps its own alpha rather than being flattened onto the padding.
    canvas.paste(inner, ((size[0] - inner.width) // 2, (size[1] - inner.height) // 2))
    return canvas


def _output_format(source_format: str) -> str:
    # Keep the source's family: lossy stays lossy (a photo as PNG is several times larger for no
    # gain), lossless stays lossless. The API takes no GIF; PNG keeps its palette's colours and
    # transparency exactly.
    if source_format in _JPEG_FORMATS:
        return "JPEG"
    if source_format == "WEBP":
        return "WEBP"
    return "PNG"


def _encode(im: Image.Image, fmt: str, *, webp_lossless: bool, icc: bytes | None) -> bytes:
    # Pillow carries `info` (a JPEG comment, XMP, text chunks) through resizes and may write it
    # back when saving: the output gets pixels and the colour profile only.
    im.info.clear()
    out = io.BytesIO()
    extra: dict[str, object] = {}
    if icc:
        extra["icc_profile"] = icc
    if fmt == "JPEG":
        im.save(out, "JPEG", quality=JPEG_QUALITY, **extra)
    elif fmt == "WEBP":
        if webp_lossless:
            im.save(out, "WEBP", lossless=True, method=4, **extra)
        else:
            im.save(out, "WEBP", quality=WEBP_QUALITY, method=4, **extra)
    else:
        im.save(out, "PNG", **extra)
    # EXIF is deliberately not carried over: the rotation is already applied (a kept orientation
    # tag would rotate it twice) and the user's GPS position has no business at the video API.
    return out.getvalue()


def fit_reference(
    data: bytes,
    size: str,
    *,
    mode: FitMode = "crop",
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_bytes: int = DEFAULT_MAX_BYTES,
    pad_color: tuple[int, int, int] | None = None,
) -> ReferenceImage:
    """Check `data` and fit it to `size` ("1280x720") exactly.

    `crop` scales the image to cover the size and cuts the overflow evenly from both sides; `pad`
    scales it to fit inside and fills the rest with a blurred copy of itself, or `pad_color`.
    An image already of the right size and type, with no metadata at all, is passed through byte
    for byte.

    Raises `ReferenceRejected` for anything a user sent that cannot be used, `ValueError` for a bad
    `size` or `mode` (those come from the bot, not the user).
    """
    target = parse_size(size)
    if mode not in ("crop", "pad"):
        raise ValueError(f"mode must be 'crop' or 'pad', got {mode!r}")
    if not data:
        raise _empty()
    if len(data) > max_bytes:
        raise _too_large(len(data), max_bytes)

    try:
        # Image.open reads only the header; no pixel memory is allocated until load().
        im = Image.open(io.BytesIO(data), formats=_ACCEPTED_FORMATS)
    except UnidentifiedImageError:
        raise (_unreadable() if _looks_like_image(data) else _not_image()) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        # Pillow's own process-wide guard fired first (or its warning is configured as an error).
        raise _too_many_pixels(max_pixels) from None
    except _DECODE_ERRORS:
        raise _unreadable() from None

    with im:
        # This call's own bomb guard, from the header alone and independent of whatever the
        # process-wide Image.MAX_IMAGE_PIXELS happens to be.
        if im.width * im.height > max_pixels:
            raise _too_many_pixels(max_pixels, im.size)
        try:
            return _fit_opened(im, data, target, mode, pad_color)
        except ReferenceRejected:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise _too_many_pixels(max_pixels, im.size) from None
        except _DECODE_ERRORS:
            raise _unreadable() from None


def _fit_opened(
    im: Image.Image,
    data: bytes,
    target: tuple[int, int],
    mode: FitMode,
    pad_color: tuple[int, int, int] | None,
) -> ReferenceImage:
    source_format = im.format or ""
    orientation = _orientation(im)
    if (
        source_format in _PASSTHROUGH_FORMATS
        and im.size == target
        and orientation == 1
        and im.mode in _PASSTHROUGH_MODES
        and not getattr(im, "is_animated", False)
        # A photo's EXIF, XMP or IPTC can hold where it was taken, a comment or text chunk
        # anything at all, and bytes after the image's end are invisible: any of them, and the
        # file is re-encoded, which writes pixels (and the colour profile) only.
        and not has_metadata(data, source_format)
    ):
        # Decoding fully is the only way to know a truncated file would not fail at the API.
        im.load()
        content_type, ext = _OUTPUT_TYPES[source_format]
        return ReferenceImage(data=data, filename=f"reference.{ext}", content_type=content_type)

    if source_format in _JPEG_FORMATS:
        # Let libjpeg decode at 1/2, 1/4 or 1/8 scale when that still covers the target: a 12 MP
        # photo then never exists at full size in memory. Quarter turns swap the needed sides.
        need = target if orientation < 5 else (target[1], target[0])
        im.draft(None, need)

    icc = im.info.get("icc_profile") if im.mode in ("RGB", "RGBA") else None
    # GIF (and animated PNG/WebP) open on their first frame, which is the one used.
    fixed = ImageOps.exif_transpose(im)
    rgb = _to_rgb(fixed)
    if mode == "crop":
        out = ImageOps.fit(rgb, target, method=_RESAMPLE)
    else:
        out = _pad(rgb, target, pad_color)
    if out.size != target:  # pragma: no cover - a bug here would be an HTTP 400 later
        raise AssertionError(f"fitted to {out.size}, wanted {target}")

    fmt = _output_format(source_format)
    encoded = _encode(
        out,
        fmt,
        webp_lossless=fmt == "WEBP" and _webp_is_lossless(data),
        icc=icc if isinstance(icc, bytes) else None,
    )
    content_type, ext = _OUTPUT_TYPES[fmt]
    return ReferenceImage(data=encoded, filename=f"reference.{ext}", content_type=content_type)


async def fit_reference_async(
    data: bytes,
    size: str,
    *,
    mode: FitMode = "crop",
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_bytes: int = DEFAULT_MAX_BYTES,
    pad_color: tuple[int, int, int] | None = None,
) -> ReferenceImage:
    """`fit_reference` in a worker thread: decoding a large photo takes long enough to stall the
    event loop (and with it the Discord heartbeat)."""
    return await asyncio.to_thread(
        fit_reference,
        data,
        size,
        mode=mode,
        max_pixels=max_pixels,
        max_bytes=max_bytes,
        pad_color=pad_color,
    )


class DecodeGate:
    """At most `limit` references fitted at once, process-wide: a burst of large images then
    queues here instead of taking every core and gigabytes of memory together."""

    def __init__(self, limit: int = DEFAULT_MAX_DECODES) -> None:
        self._slots = asyncio.Semaphore(limit)

    async def fit(
        self,
        data: bytes,
        size: str,
        *,
        mode: FitMode = "crop",
        max_pixels: int = DEFAULT_MAX_PIXELS,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> ReferenceImage:
        async with self._slots:
            return await fit_reference_async(
                data, size, mode=mode, max_pixels=max_pixels, max_bytes=max_bytes
            )
