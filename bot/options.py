"""Per-model options as a member asks for them: negative prompt, seed, sound on or off.

A model takes only what its catalog entry says (`ModelOptions`); a request that uses anything
else is refused before anything is sent, and the refusal names what the model does take, so the
member can fix the request instead of guessing.
"""

from __future__ import annotations

from bot.model_spec import ModelSpec
from bot.notice import Notice, joined, notice

# Each option as the sentences below name it.
_NEGATIVE = notice("a negative prompt")
_SEED = notice("a seed")
_SOUND = notice("sound on or off")


def offered(spec: ModelSpec) -> Notice:
    """What of the options `spec` takes, as a sentence."""
    options = spec.options
    taken = [
        name
        for name, ok in (
            (_NEGATIVE, options.negative_prompt),
            (_SEED, options.seed),
            (_SOUND, options.audio),
        )
        if ok
    ]
    if taken:
        text = notice("It takes {options}.", options=joined(taken, "and"))
    else:
        text = notice("It takes no negative prompt, seed or sound setting.")
    if not options.audio:
        text += (
            notice("It always makes videos with sound.")
            if options.audio_default
            else notice("It always makes videos without sound.")
        )
    return text


def option_refusal(
    spec: ModelSpec,
    *,
    negative_prompt: str | None = None,
    seed: int | None = None,
    audio: bool | None = None,
) -> Notice | None:
    """Why `spec` cannot take the options asked for (naming what it does take), or None."""
    options = spec.options
    unsupported: list[Notice] = []
    if negative_prompt and negative_prompt.strip() and not options.negative_prompt:
        unsupported.append(_NEGATIVE)
    if seed is not None and not options.seed:
        unsupported.append(_SEED)
    if audio is not None and not options.audio and audio != options.audio_default:
        unsupported.append(notice("sound on") if audio else notice("sound off"))
    if not unsupported:
        return None
    return notice(
        "{model} does not take {options}.", model=spec.label, options=joined(unsupported, "or")
    ) + offered(spec)
