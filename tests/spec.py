"""Check traffic against the Videos API contract (`tests/contract/openai-videos.openapi.yaml`, a
copy of the shared spec kept in the repository so a clean clone can run the checks).

`SpecChecker.event_hooks()` plugs into an `httpx.AsyncClient`, so every request the client sends and
every response a server returns is validated as it happens; tests then call `assert_clean()`.
Success responses are checked against their operation; error responses against the spec's
`ErrorResponse` envelope, which the spec declares once rather than per operation.
"""

from __future__ import annotations

import functools
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

SPEC_PATH = Path(__file__).resolve().parent / "contract" / "openai-videos.openapi.yaml"
# Requests are validated as if sent to the spec's own server, whatever loopback port served them.
SPEC_SERVER = "https://api.openai.com"
SPEC_PREFIX = "/v1"


@functools.cache
def _openapi() -> OpenAPI:
    return OpenAPI.from_file_path(str(SPEC_PATH))


@functools.cache
def _error_validator() -> OAS31Validator:
    root = yaml.safe_load(SPEC_PATH.read_text())
    schema = dict(root["components"]["schemas"]["ErrorResponse"])
    schema["components"] = root["components"]
    return OAS31Validator(_resolve_refs(schema, root))


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
        await response.aread()
        self.check_response(response)

    def check_request(self, request: httpx.Request) -> None:
        self.requests_checked += 1
        try:
            _openapi().validate_request(_Request(request, self.base_path))
        except Exception as exc:  # every violation is reported, whatever its class
            self.problems.append(f"request {request.method} {request.url.path}: {_describe(exc)}")

    def check_response(self, response: httpx.Response) -> None:
        self.responses_checked += 1
        request = response.request
        where = f"response {response.status_code} to {request.method} {request.url.path}"
        if response.status_code >= 400:
            try:
                body = json.loads(response.content)
            except ValueError:
                self.problems.append(f"{where}: error body is not JSON")
                return
            errors = sorted(_error_validator().iter_errors(body), key=str)
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
