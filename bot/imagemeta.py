"""Does an image file carry anything beyond its pixels?

A member's reference image goes to a third party (the video service). A file is passed on byte for
byte only when its structure holds nothing but what decoding needs: no EXIF, XMP, IPTC or
Photoshop blocks, no comments, no PNG text or time chunks, no unknown chunks, and no bytes after
the image's end (where anything can hide). Anything else is re-encoded, which writes pixels only.

The scanners read the container structure only (a few dozen bytes per chunk or segment), never
the pixel data, and treat anything they do not understand as metadata: a wrong "yes" costs one
re-encode, a wrong "no" would leak.
"""

from __future__ import annotations

import struct

# Chunks a PNG decoder needs (or that only describe colour); the ICC profile is kept by
# re-encoding too, so it is no reason to re-encode here.
_PNG_PLAIN = frozenset(
    {b"IHDR", b"PLTE", b"IDAT", b"IEND", b"tRNS", b"gAMA", b"cHRM", b"sRGB", b"iCCP", b"sBIT"}
    | {b"pHYs", b"bKGD"}
)
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# JPEG segments a decoder needs: quantisation and Huffman tables, frame and scan headers, restart
# interval, the JFIF header (APP0), an ICC profile (APP2) and Adobe's colour transform (APP14).
# APP1 (EXIF, XMP), APP13 (IPTC), COM and every other APPn count as metadata.
_JPEG_TABLES = frozenset({0xC4, 0xDB, 0xDD, 0xCC})
_JPEG_FRAMES = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_SOI, _EOI, _SOS = 0xD8, 0xD9, 0xDA
_APP0, _APP2, _APP14 = 0xE0, 0xE2, 0xEE

# WebP chunks a decoder needs; EXIF and XMP are metadata, animation is never passed through.
_WEBP_PLAIN = frozenset({b"VP8 ", b"VP8L", b"VP8X", b"ALPH", b"ICCP"})
# VP8X flag bits that announce EXIF (0x08) or XMP (0x04) chunks.
_VP8X_META_FLAGS = 0x08 | 0x04


def has_metadata(data: bytes, image_format: str) -> bool:
    """True when `data` (a file Pillow identified as `image_format`) holds anything but pixels
    and colour description, or when its structure cannot be followed to its exact end."""
    try:
        if image_format == "PNG":
            return _png_has_metadata(data)
        if image_format in ("JPEG", "MPO"):
            return _jpeg_has_metadata(data)
        if image_format == "WEBP":
            return _webp_has_metadata(data)
    except (IndexError, struct.error, ValueError):
        return True
    return True


def _png_has_metadata(data: bytes) -> bool:
    if not data.startswith(_PNG_SIGNATURE):
        return True
    pos = len(_PNG_SIGNATURE)
    while pos + 8 <= len(data):
        length: int = struct.unpack(">I", data[pos : pos + 4])[0]
        kind = data[pos + 4 : pos + 8]
        end = pos + 12 + length  # length, type, payload, CRC
        if end > len(data) or kind not in _PNG_PLAIN:
            return True
        if kind == b"IEND":
            return end != len(data)  # bytes after the end
        pos = end
    return True  # no IEND: truncated or not followed to its end


def _jpeg_has_metadata(data: bytes) -> bool:
    if data[:2] != b"\xff\xd8":
        return True
    pos = 2
    size = len(data)
    while pos < size:
        if data[pos] != 0xFF:
            return True
        # Fill bytes (0xFF 0xFF ...) may precede a marker.
        while pos < size and data[pos] == 0xFF:
            pos += 1
        if pos >= size:
            return True
        marker = data[pos]
        pos += 1
        if marker == _EOI:
            return pos != size
        if marker == _SOI or 0xD0 <= marker <= 0xD7:
            continue  # no length
        (length,) = struct.unpack(">H", data[pos : pos + 2])
        if length < 2 or pos + length > size:
            return True
        payload = data[pos + 2 : pos + length]
        if not _jpeg_segment_is_plain(marker, payload):
            return True
        pos += length
        if marker == _SOS:
            pos = _skip_entropy_coded(data, pos)
    return True


def _jpeg_segment_is_plain(marker: int, payload: bytes) -> bool:
    if marker in _JPEG_TABLES or marker in _JPEG_FRAMES or marker in (_SOS, 0xDD):
        return True
    if marker == _APP0:
        # JFIF or its extension, with no thumbnail (a thumbnail is a second picture).
        if payload.startswith(b"JFIF\x00") and len(payload) >= 14:
            return payload[12] == 0 and payload[13] == 0
        return False
    if marker == _APP2:
        return payload.startswith(b"ICC_PROFILE\x00")
    if marker == _APP14:
        return payload.startswith(b"Adobe")
    return False


def _skip_entropy_coded(data: bytes, pos: int) -> int:
    """The position of the next marker after a scan's entropy-coded data (0xFF followed by a
    byte other than 0x00, a fill 0xFF or a restart marker)."""
    size = len(data)
    while True:
        pos = data.find(b"\xff", pos)
        if pos < 0 or pos + 1 >= size:
            return size  # ran off the end: the caller reports "not followed to its end"
        nxt = data[pos + 1]
        if nxt == 0x00 or 0xD0 <= nxt <= 0xD7:
            pos += 2
            continue
        if nxt == 0xFF:
            pos += 1
            continue
        return pos


def _webp_has_metadata(data: bytes) -> bool:
    if data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        return True
    (riff_size,) = struct.unpack("<I", data[4:8])
    if riff_size + 8 != len(data):
        return True  # bytes after the RIFF container, or a truncated one
    pos = 12
    while pos + 8 <= len(data):
        kind = data[pos : pos + 4]
        (length,) = struct.unpack("<I", data[pos + 4 : pos + 8])
        if kind not in _WEBP_PLAIN or pos + 8 + length > len(data):
            return True
        if kind == b"VP8X" and length >= 1 and data[pos + 8] & _VP8X_META_FLAGS:
            return True
        pos += 8 + length + (length & 1)
    return pos != len(data)
