"""Dollar amounts a member types, in the ledger's unit (integer micro-dollars).

Prices and spending are kept as integers so that sums are exact; `bot.catalog.format_dollars`
shows them. What a member types is parsed here, refused with a notice that says how to write it.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from bot.catalog import MICROS_PER_DOLLAR, format_dollars
from bot.notice import Code, NoticeError, notice

# A million dollars: past any sane budget, and a bound on what may be stored.
MAX_BUDGET_MICROS = 1_000_000 * MICROS_PER_DOLLAR

# A budget option's word for "the bot's own value".
DEFAULT_WORD = "default"


def dollars_to_micros(amount: Decimal) -> int:
    """Exact for amounts with at most six decimal places (settings guarantee that)."""
    return int(amount * MICROS_PER_DOLLAR)


def parse_dollars(text: str) -> int:
    """`5`, `5.00`, `$5.5` -> micro-dollars; NoticeError saying how to write it otherwise."""
    cleaned = text.strip().removeprefix("$").strip().replace(",", "")
    try:
        amount = Decimal(cleaned)
    except InvalidOperation:
        raise NoticeError(
            notice(
                "{typed} is not a dollar amount; write it like {one} or {other}.",
                typed=Code(text),
                one=Code("5"),
                other=Code("2.50"),
            )
        ) from None
    if not amount.is_finite() or amount < 0:
        raise NoticeError(
            notice("{typed} is not a dollar amount of zero or more.", typed=Code(text))
        )
    micros = amount * MICROS_PER_DOLLAR
    if micros != micros.to_integral_value():
        raise NoticeError(notice("{typed} has more than six decimal places.", typed=Code(text)))
    if micros > MAX_BUDGET_MICROS:
        raise NoticeError(
            notice(
                "{typed} is more than {most}.",
                typed=Code(text),
                most=format_dollars(MAX_BUDGET_MICROS),
            )
        )
    return int(micros)


def parse_budget(text: str) -> int | None:
    """A budget option: dollars, or `default` (None) for the bot's own value."""
    return None if text.strip().lower() == DEFAULT_WORD else parse_dollars(text)
