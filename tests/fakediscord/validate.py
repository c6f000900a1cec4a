"""Discord's own checks on what a bot sends: message bodies and command schemas. A body Discord
would refuse is refused here too (400, code 50035 "Invalid Form Body" with the `errors` tree
discord.py flattens into its exception text), so a fake that is too lenient never hides a bug."""

from __future__ import annotations

import re
from typing import Any

JSON = dict[str, Any]

_NAME = re.compile(r"^[-_'\w]{1,32}$")
# Discord's locales (the keys of name_localizations / description_localizations).
LOCALES = frozenset(
    [
        "id",
        "da",
        "de",
        "en-GB",
        "en-US",
        "es-ES",
        "es-419",
        "fr",
        "hr",
        "it",
        "lt",
        "hu",
        "nl",
        "no",
        "pl",
        "pt-BR",
        "ro",
        "fi",
        "sv-SE",
        "vi",
        "tr",
        "cs",
        "el",
        "bg",
        "ru",
        "uk",
        "hi",
        "th",
        "zh-CN",
        "ja",
        "zh-TW",
        "ko",
    ]
)


def _check_localized(
    errors: FormErrors, path: list[str | int], owner: JSON, *, names: str, limit: int = 100
) -> None:
    """`name_localizations` (checked as `names`: "command" for a chat input command or option
    name, "menu" for a context menu's, "choice" for a choice's) and `description_localizations`:
    known locales, and each value as its English field would be checked."""
    for key in ("name_localizations", "description_localizations"):
        given = owner.get(key)
        if given is None:
            continue
        if not isinstance(given, dict):
            errors.add([*path, key], "DICT_TYPE_CONVERT", "Only dictionaries may be used")
            continue
        for locale, value in given.items():
            where = [*path, key, locale]
            if locale not in LOCALES:
                errors.add(where, "LOCALE_INVALID", "Invalid locale")
            elif key == "description_localizations" or names in ("menu", "choice"):
                most = limit if key == "description_localizations" or names == "choice" else 32
                if not isinstance(value, str) or not 1 <= len(value) <= most:
                    errors.add(where, "BASE_TYPE_BAD_LENGTH", f"Must be between 1 and {most}.")
            elif not isinstance(value, str) or not _NAME.match(value) or value != value.lower():
                errors.add(where, "APPLICATION_COMMAND_INVALID_NAME", "Command name is invalid")


