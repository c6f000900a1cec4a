"""Check traffic against the Videos API contract (`tests/contract/openai-videos.openapi.yaml`, a
copy of the shared spec kept in the repository so a clean clone can run the checks).

`SpecChecker.event_hooks()` plugs into an `httpx.AsyncClient`, so every request the client sends and
every response a server returns is validated as it happens; tests then call `assert_clean()`.
Success responses are checked against their operation; error responses against the spec's
`ErrorResponse` envelope, which the spec declares once rather than per operation.
"""

from __future__ import annotations

import functools
import io
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import yaml
from openapi_core import OpenAPI
from openapi_core.datatypes import RequestParameters
from openapi_schema_validator import OAS31Validator
from werkzeug.datastructures import Headers, ImmutableMultiDict
from werkzeug.formparser import parse_form_data

SPEC_PATH = Path(__file__).resolve().parent / "contract" / "openai-videos.openapi.yaml"
# Requests are validated as if sent to the spec's own server, whatever loopback port served them.
SPEC_SERVER = "https://api.openai.com"
SPEC_PREFIX = "/v1"


@functools.cache
def _openapi() -> OpenAPI:
    return OpenAPI.from_file_path(str(SPEC_PATH))


@functools.cache
def _schema_validator(name: str) -> OAS31Validator:
    root = yaml.safe_load(SPEC_PATH.read_text())
    return OAS31Validator(_resolve_refs(root["components"]["schemas"][name], root))


# openapi-core decodes every multipart part whose schema is not a plain string as bytes (the
# spec's `model` is an anyOf), so multipart bodies are decoded here and checked with their schema.
MULTIPART_SCHEMAS = {"/v1/videos": "CreateVideoMultipartBody"}
# Binary content is checked by status and media type only. The spec lists video/mp4 and
# image/webp; the spritesheet variant is a JPEG, a type the spec's content list leaves out.
CONTENT_TYPES = {"video/mp4", "image/webp", "image/jpeg", "application/json"}


def _resolve_refs(node: Any, root: dict[str, Any]) -> Any:
    # The error schema is small; inline its local refs so a plain validator can use it.
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/"):
            target: Any = root
            for part in ref[2:].split("/"):
                target = target[part]
            return _resolve_refs(target, root)
        return {k: _resolve_refs(v, root) for k, v in node.items() if k != "components"}
    if isinstance(node, list):
        return [_resolve_refs(v, root) for v in node]
    return node


class _Request:
    """An httpx request in the shape openapi-core reads."""

    def __init__(self, request: httpx.Request, base_path: str) -> None:
        self._request = request
        path = request.url.path
        if base_path and path.startswith(base_path):
            path = path[len(base_path) :]
        self._path = SPEC_PREFIX + path
        query = parse_qs(request.url.query.decode(), keep_blank_values=True)
        self.parameters = RequestParameters(
            query=ImmutableMultiDict([(k, v) for k, vs in query.items() for v in vs]),
            header=Headers(dict(request.headers)),
            cookie=ImmutableMultiDict(),
        )

    @property
    def host_url(self) -> str:
        return SPEC_SERVER

    @property
    def path(self) -> str:
        return self._path

    @property
    def method(self) -> str:
        return self._request.method.lower()

    @property
    def body(self) -> bytes | None:
        return self._request.content or None

    @property
    def content_type(self) -> str:
        return str(self._request.headers.get("content-type", ""))


class _Response:
    def __init__(self, response: httpx.Response) -> None:
        self._response = response

    @property
    def status_code(self) -> int:
        return self._response.status_code

    @property
    def content_type(self) -> str:
        return str(self._response.headers.get("content-type", "")).split(";")[0].strip().lower()

    @property
    def headers(self) -> Headers:
        return Headers(dict(self._response.headers))

    @property
    def data(self) -> bytes | None:
        return self._response.content


@dataclass
class SpecChecker:
    """Collects contract violations seen on one client's traffic."""

    base_path: str = SPEC_PREFIX
    problems: list[str] = field(default_factory=list)
    requests_checked: int = 0
    responses_checked: int = 0

    def event_hooks(self) -> dict[str, list[Callable[..., Awaitable[None]]]]:
        return {"request": [self._on_request], "response": [self._on_response]}

    async def _on_request(self, request: httpx.Request) -> None:
        await request.aread()
        self.check_request(request)

    async def _on_response(self, response: httpx.Response) -> None:
        # Successful content is checked by its headers alone: reading it here would hold the
        # whole video in memory and hide whether the client streams it.
        if not (response.is_success and response.request.url.path.endswith("/content")):
            await response.aread()
        self.check_response(response)

    def check_request(self, request: httpx.Request) -> None:
        self.requests_checked += 1
        content_type = request.headers.get("content-type", "")
        if content_type.startswith("multipart/form-data"):
            self._check_multipart(request)
            return
        try:
            _openapi().validate_request(_Request(request, self.base_path))
        except Exception as exc:  # every violation is reported, whatever its class
            self.problems.append(f"request {request.method} {request.url.path}: {_describe(exc)}")

    def _check_multipart(self, request: httpx.Request) -> None:
        where = f"request {request.method} {request.url.path}"
        path = SPEC_PREFIX + request.url.path.removeprefix(self.base_path)
        schema = MULTIPART_SCHEMAS.get(path)
        if schema is None:
            self.problems.append(f"{where}: multipart is not expected here")
            return
        environ = {
            "REQUEST_METHOD": "POST",
            "CONTENT_TYPE": request.headers["content-type"],
            "CONTENT_LENGTH": str(len(request.content)),
            "wsgi.input": io.BytesIO(request.content),
        }
        _, form, files = parse_form_data(environ)
        body: dict[str, Any] = dict(form.items())
        for name, upload in files.items():
            if not upload.filename or not upload.mimetype:
                self.problems.append(f"{where}: file part {name} lacks a filename or type")
            # A file part stands for the spec's `type: string, format: binary`.
            body[name] = upload.filename or ""
        errors = sorted(_schema_validator(schema).iter_errors(body), key=str)
        if errors:
            self.problems.append(f"{where}: {errors[0].message}")

    def check_response(self, response: httpx.Response) -> None:
        self.responses_checked += 1
        request = response.request
        where = f"response {response.status_code} to {request.method} {request.url.path}"
        if response.status_code < 400 and request.url.path.endswith("/content"):
            media_type = _Response(response).content_type
            if media_type not in CONTENT_TYPES:
                self.problems.append(f"{where}: unexpected content type {media_type!r}")
            return
        if response.status_code >= 400:
            try:
                body = json.loads(response.content)
            except ValueError:
                self.problems.append(f"{where}: error body is not JSON")
                return
            errors = sorted(_schema_validator("ErrorResponse").iter_errors(body), key=str)
            if errors:
                self.problems.append(f"{where}: {errors[0].message}")
            return
        try:
            _openapi().validate_response(_Request(request, self.base_path), _Response(response))
        except Exception as exc:
            self.problems.append(f"{where}: {_describe(exc)}")

    def assert_clean(self) -> None:
        assert self.requests_checked > 0, "no traffic was checked"
        assert not self.problems, "contract violations:\n" + "\n".join(self.problems)


def _describe(exc: BaseException) -> str:
    inner = [str(e) for e in getattr(exc, "schema_errors", [])]
    cause = exc.__cause__
    if not inner and cause is not None:
        inner = [str(e) for e in getattr(cause, "schema_errors", [])] or [str(cause)]
    detail = "; ".join(inner)[:400]
    return f"{type(exc).__name__}: {exc}" + (f" ({detail})" if detail else "")
