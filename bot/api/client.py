"""Async client for the Videos API over one shared `httpx.AsyncClient`.

Retries only where they are safe (bot/api/transport.py). Creates (create, remix, edit, extend)
start billed jobs and carry no idempotency key, so they are retried only when the server certainly
did not act (429, connection never made); after an ambiguous failure (a 5xx, no answer in time, a
dropped connection, an answer that cannot be read) the client raises `CreateOutcomeUnknown` at
once. Looking for the job is the caller's part (`find_created`, bot/api/adoption.py), because
only the caller knows which jobs other requests already own.

Every answer is untrusted and bounded (bot/api/answers.py): numbers and ids are checked before
use, and anything a server sends that the client cannot use is an `InvalidResponseError` about
that one request, never an exception of another kind.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Collection
from pathlib import Path
from typing import Any, Literal, Unpack
from urllib.parse import quote

import httpx

from bot.api.adoption import CreateSearch, JobMatch, search_created
from bot.api.answers import invalid, parse_answer, parse_poll_after
from bot.api.config import ClientConfig
from bot.api.errors import (
    APIConnectionError,
    APITimeoutError,
    CreateOutcomeUnknown,
    InvalidResponseError,
    ServerError,
    UnsupportedOperation,
    VideoAPIError,
    describe_error,
)
from bot.api.models import (
    ContentVariant,
    CreateVideo,
    DeletedVideo,
    ListOrder,
    ReferenceImage,
    Video,
    VideoList,
    id_problem,
)
from bot.api.openrouter import CONTENT_INDEX, ShapeLookup, create_body
from bot.api.ratelimit import RequestLimiter
from bot.api.transport import ProbeOptions, Transport
from bot.redact import register_secret

# A server's model list (discovery) is a few tens of kilobytes; more than this is refused.
CATALOG_BODY_LIMIT = 1024 * 1024


class VideosClient:
    def __init__(
        self,
        http: httpx.AsyncClient,
        config: ClientConfig,
        *,
        limiter: RequestLimiter | None = None,
        sleep: Callable[[float], Any] = asyncio.sleep,
    ) -> None:
        self.config = config
        self.caps = config.capabilities
        self._wire = Transport(http, config, limiter=limiter, sleep=sleep)
        # Whatever a server echoes back (a gateway quoting the request's headers, a provider
        # quoting the key) is redacted before it is stored, logged, shown or printed.
        register_secret(config.api_key.get_secret_value())
        for value in config.extra_headers.values():
            register_secret(value)
        # The latest `openai-poll-after-ms` advice, in seconds (capped), for the poll interval.
        self.poll_after: float | None = None
        # Which aspect ratio and resolution a model's size stands for, where a server is asked
        # in those terms (OpenRouter): set from the catalog in use (`Backend.use_catalog`).
        self.shapes: ShapeLookup | None = None

    def __repr__(self) -> str:
        return f"VideosClient(base_url={self._wire.base!r})"

    @property
    def adopt_window(self) -> float:
        """Seconds after an attempt within which its job may have been created."""
        if self.config.adopt_window is not None:
            return self.config.adopt_window
        return self._wire.read_timeout + self.config.create_retry_budget + self.config.clock_skew

    def _require(self, capability: str) -> None:
        if not getattr(self.caps, capability):
            raise UnsupportedOperation(
                f"the configured video backend does not support {capability}", code=capability
            )

    # ------------------------------------------------------------------ creates (billed)

    async def create(self, request: CreateVideo, reference: ReferenceImage | None = None) -> Video:
        """Start a job: JSON, or multipart with a reference image or on multipart-only backends;
        on OpenRouter always JSON in its own words (the reference as a first-frame data URL)."""
        if self.caps.dialect == "openrouter":
            body = create_body(request, reference, shapes=self.shapes)
            return await self._create_job("/videos", json=body)
        audio_field = self.caps.audio_field
        if reference is None and self.caps.create_encoding == "json":
            return await self._create_job(
                "/videos", json=request.json_body(audio_field=audio_field)
            )
        # A field given as (None, value) is a plain form field: httpx then always sends multipart,
        # which multipart-only servers need even when there is no file.
        fields = request.form(audio_field=audio_field)
        parts: dict[str, Any] = {k: (None, v) for k, v in fields.items()}
        if reference is not None:
            parts["input_reference"] = (reference.filename, reference.data, reference.content_type)
        return await self._create_job("/videos", files=parts)

    async def remix(self, video_id: str, prompt: str) -> Video:
        self._require("remix")
        return await self._create_job(f"/videos/{_seg(video_id)}/remix", json={"prompt": prompt})

    async def edit(self, video_id: str, prompt: str) -> Video:
        self._require("edits")
        _seg(video_id)
        body = {"video": {"id": video_id}, "prompt": prompt}
        return await self._create_job("/videos/edits", json=body)

    async def extend(self, video_id: str, prompt: str, seconds: str) -> Video:
        self._require("extensions")
        _seg(video_id)
        body = {"video": {"id": video_id}, "prompt": prompt, "seconds": seconds}
        return await self._create_job("/videos/extensions", json=body)

    async def _create_job(self, path: str, **body: Any) -> Video:
        attempted_at = time.time()
        try:
            answer = await self._wire.send("POST", path, idempotent=False, **body)
        except (ServerError, APITimeoutError, APIConnectionError) as err:
            if isinstance(err, APIConnectionError) and not err.sent:
                raise
            raise _unknown(attempted_at, err) from None
        except InvalidResponseError as err:
            # A redirect is a refusal (nothing was started); a 2xx whose body is too large or
            # cannot be decoded is a yes that cannot be read.
            if err.status is not None and not 200 <= err.status < 300:
                raise
            raise _unknown(attempted_at, err) from None
        try:
            return parse_answer(Video.model_validate, answer)
        except InvalidResponseError as err:
            # The server said yes but its answer cannot be used: a job may well be running
            # there, so this is as ambiguous as a lost answer (and never sent again).
            raise _unknown(attempted_at, err) from None

    async def find_created(
        self, match: JobMatch, *, since: float, exclude_ids: Collection[str] = ()
    ) -> CreateSearch:
        """Look among recent jobs for the one an ambiguous create started at `since`.

        A candidate is not in `exclude_ids` (jobs other requests own), was created from
        `since - clock_skew` to `since + adopt_window`, has the request's size and seconds (and
        model, where the server reports the requested one), and where the server echoes prompts,
        the request's prompt. Where it does not, only a lone candidate is adopted, and never for
        a request with a reference image. Raises VideoAPIError (UnsupportedOperation on a backend
        that cannot list) when the listing could not be read back to `since`, so "read, nothing
        there" and "could not read" are never confused.
        """
        self._require("list")
        return await search_created(
            self.list,
            self.caps,
            match,
            lower=since - self.config.clock_skew,
            upper=since + self.adopt_window,
            max_pages=self.config.max_list_pages,
            exclude_ids=exclude_ids,
        )

    # ------------------------------------------------------------------ reads

    async def retrieve(self, video_id: str, *, retries: int | None = None) -> Video:
        """One job; `retries` caps the retries below the configured ones (the tracker reads
        with none: its next round is the retry, and one job's 5xx must not slow the round)."""
        answer = await self._wire.send(
            "GET", f"/videos/{_seg(video_id)}", idempotent=True, retries=retries
        )
        hint = parse_poll_after(
            answer.headers.get("openai-poll-after-ms"), cap=self.config.max_poll_after
        )
        if hint is not None:
            self.poll_after = hint
        return parse_answer(Video.model_validate, answer)

    async def list(
        self, *, after: str | None = None, limit: int | None = None, order: ListOrder | None = None
    ) -> VideoList:
        """One page; items that do not parse are skipped (see `VideoList.unreadable_ids`)."""
        self._require("list")
        params: dict[str, Any] = {}
        if after is not None:
            params["after"] = after
        if limit is not None:
            params["limit"] = limit
        if order is not None:
            params["order"] = order
        answer = await self._wire.send(
            "GET", "/videos", idempotent=True, params=params, headers=self.caps.list_headers
        )
        return parse_answer(VideoList.parse, answer)

    async def iter_videos(
        self, *, order: ListOrder = "desc", page_size: int = 100, max_pages: int | None = None
    ) -> AsyncIterator[Video]:
        """Videos page by page, at most `max_pages` (default: the configured cap) pages.

        Where a server omits `has_more`, a short page is the last; a page whose items carry no
        `created_at` is the last too (nothing says how far back the listing has gone).
        """
        after: str | None = None
        for _ in range(max_pages or self.config.max_list_pages):
            page = await self.list(after=after, limit=page_size, order=order)
            for video in page.data:
                yield video
            if not page.data or all(v.created_at is None for v in page.data):
                return
            more = page.has_more if page.has_more is not None else len(page.data) >= page_size
            last = page.last_id or page.data[-1].id
            if not more or last == after:
                return
            after = last

    async def delete(self, video_id: str) -> DeletedVideo:
        self._require("delete")
        answer = await self._wire.send("DELETE", f"/videos/{_seg(video_id)}", idempotent=True)
        return parse_answer(DeletedVideo.from_response, answer)

    async def download(
        self, video_id: str, dest: Path, *, variant: ContentVariant = "video"
    ) -> int:
        """Stream an asset to `dest` (owner-only) without holding it in memory; return its size.

        The body goes to `dest.part` and is renamed into place only when complete and checked, so
        a crash, a broken connection or a refused body never leaves a file under the final name;
        after any failure there is no `.part` either. What is saved must look like what was asked
        for by its Content-Type and its first bytes (a video: mp4/mov or webm; an image: webp,
        jpeg or png), be at most `max_download_bytes`, and arrive within `download_timeout`.
        """
        if variant != "video":
            self._require("variants")
        params: dict[str, str] = {"variant": variant} if self.caps.variants else {}
        if self.caps.dialect == "openrouter":
            # OpenRouter names the output by index; a job makes one.
            params = {"index": CONTENT_INDEX}
        kind: Literal["video", "image"] = "video" if variant == "video" else "image"
        return await self._wire.download(f"/videos/{_seg(video_id)}/content", params, dest, kind)

    async def read_catalog(self, path: str) -> Any:
        """A server's own account of its models (`/videos/models`, `/models`), decoded JSON, for
        discovery (bot/discovery.py): one GET, retried like any read but at most once, its body
        capped at CATALOG_BODY_LIMIT. What it says is untrusted; the caller bounds it."""
        answer = await self._wire.send("GET", path, idempotent=True, retries=1)
        if len(answer.body) > CATALOG_BODY_LIMIT:
            raise invalid(f"a model list larger than {CATALOG_BODY_LIMIT // 1024} KiB")
        return parse_answer(lambda body: body, answer)

    # --- probing: a raw read for bot/api/probe.py (choosing a profile, `videobot doctor`).

    async def probe_get(
        self, path: str, **options: Unpack[ProbeOptions]
    ) -> tuple[int, httpx.Headers, bytes]:
        """One raw GET below the base URL, never retried: the status, headers and a bounded
        body, whatever the status (`Transport.probe_get` says how)."""
        return await self._wire.probe_get(path, **options)


def _seg(video_id: str) -> str:
    # Ids come from servers and go into paths: refuse what could change the path (`/`, `.`,
    # `..`, control characters), then quote anything that could change the URL.
    problem = id_problem(video_id)
    if problem is not None:
        raise InvalidResponseError(f"the video service gave an unusable video id ({problem})")
    return quote(video_id, safe="-_.~")


def _unknown(attempted_at: float, cause: VideoAPIError) -> CreateOutcomeUnknown:
    # The bot's own words for the cause: this message is stored and shown to the member.
    return CreateOutcomeUnknown(
        f"the video service did not confirm the request ({describe_error(cause)})",
        attempted_at=attempted_at,
        cause=cause,
    )