class ApiError(Exception):
    """An error response in Discord's shape."""

    def __init__(
        self,
        status: int,
        code: int,
        message: str,
        errors: JSON | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {code} {message}")
        self.status = status
        self.code = code
        self.message = message
        self.errors = errors
        self.headers = headers or {}

    def body(self) -> JSON:
        data: JSON = {"message": self.message, "code": self.code}
        if self.errors is not None:
            data["errors"] = self.errors
        return data


class FormErrors:
    """Collects field errors into Discord's nested `{"a": {"0": {"_errors": [...]}}}` tree."""

    def __init__(self) -> None:
        self.tree: JSON = {}

    def add(self, path: list[str | int], code: str, message: str) -> None:
        node = self.tree
        for key in path:
            node = node.setdefault(str(key), {})
        node.setdefault("_errors", []).append({"code": code, "message": message})

    def max_len(self, path: list[str | int], value: Any, limit: int) -> None:
        if isinstance(value, str) and len(value) > limit:
            self.add(path, "BASE_TYPE_MAX_LENGTH", f"Must be {limit} or fewer in length.")

    def required(self, path: list[str | int], value: Any) -> None:
        if value is None or value == "":
            self.add(path, "BASE_TYPE_REQUIRED", "This field is required")

    def raise_if_any(self) -> None:
        if self.tree:
            raise ApiError(400, 50035, "Invalid Form Body", self.tree)


def check_embeds(errors: FormErrors, embeds: Any) -> None:
    if not isinstance(embeds, list):
        errors.add(["embeds"], "LIST_TYPE_CONVERT", "Only iterables may be used in a ListType")
        return
    if len(embeds) > 10:
        errors.add(["embeds"], "BASE_TYPE_MAX_LENGTH", "Must be 10 or fewer in length.")
    total = 0
    for i, embed in enumerate(embeds):
        if not isinstance(embed, dict):
            errors.add(["embeds", i], "DICT_TYPE_CONVERT", "Only dictionaries may be used")
            continue
        for key, limit in (("title", 256), ("description", 4096)):
            errors.max_len(["embeds", i, key], embed.get(key), limit)
            total += len(embed.get(key) or "")
        footer = embed.get("footer") or {}
        errors.max_len(["embeds", i, "footer", "text"], footer.get("text"), 2048)
        total += len(footer.get("text") or "")
        author = embed.get("author") or {}
        errors.max_len(["embeds", i, "author", "name"], author.get("name"), 256)
        total += len(author.get("name") or "")
        fields = embed.get("fields") or []
        if len(fields) > 25:
            errors.add(["embeds", i, "fields"], "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer.")
        for j, f in enumerate(fields):
            errors.required(["embeds", i, "fields", j, "name"], f.get("name"))
            errors.required(["embeds", i, "fields", j, "value"], f.get("value"))
            errors.max_len(["embeds", i, "fields", j, "name"], f.get("name"), 256)
            errors.max_len(["embeds", i, "fields", j, "value"], f.get("value"), 1024)
            total += len(f.get("name") or "") + len(f.get("value") or "")
        colour = embed.get("color")
        if colour is not None and not (isinstance(colour, int) and 0 <= colour <= 0xFFFFFF):
            errors.add(
                ["embeds", i, "color"], "NUMBER_TYPE_MAX", "int value should be <= 16777215."
            )
    if total > 6000:
        errors.add(["embeds"], "MAX_EMBED_SIZE_EXCEEDED", "Embed size exceeds maximum size of 6000")


def check_components(errors: FormErrors, components: Any, *, v2: bool) -> None:
    if not isinstance(components, list):
        errors.add(["components"], "LIST_TYPE_CONVERT", "Only iterables may be used in a ListType")
        return
    if not v2 and len(components) > 5:
        errors.add(["components"], "BASE_TYPE_MAX_LENGTH", "Must be 5 or fewer in length.")
    custom_ids: set[str] = set()

    def item(path: list[str | int], c: JSON) -> None:
        ctype = c.get("type")
        if ctype == 2:  # button
            style = c.get("style")
            if style == 5:
                errors.required([*path, "url"], c.get("url"))
            elif style != 6:
                errors.required([*path, "custom_id"], c.get("custom_id"))
            errors.max_len([*path, "label"], c.get("label"), 80)
        elif ctype in (3, 5, 6, 7, 8):  # selects
            errors.required([*path, "custom_id"], c.get("custom_id"))
            errors.max_len([*path, "placeholder"], c.get("placeholder"), 150)
            opts = c.get("options") or []
            if ctype == 3 and not 1 <= len(opts) <= 25:
                errors.add([*path, "options"], "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 25.")
            for k, o in enumerate(opts):
                errors.max_len([*path, "options", k, "label"], o.get("label"), 100)
                errors.max_len([*path, "options", k, "value"], o.get("value"), 100)
        cid = c.get("custom_id")
        if isinstance(cid, str):
            errors.max_len([*path, "custom_id"], cid, 100)
            if cid in custom_ids:
                errors.add(
                    [*path, "custom_id"],
                    "COMPONENT_CUSTOM_ID_DUPLICATED",
                    "Component custom id cannot be duplicated",
                )
            custom_ids.add(cid)
        for k, child in enumerate(c.get("components") or []):
            item([*path, "components", k], child)

    for i, row in enumerate(components):
        if not isinstance(row, dict):
            errors.add(["components", i], "DICT_TYPE_CONVERT", "Only dictionaries may be used")
            continue
        if not v2 and row.get("type") != 1:
            errors.add(
                ["components", i, "type"],
                "UNION_TYPE_CHOICES",
                'Value of field "type" must be one of (1,).',
            )
        children = row.get("components") or []
        if row.get("type") == 1 and not 1 <= len(children) <= 5:
            errors.add(
                ["components", i, "components"], "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 5."
            )
        item(["components", i], row)


def check_message(
    payload: JSON, *, file_count: int, creating: bool, existing_attachments: int = 0
) -> None:
    """Raise what Discord answers to a bad message create/edit body."""
    errors = FormErrors()
    content = payload.get("content")
    if content is not None and not isinstance(content, str):
        errors.add(["content"], "STRING_TYPE_CONVERT", "Could not interpret value as string.")
    errors.max_len(["content"], content, 2000)
    flags = int(payload.get("flags") or 0)
    if "embeds" in payload and payload["embeds"] is not None:
        check_embeds(errors, payload["embeds"])
    if "components" in payload and payload["components"] is not None:
        check_components(errors, payload["components"], v2=bool(flags & (1 << 15)))
    if file_count > 10:
        errors.add(["files"], "BASE_TYPE_MAX_LENGTH", "Must be 10 or fewer in length.")
    nonce = payload.get("nonce")
    if isinstance(nonce, str):
        errors.max_len(["nonce"], nonce, 25)
    errors.raise_if_any()
    if creating:
        empty = (
            not payload.get("content")
            and not payload.get("embeds")
            and not payload.get("components")
            and not payload.get("sticker_ids")
            and not payload.get("poll")
            and file_count == 0
            and existing_attachments == 0
        )
        if empty:
            raise ApiError(400, 50006, "Cannot send an empty message")


def _check_option(errors: FormErrors, path: list[str | int], opt: JSON, depth: int) -> int:
    """Validate one command option; returns its share of the 8000 character budget."""
    size = 0
    name = opt.get("name")
    if not isinstance(name, str) or not _NAME.match(name) or name != name.lower():
        errors.add([*path, "name"], "APPLICATION_COMMAND_INVALID_NAME", "Command name is invalid")
    desc = opt.get("description")
    if not isinstance(desc, str) or not 1 <= len(desc) <= 100:
        errors.add([*path, "description"], "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100.")
    size += len(name or "") + len(desc or "")
    _check_localized(errors, path, opt, names="command")
    otype = opt.get("type")
    if otype not in range(1, 12):
        errors.add([*path, "type"], "BASE_TYPE_CHOICES", "Value must be one of {1..11}.")
    choices = opt.get("choices") or []
    if len(choices) > 25:
        errors.add([*path, "choices"], "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")
    if choices and opt.get("autocomplete"):
        errors.add(
            [*path, "autocomplete"],
            "APPLICATION_COMMAND_OPTION_AUTOCOMPLETE_AND_CHOICES",
            "Autocomplete cannot be set with choices",
        )
    for k, choice in enumerate(choices):
        cname = choice.get("name")
        if not isinstance(cname, str) or not 1 <= len(cname) <= 100:
            errors.add([*path, "choices", k, "name"], "BASE_TYPE_BAD_LENGTH", "Must be 1 to 100.")
        value = choice.get("value")
        if otype == 3 and (not isinstance(value, str) or len(value) > 100):
            errors.add([*path, "choices", k, "value"], "BASE_TYPE_MAX_LENGTH", "Must be 100.")
        size += len(cname or "") + len(str(value))
        _check_localized(errors, [*path, "choices", k], choice, names="choice")
    for key in ("min_length", "max_length"):
        value = opt.get(key)
        if value is not None and not 0 <= int(value) <= 6000:
            errors.add([*path, key], "NUMBER_TYPE_MAX", "int value should be <= 6000.")
    subs = opt.get("options") or []
    if subs and otype not in (1, 2):
        errors.add([*path, "options"], "BASE_TYPE_BAD_VALUE", "Only subcommands have options")
    if depth > 2 and otype in (1, 2):
        errors.add([*path, "type"], "BASE_TYPE_BAD_VALUE", "Subcommands nest two levels deep")
    size += _check_options(errors, [*path, "options"], subs, depth + 1)
    return size


def _check_options(errors: FormErrors, path: list[str | int], options: Any, depth: int) -> int:
    if not isinstance(options, list):
        errors.add(path, "LIST_TYPE_CONVERT", "Only iterables may be used in a ListType")
        return 0
    if len(options) > 25:
        errors.add(path, "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")
    size = 0
    names: set[str] = set()
    seen_optional = False
    for i, opt in enumerate(options):
        if not isinstance(opt, dict):
            errors.add([*path, i], "DICT_TYPE_CONVERT", "Only dictionaries may be used")
            continue
        if opt.get("name") in names:
            errors.add(
                [*path, i, "name"],
                "APPLICATION_COMMAND_OPTIONS_NAME_ALREADY_EXISTS",
                "Option name already exists",
            )
        names.add(str(opt.get("name")))
        if opt.get("type") not in (1, 2):
            if opt.get("required"):
                if seen_optional:
                    errors.add(
                        [*path, i, "required"],
                        "APPLICATION_COMMAND_OPTIONS_REQUIRED_INVALID",
                        "Required options must be placed before non-required options",
                    )
            else:
                seen_optional = True
        size += _check_option(errors, [*path, i], opt, depth)
    return size


def check_commands(commands: Any) -> None:
    """What Discord checks on a bulk overwrite (PUT .../commands)."""
    errors = FormErrors()
    if not isinstance(commands, list):
        errors.add([], "LIST_TYPE_CONVERT", "Only iterables may be used in a ListType")
        errors.raise_if_any()
        return
    seen: set[tuple[int, str]] = set()
    per_type: dict[int, int] = {}
    for i, cmd in enumerate(commands):
        check_command(errors, [i], cmd)
        ctype = int(cmd.get("type", 1)) if isinstance(cmd, dict) else 1
        key = (ctype, str(cmd.get("name") if isinstance(cmd, dict) else ""))
        if key in seen:
            errors.add(
                [i, "name"],
                "APPLICATION_COMMANDS_DUPLICATE_NAME",
                f"Application command names must be unique ({key[1]})",
            )
        seen.add(key)
        per_type[ctype] = per_type.get(ctype, 0) + 1
    if per_type.get(1, 0) > 100:
        errors.add([], "BASE_TYPE_MAX_LENGTH", "Must be 100 or fewer chat input commands.")
    for ctype in (2, 3):
        if per_type.get(ctype, 0) > 5:
            errors.add([], "BASE_TYPE_MAX_LENGTH", "Must be 5 or fewer context menu commands.")
    errors.raise_if_any()


def check_command(errors: FormErrors, path: list[str | int], cmd: Any) -> None:
    if not isinstance(cmd, dict):
        errors.add(path, "DICT_TYPE_CONVERT", "Only dictionaries may be used")
        return
    ctype = cmd.get("type", 1)
    name = cmd.get("name")
    if ctype not in (1, 2, 3, 4):
        errors.add([*path, "type"], "BASE_TYPE_CHOICES", "Value must be one of {1, 2, 3, 4}.")
    _check_localized(errors, path, cmd, names="command" if ctype == 1 else "menu")
    if ctype == 1:
        if not isinstance(name, str) or not _NAME.match(name) or name != name.lower():
            errors.add(
                [*path, "name"], "APPLICATION_COMMAND_INVALID_NAME", "Command name is invalid"
            )
        desc = cmd.get("description")
        if not isinstance(desc, str) or not 1 <= len(desc) <= 100:
            errors.add([*path, "description"], "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100.")
        size = len(name or "") + len(desc or "")
        size += _check_options(errors, [*path, "options"], cmd.get("options") or [], 1)
        if size > 8000:
            errors.add(path, "APPLICATION_COMMAND_TOO_LARGE", "Command exceeds maximum size (8000)")
    else:
        if not isinstance(name, str) or not 1 <= len(name) <= 32:
            errors.add([*path, "name"], "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 32.")
        if cmd.get("description"):
            errors.add(
                [*path, "description"],
                "APPLICATION_COMMAND_CONTEXT_MENU_DESCRIPTION",
                "Context menu commands cannot have description",
            )
        if cmd.get("options"):
            errors.add([*path, "options"], "BASE_TYPE_BAD_VALUE", "Context menus have no options")
