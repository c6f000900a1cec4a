"""Per-model options as a member asks for them: negative prompt, seed, sound on or off.

A model takes only what its catalog entry says (`ModelOptions`); a request that uses anything
else is refused before anything is sent, and the refusal names what the model does take, so the
member can fix the request instead of guessing.
"""

from __future__ import annotations

from bot.catalog import ModelSpec


def offered(spec: ModelSpec) -> str:
    """What of the options `spec` takes, as a sentence."""
    options = spec.options
    taken = [
        name
        for name, ok in (
            ("a negative prompt", options.negative_prompt),
            ("a seed", options.seed),
            ("sound on or off", options.audio),
        )
        if ok
    ]
    if taken:
        text = f"It takes {_join(taken)}."
    else:
        text = "It takes no negative prompt, seed or sound setting."
    if not options.audio:
        text += f" It always makes videos {'with' if options.audio_default else 'without'} sound."
    return text


def option_refusal(
    spec: ModelSpec,
    *,
    negative_prompt: str | None = None,
    seed: int | None = None,
    audio: bool | None = None,
) -> str | None:
    """Why `spec` cannot take the options asked for (naming what it does take), or None."""
    options = spec.options
    unsupported: list[str] = []
    if negative_prompt and negative_prompt.strip() and not options.negative_prompt:
        unsupported.append("a negative prompt")
    if seed is not None and not options.seed:
        unsupported.append("a seed")
    if audio is not None and not options.audio and audio != options.audio_default:
        unsupported.append("sound on" if audio else "sound off")
    if not unsupported:
        return None
    return f"{spec.label} does not take {_join(unsupported, 'or')}. {offered(spec)}"


def _join(items: list[str], word: str = "and") -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} {word} {items[-1]}"
