"""A create's reference image (`input_reference`), checked as the reference API checks it: an
uploaded jpeg, png or webp, or a base64 data: URL of one, exactly the size of the video asked for.
"""

from __future__ import annotations

import base64
import binascii
import io
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from bot.sim.errors import SIZE_MISMATCH_MESSAGE, ApiError
from bot.sim.wire import missing, parse_size, quoted, type_name

# Declared content type -> the format Pillow must find in the bytes.
IMAGE_TYPES = {"image/jpeg": "JPEG", "image/png": "PNG", "image/webp": "WEBP"}
_FORMAT_TYPES = {fmt: ctype for ctype, fmt in IMAGE_TYPES.items()}
# Declared types that say nothing about the bytes: the bytes decide.
_UNTYPED = {"", "application/octet-stream"}


@dataclass(frozen=True)
class Reference:
    data: bytes
    content_type: str


def check_reference(data: bytes, declared: str | None, size: str) -> Reference:
    """The reference image if it is a jpeg, png or webp of exactly `size`, else the API's 400."""
    declared = (declared or "").split(";")[0].strip().lower()
    supported = quoted(list(IMAGE_TYPES), "and")

    def unsupported(mimetype: str) -> ApiError:
        return ApiError(
            400,
            f"Invalid file 'input_reference': unsupported mimetype ('{mimetype}'). "
            f"Supported file formats are {supported}.",
            param="input_reference",
            code="unsupported_file",
        )

    if declared not in IMAGE_TYPES and declared not in _UNTYPED:
        raise unsupported(declared)
    try:
        with Image.open(io.BytesIO(data)) as image:
            found, dims = image.format, image.size
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError):
        raise ApiError(
            400,
            "Invalid file 'input_reference': the image could not be read. "
            f"Supported file formats are {supported}.",
            param="input_reference",
            code="invalid_image",
        ) from None
    if found not in _FORMAT_TYPES:
        raise unsupported(Image.MIME.get(found or "", "unknown"))
    if dims != parse_size(size):
        raise ApiError(400, SIZE_MISMATCH_MESSAGE, param="input_reference", code="invalid_value")
    return Reference(data, _FORMAT_TYPES[found])


def reference_from_object(value: object, size: str) -> Reference:
    """A JSON `input_reference`: `{image_url}` as a data: URL (nothing is fetched)."""
    if not isinstance(value, dict):
        raise ApiError(
            400,
            "Invalid type for 'input_reference': expected an object, "
            f"but got {type_name(value)} instead.",
            param="input_reference",
            code="invalid_type",
        )
    url = value.get("image_url")
    if "file_id" in value and url is None:
        raise ApiError(
            400,
            f"File '{value['file_id']}' not found; the simulator accepts uploads and data: URLs.",
            param="input_reference",
            code="invalid_value",
        )
    if not isinstance(url, str) or not url:
        raise missing("input_reference.image_url")
    header, sep, payload = url.partition(",")
    if not url.startswith("data:") or not sep or not header.endswith(";base64"):
        raise ApiError(
            400,
            "The simulator cannot fetch remote images; send a base64 data: URL or upload the file.",
            param="input_reference",
            code="invalid_value",
        )
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(
            400,
            "Invalid 'input_reference.image_url': the data URL is not valid base64.",
            param="input_reference",
            code="invalid_value",
        ) from None
    return check_reference(data, header[len("data:") : -len(";base64")], size)
