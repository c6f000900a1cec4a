"""Reference-image fitting, on real image bytes made with Pillow (no mocks)."""

from __future__ import annotations

import asyncio
import io
import itertools
import random
import resource
import struct
import time
import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from bot import reference as reference_module
from bot.api.models import ReferenceImage, parse_size
from bot.imagemeta import has_metadata
from bot.notice import notice
from bot.reference import (
    DecodeGate,
    ReferenceRejected,
    check_declared_size,
    fit_reference,
    fit_reference_async,
)

MIB = 1024 * 1024
TYPE_OF_FORMAT = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}
EXT_OF_TYPE = {"image/jpeg": ".jpg", "image/png": ".png", "image/webp": ".webp"}
RED = (255, 0, 0)
GREEN = (0, 255, 0)
BLUE = (0, 0, 255)
WHITE = (255, 255, 255)


def encode(im: Image.Image, fmt: str, **params: object) -> bytes:
    out = io.BytesIO()
    im.save(out, fmt, **params)
    return out.getvalue()


def noise(size: tuple[int, int], seed: int = 0, mode: str = "RGB") -> Image.Image:
    rng = random.Random(seed)
    bands = len(mode)
    return Image.frombytes(mode, size, rng.randbytes(size[0] * size[1] * bands))


def photo(size: tuple[int, int], seed: int = 0) -> Image.Image:
    # Smooth noise compresses like a photo, unlike raw noise which makes huge files.
    small = noise((max(1, size[0] // 16), max(1, size[1] // 16)), seed)
    return small.resize(size, Image.Resampling.BICUBIC)


def quadrants(size: tuple[int, int]) -> Image.Image:
    """Red top-left, green top-right, blue bottom-left, white bottom-right."""
    w, h = size
    im = Image.new("RGB", size, WHITE)
    im.paste(RED, (0, 0, w // 2, h // 2))
    im.paste(GREEN, (w // 2, 0, w, h // 2))
    im.paste(BLUE, (0, h // 2, w // 2, h))
    return im


def with_orientation(im: Image.Image, orientation: int, fmt: str = "JPEG") -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(im, fmt, exif=exif, quality=95)


def decode(ref: ReferenceImage) -> Image.Image:
    """Open the output and check that its bytes really are what it claims."""
    im = Image.open(io.BytesIO(ref.data))
    im.load()
    assert im.format is not None
    assert TYPE_OF_FORMAT[im.format] == ref.content_type
    assert ref.filename.endswith(EXT_OF_TYPE[ref.content_type])
    return im


def near(actual: object, expected: tuple[int, ...], tolerance: int = 40) -> bool:
    assert isinstance(actual, tuple)
    return all(abs(int(a) - e) <= tolerance for a, e in zip(actual, expected, strict=False))


def png_header_only(width: int, height: int) -> bytes:
    """A valid PNG signature and IHDR claiming `width`x`height` 1-bit pixels, followed by a tiny
    IDAT: enough for Pillow to read the size, while nothing here is gigabytes big."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body)
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


# --- every accepted format, both modes, both orientations of aspect -------------------------


def _source(fmt: str, size: tuple[int, int]) -> bytes:
    im = photo(size)
    if fmt == "GIF":
        return encode(im.convert("P"), "GIF")
    return encode(im, fmt)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "GIF"])
@pytest.mark.parametrize("mode", ["crop", "pad"])
@pytest.mark.parametrize(
    ("source_size", "target"),
    [((300, 200), "160x90"), ((200, 300), "160x90"), ((300, 200), "90x160"), ((50, 40), "320x180")],
)
def test_each_format_fits_exactly(
    fmt: str, mode: str, source_size: tuple[int, int], target: str
) -> None:
    ref = fit_reference(_source(fmt, source_size), target, mode=mode)  # type: ignore[arg-type]
    out = decode(ref)
    assert out.size == parse_size(target)
    expected_type = {"JPEG": "image/jpeg", "WEBP": "image/webp"}.get(fmt, "image/png")
    assert ref.content_type == expected_type


def test_crop_keeps_the_centre() -> None:
    # A portrait image cut to landscape loses its top and bottom: the middle band is what stays.
    im = Image.new("RGB", (100, 300), BLUE)
    im.paste(RED, (0, 100, 100, 200))
    out = decode(fit_reference(encode(im, "PNG"), "200x100"))
    assert out.getpixel((0, 0)) == RED
    assert out.getpixel((199, 99)) == RED


def test_pad_keeps_the_whole_image() -> None:
    im = Image.new("RGB", (100, 300), BLUE)
    im.paste(RED, (0, 100, 100, 200))
    out = decode(fit_reference(encode(im, "PNG"), "200x120", mode="pad", pad_color=(0, 0, 0)))
    # Scaled to 40x120 in the middle: blue top and bottom are still there, black to the sides.
    assert out.getpixel((100, 2)) == BLUE
    assert out.getpixel((100, 60)) == RED
    assert out.getpixel((100, 117)) == BLUE
    assert out.getpixel((2, 60)) == (0, 0, 0)


# --- orientation, frames and pixel modes ------------------------------------------------------


def test_exif_rotation_is_applied() -> None:
    # Stored landscape, red left and blue right; orientation 6 means "turn 90 degrees clockwise
    # to view", so the viewer sees a portrait image with red on top and blue below.
    im = Image.new("RGB", (80, 40), RED)
    im.paste(BLUE, (40, 0, 80, 40))
    out = decode(fit_reference(with_orientation(im, 6), "100x200"))
    assert out.size == (100, 200)
    assert near(out.getpixel((50, 30)), RED)
    assert near(out.getpixel((50, 170)), BLUE)


def test_exif_rotation_of_a_12_megapixel_photo() -> None:
    # The reduced-scale JPEG decode must account for the quarter turn.
    stored = quadrants((4000, 3000))
    out = decode(fit_reference(with_orientation(stored, 6), "720x1280"))
    assert out.size == (720, 1280)
    # Turned clockwise: bottom-left (blue) is now top-left, top-left (red) is top-right.
    assert near(out.getpixel((50, 50)), BLUE)
    assert near(out.getpixel((670, 50)), RED)
    assert near(out.getpixel((50, 1230)), WHITE)
    assert near(out.getpixel((670, 1230)), GREEN)


def test_large_jpeg_keeps_its_layout() -> None:
    out = decode(fit_reference(encode(quadrants((4000, 3000)), "JPEG"), "1280x720"))
    assert out.size == (1280, 720)
    assert near(out.getpixel((50, 50)), RED)
    assert near(out.getpixel((1230, 50)), GREEN)
    assert near(out.getpixel((50, 670)), BLUE)
    assert near(out.getpixel((1230, 670)), WHITE)


def test_exact_size_but_rotated_is_not_passed_through() -> None:
    im = Image.new("RGB", (36, 64), RED)
    data = with_orientation(im, 6)
    ref = fit_reference(data, "64x36")
    assert ref.data != data
    assert decode(ref).size == (64, 36)


def test_gif_uses_the_first_frame() -> None:
    frames = [Image.new("RGB", (40, 40), c).convert("P") for c in (RED, GREEN, BLUE)]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)
    ref = fit_reference(data, "40x40")
    out = decode(ref)
    assert ref.content_type == "image/png"
    assert out.convert("RGB").getpixel((20, 20)) == RED


def test_palette_transparency_is_kept() -> None:
    im = Image.new("RGBA", (60, 60), (0, 0, 0, 0))
    im.paste((255, 0, 0, 255), (20, 20, 40, 40))
    data = encode(im.convert("P"), "PNG")
    out = decode(fit_reference(data, "120x120"))
    assert out.mode == "RGBA"
    assert out.getpixel((2, 2))[3] == 0  # type: ignore[index]
    assert near(out.getpixel((60, 60)), (255, 0, 0, 255))


def test_pad_with_colour_keeps_the_image_alpha() -> None:
    im = Image.new("RGBA", (50, 50), (0, 255, 0, 0))
    out = decode(fit_reference(encode(im, "PNG"), "100x50", mode="pad", pad_color=(9, 9, 9)))
    assert out.getpixel((2, 25)) == (9, 9, 9, 255)
    assert out.getpixel((50, 25))[3] == 0  # type: ignore[index]


def test_opaque_alpha_is_dropped() -> None:
    im = Image.new("RGBA", (50, 50), (10, 20, 30, 255))
    out = decode(fit_reference(encode(im, "PNG"), "40x40"))
    assert out.mode == "RGB"


def test_cmyk_jpeg_becomes_rgb() -> None:
    im = Image.new("RGB", (60, 40), RED).convert("CMYK")
    data = encode(im, "JPEG", quality=95)
    ref = fit_reference(data, "60x40")  # right size, but CMYK is re-encoded anyway
    out = decode(ref)
    assert ref.data != data
    assert out.mode == "RGB"
    assert near(out.getpixel((30, 20)), RED)


def test_16_bit_greyscale_is_scaled_not_clipped() -> None:
    im = Image.new("I;16", (40, 40), 32768)
    data = encode(im, "PNG")
    out = decode(fit_reference(data, "20x20"))
    value = out.convert("L").getpixel((10, 10))
    assert isinstance(value, int)
    assert 120 <= value <= 136


@pytest.mark.parametrize("mode", ["1", "L", "LA", "P"])
def test_other_modes(mode: str) -> None:
    im = photo((64, 48)).convert(mode)
    out = decode(fit_reference(encode(im, "PNG"), "32x32"))
    assert out.size == (32, 32)
    assert out.mode in ("RGB", "RGBA")


def test_lossless_webp_stays_lossless() -> None:
    data = encode(photo((64, 48)), "WEBP", lossless=True)
    ref = fit_reference(data, "32x32")
    decode(ref)
    assert ref.data[12:16] == b"VP8L"
    lossy = fit_reference(encode(photo((64, 48)), "WEBP", quality=80), "32x32")
    assert lossy.data[12:16] != b"VP8L"


# --- pad backgrounds --------------------------------------------------------------------------


def test_pad_solid_colour_at_the_border() -> None:
    data = encode(Image.new("RGB", (100, 100), RED), "PNG")
    out = decode(fit_reference(data, "300x100", mode="pad", pad_color=(0, 0, 255)))
    assert out.getpixel((0, 50)) == BLUE
    assert out.getpixel((299, 50)) == BLUE
    assert out.getpixel((150, 50)) == RED


def test_pad_blurred_background_is_the_image() -> None:
    data = encode(Image.new("RGB", (100, 100), GREEN), "PNG")
    out = decode(fit_reference(data, "300x100", mode="pad"))
    assert near(out.getpixel((0, 50)), GREEN, tolerance=10)
    assert near(out.getpixel((299, 0)), GREEN, tolerance=10)


def test_pad_blurred_background_is_blurred() -> None:
    # A sharp stripe in the middle of the source turns into a gradient in the enlarged backdrop.
    im = Image.new("RGB", (100, 100), (0, 0, 0))
    im.paste(WHITE, (0, 45, 100, 55))
    out = decode(fit_reference(encode(im, "PNG"), "400x100", mode="pad")).convert("L")
    column = [out.getpixel((10, y)) for y in range(100)]
    assert len(set(column)) > 10  # many grey levels, not two
    top, middle = column[0], column[50]
    assert isinstance(top, int)
    assert isinstance(middle, int)
    assert top < middle < 255


# --- passthrough ------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_exact_size_passes_through_untouched(fmt: str) -> None:
    data = encode(photo((64, 36)), fmt)
    ref = fit_reference(data, "64x36", mode="pad")
    assert ref.data == data
    assert ref.content_type == TYPE_OF_FORMAT[fmt]
    decode(ref)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_exact_size_with_exif_is_reencoded_without_it(fmt: str) -> None:
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"  # Make
    exif[0x8825] = {2: (48.0, 51.0, 30.0)}  # GPSInfo: a latitude
    buf = io.BytesIO()
    photo((64, 36)).save(buf, fmt, exif=exif.tobytes())
    data = buf.getvalue()
    ref = fit_reference(data, "64x36")
    assert ref.data != data
    assert b"PhoneMaker" not in ref.data
    with Image.open(io.BytesIO(ref.data)) as out:
        assert out.size == (64, 36)
        assert not out.getexif()


# Each kind of metadata issue 14 names, in the formats that carry it. Every marker is a string
# that must not survive the fitting.
_XMP = (
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF><rdf:Description '
    b'exif:GPSLatitude="48,51.5N" xmlns:exif="http://ns.adobe.com/exif/1.0/"/></rdf:RDF>'
    b"</x:xmpmeta>"
)


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _png_with(extra: bytes) -> bytes:
    """A clean exact-size PNG with `extra` chunks inserted before its first IDAT."""
    data = encode(photo((64, 36)), "PNG")
    at = data.index(b"IDAT") - 4
    return data[:at] + extra + data[at:]


def _jpeg_with_segment(marker: int, payload: bytes) -> bytes:
    data = encode(photo((64, 36)), "JPEG")
    segment = bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload
    return data[:2] + segment + data[2:]


def _webp_with_chunk(kind: bytes, body: bytes) -> bytes:
    """A clean lossy WebP rebuilt as an extended file (VP8X) carrying `kind`."""
    data = encode(photo((64, 36)), "WEBP")
    assert data[12:16] == b"VP8 "
    flags = {b"EXIF": 0x08, b"XMP ": 0x04}[kind]
    vp8x = b"VP8X" + struct.pack("<I", 10) + bytes([flags, 0, 0, 0])
    vp8x += (64 - 1).to_bytes(3, "little") + (36 - 1).to_bytes(3, "little")
    pad = b"\x00" if len(body) & 1 else b""
    chunk = kind + struct.pack("<I", len(body)) + body + pad
    payload = b"WEBP" + vp8x + data[12:] + chunk
    return b"RIFF" + struct.pack("<I", len(payload)) + payload


def _exif_bytes(make: str) -> bytes:
    exif = Image.Exif()
    exif[0x010F] = make  # Make
    return exif.tobytes()


_META_CASES = {
    "png-text": (_png_with(_png_chunk(b"tEXt", b"Comment\x00SECRET-MARK")), b"SECRET-MARK"),
    "png-itxt-xmp": (
        _png_with(_png_chunk(b"iTXt", b"XML:com.adobe.xmp\x00\x00\x00\x00\x00" + _XMP)),
        b"GPSLatitude",
    ),
    "png-ztxt": (
        _png_with(_png_chunk(b"zTXt", b"Author\x00\x00" + zlib.compress(b"SECRET-MARK"))),
        b"Author",
    ),
    "png-time": (_png_with(_png_chunk(b"tIME", b"\x07\xea\x0b\x1e\x03\x09\x29")), b"tIME"),
    "png-trailing": (encode(photo((64, 36)), "PNG") + b"SECRET-MARK", b"SECRET-MARK"),
    "jpeg-comment": (_jpeg_with_segment(0xFE, b"SECRET-MARK"), b"SECRET-MARK"),
    "jpeg-xmp": (
        _jpeg_with_segment(0xE1, b"http://ns.adobe.com/xap/1.0/\x00" + _XMP),
        b"GPSLatitude",
    ),
    "jpeg-iptc": (
        _jpeg_with_segment(0xED, b"Photoshop 3.0\x008BIM\x04\x04\x00\x00SECRET-MARK"),
        b"SECRET-MARK",
    ),
    "jpeg-trailing": (encode(photo((64, 36)), "JPEG") + b"SECRET-MARK", b"SECRET-MARK"),
    "webp-xmp": (_webp_with_chunk(b"XMP ", _XMP), b"GPSLatitude"),
    "webp-exif": (_webp_with_chunk(b"EXIF", _exif_bytes("SECRET-MARK")), b"SECRET-MARK"),
    "webp-trailing": (encode(photo((64, 36)), "WEBP") + b"SECRET-MARK", b"SECRET-MARK"),
}


@pytest.mark.parametrize("case", sorted(_META_CASES))
def test_exact_size_with_any_metadata_is_reencoded_without_it(case: str) -> None:
    data, mark = _META_CASES[case]
    assert mark in data
    with Image.open(io.BytesIO(data)) as im:
        assert im.size == (64, 36)  # still a valid image of the exact size
        fmt = im.format
    assert fmt is not None
    assert has_metadata(data, fmt)
    ref = fit_reference(data, "64x36")
    assert ref.data != data
    assert mark not in ref.data
    out = decode(ref)
    assert out.size == (64, 36)
    assert not has_metadata(ref.data, out.format or "")


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
@pytest.mark.parametrize("mode", ["crop", "pad"])
def test_every_fitted_output_is_free_of_metadata(fmt: str, mode: str) -> None:
    # A resized file from a source full of metadata: nothing of it is written back.
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"
    im = photo((120, 90))
    im.info["comment"] = b"SECRET-MARK"
    data = encode(im, fmt, exif=exif.tobytes(), comment=b"SECRET-MARK")
    ref = fit_reference(data, "64x36", mode=mode)  # type: ignore[arg-type]
    assert b"SECRET-MARK" not in ref.data and b"PhoneMaker" not in ref.data
    assert not has_metadata(ref.data, decode(ref).format or "")


def test_clean_files_are_recognised_as_clean() -> None:
    for fmt in ("JPEG", "PNG", "WEBP"):
        assert not has_metadata(encode(photo((64, 36)), fmt), fmt)
    assert not has_metadata(encode(photo((64, 36)), "JPEG", progressive=True), "JPEG")
    assert has_metadata(b"\x89PNG\r\n\x1a\n", "PNG")  # no IEND: not followed to its end
    assert has_metadata(b"GIF89a", "GIF")  # a format the scanner does not follow


def test_exact_size_gif_is_converted() -> None:
    data = encode(photo((64, 36)).convert("P"), "GIF")
    ref = fit_reference(data, "64x36")
    assert ref.content_type == "image/png"
    assert decode(ref).size == (64, 36)


# --- refusals ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        b"hello, this is a text file\n" * 20,
        b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n",
        encode(Image.new("RGB", (10, 10)), "BMP"),
        encode(Image.new("RGB", (10, 10)), "TIFF"),
    ],
    ids=["text", "pdf", "bmp", "tiff"],
)
def test_not_an_image(data: bytes) -> None:
    with pytest.raises(ReferenceRejected) as caught:
        fit_reference(data, "64x64")
    assert caught.value.code == "not_image"
    assert caught.value.reason == "That file is not an image (jpeg, png, webp or gif)."


def test_the_filename_plays_no_part() -> None:
    # Only bytes are passed in; a PNG is a PNG whatever the user called it.
    png = encode(photo((20, 20)), "PNG")
    assert fit_reference(png, "10x10").content_type == "image/png"


@pytest.mark.parametrize("keep", [0.5, 0.9])
def test_truncated_png_is_unreadable(keep: float) -> None:
    data = encode(noise((64, 64)), "PNG")
    with pytest.raises(ReferenceRejected) as caught:
        fit_reference(data[: int(len(data) * keep)], "32x32")
    assert caught.value.code == "unreadable"


def test_truncated_header_is_unreadable_not_a_non_image() -> None:
    data = encode(noise((64, 64)), "PNG")
    with pytest.raises(ReferenceRejected) as caught:
        fit_reference(data[:20], "32x32")
    assert caught.value.code == "unreadable"


def test_truncated_jpeg_is_unreadable() -> None:
    data = encode(noise((64, 64)), "JPEG")
    with pytest.raises(ReferenceRejected) as caught:
        fit_reference(data[: len(data) // 2], "32x32")
    assert caught.value.code == "unreadable"


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_truncated_exact_size_image_is_not_passed_through(fmt: str) -> None:
    data = encode(noise((64, 64)), fmt)
    with pytest.raises(ReferenceRejected) as caught:
        fit_reference(data[: len(data) // 2], "64x64")
    assert caught.value.code == "unreadable"


def test_empty() -> None:
    with pytest.raises(ReferenceRejected) as caught:
        fit_reference(b"", "64x64")
    assert caught.value.code == "empty"


@pytest.mark.parametrize(
    ("dims", "shows_dims"),
    [
        ((8000, 6000), True),
        # Issue 14's 0.17 MB PNG: 40 MP, about 480 MB and seconds of CPU once decoded.
        ((6320, 6320), True),
        ((50000, 50000), False),
        ((65535, 65535), False),
    ],
)
def test_decompression_bomb(dims: tuple[int, int], shows_dims: bool) -> None:
    data = png_header_only(*dims)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(ReferenceRejected) as caught:
        fit_reference(data, "1280x720")
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert caught.value.code == "too_many_pixels"
    assert "the limit is 25 megapixels" in caught.value.reason
    if shows_dims:
        w, h = dims
        assert caught.value.reason == f"The image is {w}x{h} pixels; the limit is 25 megapixels."
    assert grown_kib < 100 * 1024  # nothing like the gigabytes the header claims


def test_pixel_limit_is_per_call() -> None:
    data = encode(photo((100, 100)), "PNG")
    with pytest.raises(ReferenceRejected) as caught:
        fit_reference(data, "50x50", max_pixels=9_999)
    assert caught.value.code == "too_many_pixels"
    assert caught.value.reason == "The image is 100x100 pixels; the limit is 0.009999 megapixels."
    # The same bytes are fine for another call with the default limit.
    assert decode(fit_reference(data, "50x50")).size == (50, 50)
    assert Image.MAX_IMAGE_PIXELS == 89_478_485  # the process-wide guard was left alone


def test_byte_limit() -> None:
    data = encode(noise((64, 64)), "PNG")
    with pytest.raises(ReferenceRejected) as caught:
        fit_reference(data, "64x64", max_bytes=len(data) - 1)
    assert caught.value.code == "too_large"


def test_declared_size() -> None:
    check_declared_size(20 * MIB, 20 * MIB)
    with pytest.raises(ReferenceRejected) as caught:
        check_declared_size(int(25.3 * MIB), 20 * MIB)
    assert caught.value.code == "too_large"
    assert caught.value.reason == "The image is 25.3 MB; the limit is 20 MB."
    with pytest.raises(ReferenceRejected) as caught:
        check_declared_size(20 * MIB + 1, 20 * MIB)
    assert caught.value.reason == "The image is 20.1 MB; the limit is 20 MB."
    with pytest.raises(ReferenceRejected) as caught:
        check_declared_size(0, 20 * MIB)
    assert caught.value.code == "empty"


def test_rejection_is_a_value_error_with_the_reason() -> None:
    exc = ReferenceRejected("empty", notice("The file is empty."))
    assert isinstance(exc, ValueError)
    assert str(exc) == "The file is empty."


def test_bad_size_is_a_programming_error() -> None:
    with pytest.raises(ValueError) as caught:
        fit_reference(encode(photo((10, 10)), "PNG"), "wide")
    assert not isinstance(caught.value, ReferenceRejected)


# --- properties -------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    fmt=st.sampled_from(["JPEG", "PNG", "WEBP", "GIF"]),
    pixel_mode=st.sampled_from(["RGB", "RGBA", "L", "P", "1"]),
    source=st.tuples(st.integers(1, 64), st.integers(1, 64)),
    target=st.tuples(st.integers(1, 96), st.integers(1, 96)),
    fit=st.sampled_from(["crop", "pad"]),
    blurred=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_always_exact_size(
    fmt: str,
    pixel_mode: str,
    source: tuple[int, int],
    target: tuple[int, int],
    fit: str,
    blurred: bool,
    seed: int,
) -> None:
    im = noise(source, seed).convert(pixel_mode)
    if fmt == "JPEG" and pixel_mode not in ("RGB", "L"):
        im = im.convert("RGB")
    data = encode(im, fmt)
    ref = fit_reference(
        data,
        f"{target[0]}x{target[1]}",
        mode=fit,  # type: ignore[arg-type]
        pad_color=None if blurred else (1, 2, 3),
    )
    assert decode(ref).size == target


# --- async ------------------------------------------------------------------------------------


async def test_async_matches_sync() -> None:
    data = encode(photo((300, 200)), "JPEG")
    assert await fit_reference_async(data, "160x90", mode="pad") == fit_reference(
        data, "160x90", mode="pad"
    )
    with pytest.raises(ReferenceRejected):
        await fit_reference_async(b"", "160x90")


async def test_async_does_not_block_the_loop() -> None:
    # A slow one: PNG has no reduced-scale decode. Fast compression keeps the setup short.
    data = encode(photo((3000, 2000)), "PNG", compress_level=1)
    ticks: list[float] = []

    async def heartbeat() -> None:
        while True:
            ticks.append(time.perf_counter())
            await asyncio.sleep(0.01)

    beat = asyncio.create_task(heartbeat())
    await asyncio.sleep(0)
    started = time.perf_counter()
    ref = await fit_reference_async(data, "1280x720")
    elapsed = time.perf_counter() - started
    beat.cancel()
    assert decode(ref).size == (1280, 720)
    gaps = [b - a for a, b in itertools.pairwise(ticks)]
    assert len(ticks) >= 3, f"the loop ticked {len(ticks)} times in {elapsed:.2f} s"
    assert max(gaps) < 0.2


async def test_the_decode_gate_lets_only_its_limit_decode_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    gate = DecodeGate(limit=2)
    data = encode(photo((1600, 1200)), "JPEG")
    running = 0
    most = 0
    real_fit = reference_module.fit_reference

    def counting_fit(*args: object, **kwargs: object) -> ReferenceImage:
        nonlocal running, most
        running += 1
        most = max(most, running)
        try:
            time.sleep(0.05)  # long enough for the others to pile up behind the gate
            return real_fit(*args, **kwargs)  # type: ignore[arg-type]
        finally:
            running -= 1

    # The real decoder, counted: how many run at the same moment.
    monkeypatch.setattr(reference_module, "fit_reference", counting_fit)
    fitted = await asyncio.gather(*(gate.fit(data, "160x90") for _ in range(6)))
    assert most == 2
    assert all(decode(f).size == (160, 90) for f in fitted)
