"""Members in their own language: one message catalog (discordbot/locales/*.json, keyed by the
English template), complete for every locale, used by replies, the job's own messages and the
commands Discord shows.

The catalogs are checked against the source: every literal template of `t(...)` and `notice(...)`
(tests/i18n_keys.py) and every string discord.py asks the translator for while it builds the
commands it syncs must be in every catalog with the same placeholders, and a template that is not
a literal fails (it could not be found, so it could not be translated)."""

from __future__ import annotations

import json
import string
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import discord
import pytest
from discord import app_commands

from bot.notice import Code, Ordinal, joined, notice
from bot.store import Intake
from cogs.video import DESCRIPTIONS
from discordbot.i18n import LOCALES_DIR, catalog, t, text
from discordbot.translator import CatalogTranslator, valid_name
from tests.e2e import World, video_attachment, world
from tests.fakediscord import FakeDiscord
from tests.i18n_keys import source_templates

LOCALES = ("es-ES", "pt-BR")
Where = app_commands.TranslationContextLocation
NAMES = (Where.command_name, Where.group_name, Where.parameter_name)


def placeholders(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}


def problems(keys: dict[str, str], locale: str) -> list[str]:
    """What the catalog of `locale` lacks or gets wrong for `keys` (template -> where)."""
    entries = catalog(locale)
    found: list[str] = []
    for key, where in sorted(keys.items()):
        if key not in entries:
            found.append(f"{locale}: missing {key!r} ({where})")
        elif placeholders(entries[key]) != placeholders(key):
            found.append(f"{locale}: placeholders of {key!r} differ: {entries[key]!r}")
    return found


def test_every_template_is_a_literal() -> None:
    assert source_templates().not_literal == []


@pytest.mark.parametrize("locale", LOCALES)
def test_every_template_in_the_source_is_translated_with_the_same_placeholders(
    locale: str,
) -> None:
    keys = {k: v[0] for k, v in source_templates().templates.items()}
    assert len(keys) > 200
    assert problems(keys, locale) == []


@pytest.mark.parametrize("locale", LOCALES)
def test_a_catalog_holds_only_well_formed_translations(locale: str) -> None:
    raw = json.loads((LOCALES_DIR / f"{locale}.json").read_text(encoding="utf-8"))
    assert all(isinstance(v, str) and v.strip() for v in raw.values())
    for key, value in raw.items():
        # Both parse as format strings (a stray brace would break the message).
        list(string.Formatter().parse(key))
        list(string.Formatter().parse(value))


def test_a_notice_is_worded_in_the_locale_with_its_values_in_markup() -> None:
    said = notice(
        "Model {model} isn't allowed in this server. Allowed: {allowed}.",
        model=Code("veo-3.1"),
        allowed=joined([Code("sora-2"), Code("wan-2.5")]),
    )
    assert said.plain() == "Model veo-3.1 isn't allowed in this server. Allowed: sora-2, wan-2.5."
    english = text(None, said)
    assert english == "Model `veo-3.1` isn't allowed in this server. Allowed: `sora-2`, `wan-2.5`."
    spanish = text("es-ES", said)
    assert spanish == catalog("es-ES")[said.template].format(
        model="`veo-3.1`", allowed="`sora-2`, `wan-2.5`"
    )
    assert spanish != english
    # Latin American Spanish reads the Spanish catalog; a locale without one reads English.
    assert text(discord.Locale.latin_american_spanish, said) == spanish
    assert text(discord.Locale.japanese, said) == english
    assert text("pt-BR", said) not in (english, spanish)


def test_lists_ordinals_and_nested_notices_follow_the_locale() -> None:
    both = notice(
        "{model} does not take {options}.",
        model="Sora 2",
        options=joined([notice("a negative prompt"), notice("a seed")], "or"),
    )
    assert both.plain() == "Sora 2 does not take a negative prompt or a seed."
    assert "semilla" in text("es-ES", both) and " o " in text("es-ES", both)
    assert "semente" in text("pt-BR", both) and " ou " in text("pt-BR", both)
    place = notice("{place} in line", place=Ordinal(2))
    assert place.plain() == "2nd in line"
    assert text("es-ES", place).startswith("2.º")
    assert text("pt-BR", place).startswith("2º")


def test_t_is_the_english_template_without_a_catalog() -> None:
    assert t(None, "{seconds} seconds", seconds=8) == "8 seconds"
    assert t("es-ES", "{seconds} seconds", seconds=8) == "8 segundos"
    assert t("pt-BR", "{seconds} seconds", seconds=8) == "8 segundos"


# ---------------------------------------------------------------------- end to end


@pytest.fixture
async def w(fake_discord: FakeDiscord, tmp_path: Path) -> AsyncIterator[World]:
    async with world(fake_discord, tmp_path, users=2) as env:
        yield env


