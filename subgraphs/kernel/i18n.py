"""Error messages in the caller's language: English (the source) and French.

Every message a client can see has a stable key: its code, then a variant name where one code has several
messages (`NOT_FOUND.channel`). The texts are catalogues by key, one module per language (kernel/texts/).
Services keep raising English messages; at the edge `translate` finds the message's key by matching the
English catalogue (a template's `{x}` parts are captured) and puts the captured parts into the caller's
language. The caller's language is the user's setting (the token's `locale` claim) or else the request's
Accept-Language; codes never change with the language.
"""

from __future__ import annotations

import logging
import re
from contextvars import ContextVar
from functools import cache

from subgraphs.kernel.texts.en import ENGLISH
from subgraphs.kernel.texts.fr import FRENCH

log = logging.getLogger("beep.i18n")

LANGUAGES = ("en", "fr")
DEFAULT_LANGUAGE = "en"
CATALOGUES: dict[str, dict[str, str]] = {"en": ENGLISH, "fr": FRENCH}
_language: ContextVar[str] = ContextVar("beep_language", default=DEFAULT_LANGUAGE)
_reported: set[str] = set()  # messages outside the catalogue, logged once each


def code_of(key: str) -> str:
    """The code part of a key: `NOT_FOUND.channel` -> `NOT_FOUND`."""
    return key.partition(".")[0]


def pattern_of(template: str) -> re.Pattern[str]:
    """A catalogue template as a pattern matching the messages it stands for, capturing each `{x}`."""
    parts = re.split(r"\{(\w+)\}", template)
    pattern = "".join(re.escape(part) if i % 2 == 0 else f"(?P<{part}>.+?)" for i, part in enumerate(parts))
    return re.compile(f"^{pattern}$", re.DOTALL)


@cache
def _patterns(code: str | None) -> tuple[tuple[str, re.Pattern[str]], ...]:
    """Keys and their English patterns, in matching order: the code's own keys first (one English text
    may travel under two codes), then exact messages before templates (cheap and unambiguous), longest
    first (most specific)."""
    entries = sorted(
        ENGLISH.items(),
        key=lambda item: (code_of(item[0]) != code, "{" in item[1], -len(item[1]), item[0]),
    )
    return tuple((key, pattern_of(english)) for key, english in entries)


@cache
def _exact(code: str | None) -> dict[str, str]:
    """The code's own template-free texts and their keys: most messages are found here, without a
    pattern (ties go as in `_patterns`: the first key by name)."""
    exact: dict[str, str] = {}
    for key, english in sorted(ENGLISH.items()):
        if code_of(key) == code and "{" not in english:
            exact.setdefault(english, key)
    return exact


def lookup(message: str, code: str | None = None) -> tuple[str, dict[str, str]] | None:
    """The key of an English `message` raised with `code`, and its variable parts; None outside the
    catalogue."""
    key = _exact(code).get(message)
    if key is not None:
        return key, {}
    for key, pattern in _patterns(code):
        found = pattern.match(message)
        if found:
            return key, found.groupdict()
    return None


def negotiate(user_locale: str | None, accept_language: str | None) -> str:
    """The user's setting wins; else the first supported language in Accept-Language (q-ordered)."""
    if user_locale and user_locale[:2].lower() in LANGUAGES:
        return user_locale[:2].lower()
    ranked: list[tuple[float, str]] = []
    for i, item in enumerate((accept_language or "")[:512].split(",")):
        tag, _, params = item.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                continue
        ranked.append((-quality + i * 1e-6, tag.strip()[:2].lower()))
    return next((lang for _q, lang in sorted(ranked) if lang in LANGUAGES), DEFAULT_LANGUAGE)


def set_language(language: str) -> None:
    _language.set(language if language in LANGUAGES else DEFAULT_LANGUAGE)


def current_language() -> str:
    return _language.get()


def translate(message: str, language: str | None = None, *, code: str | None = None) -> str:
    """`message` (English, raised with `code`) in `language` (default: the current request's). English
    is the source, so it is returned as it is, unmatched. A message outside the catalogue stays English,
    and is logged: tests/unit/test_message_catalogue.py should have found it."""
    language = language or _language.get()
    if language == DEFAULT_LANGUAGE:
        return message
    found = lookup(message, code)
    if found is None:
        if message not in _reported and len(_reported) < 1000:
            _reported.add(message)
            log.warning("message without a catalogue key", extra={"text": message, "code": code})
        return message
    key, parts = found
    translated = CATALOGUES[language].get(key)
    return message if translated is None else translated.format(**parts)
