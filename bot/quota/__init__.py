"""Quotas: which limits apply to a request, how a refusal is worded, what `/quota` and
`/video-admin` show. Plain async Python over the Store; no Discord.

The numbers come from settings (`QUOTA_*`, `defaults.py`), each per-member one overridable per
guild by its admins (`bot/guildsettings.py`), and per member or role through the store's quota
overrides (`overrides.py`: a member gets the most generous of their roles; `exempt` skips a
limit), all within the owner's ceilings (`bot/ceilings.py`). The bot-wide daily cap is the
owners' (`OWNER_IDS`): kept in the store's meta table so it can change at run time, and never
overridable by a guild. The policy (`policy.py`) decides the limits of a request; enforcement is
the store's: `Store.reserve_job` checks every limit and holds the cost in one transaction.

Windows (all UTC, `bot/windows.py`): a member's rolling 24 hours (budget comes back as each
request ages out), a member's calendar month, and the bot's calendar day. A member's budgets
count their spending in every guild together, so joining more guilds does not multiply it.
Refusals and reports are notices (`wording.py`): the front end shows their instants in each
reader's own time zone.

Modules here import their siblings, never this face.
"""

from bot.quota.defaults import QuotaDefaults
from bot.quota.policy import QuotaPlan, QuotaPolicy, Requester
from bot.quota.report import GuildUsage, QuotaReport, WindowUsage

__all__ = [
    "GuildUsage",
    "QuotaDefaults",
    "QuotaPlan",
    "QuotaPolicy",
    "QuotaReport",
    "Requester",
    "WindowUsage",
]
