"""Finding the job an ambiguous create started, without ever taking another request's job.

A create's answer may be lost (a 5xx, a timeout, a dropped connection) after the server started
the job. The job is looked for among recent ones: created in a window around the attempt, with
the request's size and seconds (and model, where the server reports the requested one), not
owned by another request, and where the server echoes prompts, with the request's prompt. Where
it does not, only a lone candidate is adopted, and never for a request with a reference image.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from dataclasses import dataclass

from bot.api.answers import invalid
from bot.api.models import ListOrder, Video, VideoList
from bot.api.profiles import Capabilities

# One page of the listing: (after, limit, order) -> the page.
PageReader = Callable[..., Awaitable[VideoList]]


@dataclass(frozen=True)
class JobMatch:
    """What identifies the job a create started, for finding it again after an ambiguous failure.

    `size` and `seconds` are compared where the request states them (a candidate that does not
    report them does not match); the prompt where the server echoes prompts; the model where the
    server reports the model that was asked for.
    """

    prompt: str
    model: str | None = None
    size: str | None = None
    seconds: str | None = None
    remixed_from: str | None = None
    # A request with a reference image is adopted only on a prompt match: a job made from
    # another picture with the same size and length must never be taken for it.
    has_reference: bool = False


@dataclass(frozen=True)
class CreateSearch:
    """What `find_created` saw: the attempt's job (`video`), or none, or `ambiguous` when more
    than one unclaimed job could be it (or one could, but may not be adopted) and none was
    taken. With `video` None and `ambiguous` False the listing was read and nothing there can be
    the attempt's job."""

    video: Video | None
    ambiguous: bool = False


async def search_created(
    read_page: PageReader,
    caps: Capabilities,
    match: JobMatch,
    *,
    lower: float,
    upper: float,
    max_pages: int,
    exclude_ids: Collection[str] = (),
) -> CreateSearch:
    """The attempt's job among those created from `lower` to `upper` (see the module)."""
    candidates: list[Video] = []
    async for video in listing_since(read_page, lower, max_pages):
        created = video.created_at
        if created is None or not lower <= created <= upper or video.id in exclude_ids:
            continue
        if same_request(caps, match, video):
            candidates.append(video)
    if caps.echoes_prompt:
        wanted = _norm(match.prompt)
        mine = [v for v in candidates if v.prompt is not None and _norm(v.prompt) == wanted]
    elif match.has_reference:
        # No prompt to compare: a job made from another picture cannot be told apart.
        return CreateSearch(None, ambiguous=bool(candidates))
    else:
        mine = candidates
    if len(mine) == 1:
        return CreateSearch(mine[0])
    return CreateSearch(None, ambiguous=len(mine) > 1)


def same_request(caps: Capabilities, match: JobMatch, video: Video) -> bool:
    if match.size is not None and video.size != match.size:
        return False
    if match.seconds is not None and video.seconds != match.seconds:
        return False
    if (
        caps.reports_requested_model
        and match.model is not None
        and video.model is not None
        and video.model != match.model
    ):
        return False
    return not (
        match.remixed_from is not None
        and video.remixed_from_video_id is not None
        and video.remixed_from_video_id != match.remixed_from
    )


async def listing_since(
    read_page: PageReader, lower: float, max_pages: int
) -> AsyncIterator[Video]:
    """Jobs newest first back to `lower`; InvalidResponseError when the listing cannot be
    read that far (too many pages, or pages without creation times)."""
    after: str | None = None
    order: ListOrder = "desc"
    for _ in range(max_pages):
        page = await read_page(after=after, limit=100, order=order)
        for video in page.data:
            yield video
        if not page.data:
            return
        times = [v.created_at for v in page.data if v.created_at is not None]
        if not times:
            raise invalid("a job listing without creation times")
        # Only a newest-first page says nothing newer follows; a server that ignores
        # `order` is read on to its end (within the page cap).
        newest_first = all(a >= b for a, b in itertools.pairwise(times))
        if newest_first and times[-1] < lower:
            return
        more = page.has_more if page.has_more is not None else len(page.data) >= 100
        last = page.last_id or page.data[-1].id
        if not more:
            return
        if last == after:
            raise invalid("a job listing that does not advance")
        after = last
    raise invalid(f"a job listing longer than {max_pages} pages")


def _norm(prompt: str) -> str:
    # Servers may trim or re-space the prompt they echo; nothing else may differ.
    return " ".join(prompt.split())
