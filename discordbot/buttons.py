"""The buttons on a job's message, as they are shown: Cancel while the job waits or runs; Remix,
Extend and Delete under a finished video.

Each button's custom_id names the job and the action (`job:12:remix`, `job:12:cancel`). The
buttons are sent as plain buttons that nothing in this process listens to: every click, on any
message however old, reaches the one `DynamicItem` in `cogs/actions.py` whose template matches
these ids, so nothing about the message is kept in memory and the buttons keep working after a
restart.
"""

from __future__ import annotations

from typing import Literal

import discord

from bot.api.profiles import Capabilities
from bot.cancel import cancellable
from bot.notice import Notice, notice
from bot.store import Job
from bot.submit import FollowUpKind
from discordbot.i18n import Locale, text

Action = Literal["remix", "extend", "delete", "cancel"]
# Under a finished video, in this order.
ACTIONS: tuple[Action, ...] = ("remix", "extend", "delete")
# Matches every id `action_id` makes (the DynamicItem is registered with it).
TEMPLATE = r"job:(?P<id>[0-9]{1,20}):(?P<action>remix|extend|delete|cancel)"
# Each button's label (in the language of the job's member), emoji and style.
LOOKS: dict[Action, tuple[Notice, str, discord.ButtonStyle]] = {
    "remix": (notice("Remix"), "🔁", discord.ButtonStyle.secondary),
    "extend": (notice("Extend"), "⏩", discord.ButtonStyle.secondary),
    "delete": (notice("Delete"), "🗑️", discord.ButtonStyle.danger),
    "cancel": (notice("Cancel"), "✖️", discord.ButtonStyle.danger),
}


def action_id(job_id: int, action: Action) -> str:
    return f"job:{job_id}:{action}"


def action_button(
    job_id: int, action: Action, locale: Locale = None
) -> discord.ui.Button[discord.ui.View]:
    label, emoji, style = LOOKS[action]
    return discord.ui.Button(
        label=text(locale, label), emoji=emoji, style=style, custom_id=action_id(job_id, action)
    )


def remix_kind(caps: Capabilities) -> FollowUpKind | None:
    """The edits endpoint where the backend has it, else remix; None where it has neither."""
    if caps.edits:
        return "edit"
    if caps.remix:
        return "remix"
    return None


def offered_actions(caps: Capabilities) -> list[Action]:
    wanted = {
        "remix": remix_kind(caps) is not None,
        "extend": caps.extensions,
        "delete": caps.delete,
    }
    return [a for a in ACTIONS if wanted[a]]


class ShownButtons(discord.ui.View):
    """Buttons sent with a message and never listened to here: their clicks are dispatched by
    custom_id to the DynamicItem (so discord.py must not keep this view for the message)."""

    def is_dispatchable(self) -> bool:
        return False


def actions_view(job: Job, caps: Capabilities) -> discord.ui.View | None:
    """The buttons for a delivered video, only those the backend can do; None if there are none."""
    if job.state != "succeeded" or job.api_video_id is None:
        return None
    actions = offered_actions(caps)
    if not actions:
        return None
    view = ShownButtons(timeout=None)
    for action in actions:
        view.add_item(action_button(job.id, action, job.locale))
    return view


def cancel_view(job: Job, caps: Capabilities) -> discord.ui.View | None:
    """Cancel on a job's message while it waits or runs, where cancelling it is worth offering
    (bot/cancel.py `cancellable`); None otherwise, which takes the button off the message."""
    if not cancellable(job, caps):
        return None
    view = ShownButtons(timeout=None)
    view.add_item(action_button(job.id, "cancel", job.locale))
    return view
