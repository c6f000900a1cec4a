"""The audit of admin changes as admins and owners read it: when, who, what, and each value
before and after, a page at a time (`/video-admin audit`, `/video-owner audit`)."""

from __future__ import annotations

from collections.abc import Sequence

import discord

from bot.audittext import action_label, change_lines
from bot.notice import When
from bot.store.audit import AuditEntry
from discordbot.budgets import COLOUR
from discordbot.i18n import Locale, t, text

AUDIT_PAGE = 8
AUDIT_ENTRY_CHARS = 400


def audit_target(target: str | None) -> str:
    kind, _, raw = (target or "").partition(":")
    if not raw.isdigit():
        return ""
    return f"<@&{raw}>" if kind == "role" else f"<@{raw}>"


def audit_text(entry: AuditEntry, locale: Locale = None) -> str:
    """One entry: when, who, what, and each value before and after."""
    who = f"<@{entry.actor_id}>"
    if entry.actor_kind == "owner":
        who = t(locale, "{member} (owner)", member=who)
    action = action_label(entry.action)
    whom = audit_target(entry.target)
    if whom:
        head = t(
            locale,
            "{when} {member} {action} for {target}",
            when=When(entry.at, "full"),
            member=who,
            action=action,
            target=whom,
        )
    else:
        head = t(
            locale,
            "{when} {member} {action}",
            when=When(entry.at, "full"),
            member=who,
            action=action,
        )
    if entry.refused:
        head = t(locale, "**Refused:** {entry}", entry=head)
    lines = [head]
    if entry.refused and entry.reason:
        lines.append(f"  _{entry.reason}_")
    lines += [f"  {text(locale, line)}" for line in change_lines(entry)]
    body = "\n".join(lines)
    return body if len(body) <= AUDIT_ENTRY_CHARS else body[: AUDIT_ENTRY_CHARS - 1] + "…"


def audit_embed(
    title: str, entries: Sequence[AuditEntry], page: int, total: int, locale: Locale = None
) -> discord.Embed:
    """A page of the audit; `title` is already in the reader's language."""
    pages = max(1, -(-total // AUDIT_PAGE))
    body = "\n\n".join(audit_text(e, locale) for e in entries) or t(locale, "No changes recorded.")
    embed = discord.Embed(title=title, description=body, colour=COLOUR)
    embed.set_footer(
        text=t(
            locale,
            "Page {page} of {pages} · {total} entries, newest first",
            page=page,
            pages=pages,
            total=total,
        )
    )
    return embed