class Recorder(CatalogTranslator):
    """What discord.py asks the translator for, and where."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: dict[tuple[str, Where], bool] = {}

    async def translate(
        self,
        string: app_commands.locale_str,
        locale: discord.Locale,
        context: app_commands.TranslationContextTypes,
    ) -> str | None:
        menu = isinstance(context.data, app_commands.ContextMenu)
        special = "notice" in string.extras or "verbatim" in string.extras or menu
        self.asked[(string.message, context.location)] = special
        return await super().translate(string, locale, context)


async def test_every_command_string_is_translated(w: World) -> None:
    async with w.bot() as bot:
        recorder = Recorder()
        for command in bot.tree.get_commands():
            await command.get_translated_payload(bot.tree, recorder)
    # Slash command and group names stay English (replies name them); choices made from the
    # catalog carry their notice, whose templates the source check covers.
    keys = {
        message: where.name
        for (message, where), special in recorder.asked.items()
        if not special and where not in (Where.command_name, Where.group_name)
    }
    assert "Generate a video from a prompt" in keys and "crop to fill" in keys
    assert len(keys) > 40
    # `/video`'s options that only some catalogs offer (aspect ratio, seed, ...) too.
    names = {m for (m, where) in recorder.asked if where is Where.parameter_name}
    names |= set(DESCRIPTIONS)
    keys |= {name: "parameter_name" for name in DESCRIPTIONS}
    keys |= {words: "parameter_description" for words in DESCRIPTIONS.values()}
    for locale in LOCALES:
        assert problems(keys, locale) == []
        entries = catalog(locale)
        assert [(m, entries[m]) for m in sorted(names) if not valid_name(entries[m])] == []
    # And nothing else: a template whose English changed leaves no stale entry behind.
    used = set(keys) | {m for (m, _) in recorder.asked} | set(source_templates().templates)
    for locale in LOCALES:
        assert sorted(set(catalog(locale)) - used) == []


def localized(payload: dict[str, Any], key: str) -> dict[str, str]:
    return dict(payload.get(key) or {})


async def test_synced_commands_carry_spanish_and_portuguese(w: World) -> None:
    async with w.bot():
        commands = {c.raw["name"]: c.raw for c in w.fake.commands(w.guild)}
    video = commands["video"]
    for locale in LOCALES:
        assert localized(video, "description_localizations")[locale]
        for option in video["options"]:
            assert localized(option, "description_localizations")[locale], option["name"]
            assert localized(option, "name_localizations")[locale], option["name"]
            if option["name"] == "model":
                continue  # models keep their names
            for choice in option.get("choices") or []:
                assert choice["name_localizations"][locale], choice
        assert localized(commands["Animate image"], "name_localizations")[locale]
    assert video["description_localizations"]["es-ES"] == "Genera un vídeo a partir de un prompt"
    fit = {o["name"]: o for o in video["options"]}["fit"]
    assert {c["name_localizations"]["pt-BR"] for c in fit["choices"]} == {
        "recortar para preencher",
        "preencher com bordas desfocadas",
    }
    seconds = {o["name"]: o for o in video["options"]}["seconds"]
    assert seconds["choices"][0]["name_localizations"]["es-ES"].endswith(" segundos")


async def test_a_video_asked_for_in_spanish_is_answered_in_spanish(w: World) -> None:
    async with w.bot() as bot:
        refused = await w.fake.dispatch_slash(
            "video", {"prompt": "   "}, user=w.user, channel=w.channel, locale="es-ES"
        )
        await w.wait_for(lambda: refused.original is not None)
        asked = await w.fake.dispatch_slash(
            "video",
            {"prompt": "un zorro en la nieve"},
            user=w.users[1],
            channel=w.channel,
            locale="es-ES",
        )
        await w.wait_for(
            lambda: asked.original is not None and video_attachment(asked.original) is not None
        )
        (job,) = await bot.store.recent_jobs(w.users[1].id, 5)
    private = refused.original
    assert private is not None and private.ephemeral
    assert "El prompt está vacío." in str(private.embed)
    assert job.locale == "es-ES"
    finished = asked.original
    assert finished is not None
    shown = " ".join(str(h.get("embeds")) for h in finished.history)
    assert "Tu vídeo" in shown and "Estado" in shown
    assert "Your video" not in str(finished.embed) and "Estado" in str(finished.embed)


async def test_a_request_lost_to_a_restart_is_answered_in_its_members_language(w: World) -> None:
    # A Spanish member's request acknowledged but never recorded (the bot stopped in between):
    # the next start tells them in Spanish that nothing was made or charged.
    async with w.bot() as bot:
        asked = await w.fake.dispatch_slash(
            "videos", {}, user=w.user, channel=w.channel, locale="es-ES"
        )
        await w.wait_for(lambda: asked.original is not None)
        lost = Intake(
            interaction_id=asked.id,
            application_id=asked.application_id,
            token=asked.token,
            token_expires_at=time.time() + 600,
            user_id=w.user.id,
            received_at=time.time(),
            locale="es-ES",
        )
        await bot.store.record_intake(lost)
        (kept,) = await bot.store.unrecorded_intakes()
        assert kept.locale == "es-ES"
        assert await bot.services.deliverer.sink.answer_unrecorded(kept)
    told = asked.original
    assert told is not None
    assert "No se ha enviado nada" in str(told.embed), told.embed
