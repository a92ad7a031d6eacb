"""Every message a client can see has a stable key and a French text, and every text is a real message.

The messages are found by reading the source (tests/unit/message_sites.py), so a new `raise NotFound("…")`
without its catalogue entry fails here, before any client sees English where it asked for French.
"""

from __future__ import annotations

import re

import pytest

from subgraphs.kernel import i18n
from subgraphs.kernel.errors import ErrorCode, TopLevelCode
from subgraphs.kernel.texts.en import ENGLISH
from subgraphs.kernel.texts.fr import FRENCH
from tests.unit.message_sites import Site, message_sites

SITES = message_sites()
PATTERNS = {key: i18n.pattern_of(english) for key, english in ENGLISH.items()}


def _keys_for(site: Site) -> list[str]:
    return [key for key, pattern in PATTERNS.items() if pattern.match(site.sample())]


def test_the_source_is_read() -> None:
    # A broken reader would find nothing and pass everything below.
    assert len(SITES) > 250
    assert any(site.template == "No such channel." and site.code == "NOT_FOUND" for site in SITES)
    assert any(site.code == "INVALID_SDP" for site in SITES)  # voice refusals, from media/voice/


def test_every_raised_message_has_a_key_of_its_code() -> None:
    missing = [f"{site.where}: {site.template!r}" for site in SITES if not _keys_for(site)]
    assert not missing, "messages without an entry in subgraphs/kernel/texts/en.py:\n" + "\n".join(missing)
    wrong_code = [
        f"{site.where}: {site.template!r} travels as {site.code}, its keys are {_keys_for(site)}"
        for site in SITES
        if site.code is not None and all(i18n.code_of(key) != site.code for key in _keys_for(site))
    ]
    assert not wrong_code, "\n".join(wrong_code)


def test_every_message_has_its_french_and_every_french_text_a_message() -> None:
    assert sorted(set(ENGLISH) - set(FRENCH)) == [], "keys without a French text (texts/fr.py)"
    assert sorted(set(FRENCH) - set(ENGLISH)) == [], "French texts without a message (texts/en.py)"


def test_every_catalogue_entry_is_a_message_the_code_raises() -> None:
    """An entry is used when a raised message matches it, or when it spells out one case of a raised
    template (`Must be a string.` for `Must be {expected}.`) to translate that case whole."""
    unused = []
    for key, english in ENGLISH.items():
        raised = any(PATTERNS[key].match(site.sample()) for site in SITES)
        case_of = any(_matches_template(site.template, english) for site in SITES if "{" in site.template)
        if not (raised or case_of):
            unused.append(f"{key}: {english!r}")
    assert not unused, "entries no code raises (remove them, or fix the reader):\n" + "\n".join(unused)


def _matches_template(raised: str, text: str) -> bool:
    """Whether `text` is one value of the raised template `raised` (its `{expression}` parts free)."""
    # The group keeps each `{…}` in the split, at the odd places (without it every part was literal text,
    # and a template opening with `{field}` matched any entry).
    pattern = "".join(
        re.escape(part) if i % 2 == 0 else ".+?" for i, part in enumerate(re.split(r"(\{[^{}]*\})", raised))
    )
    return re.fullmatch(pattern, text, re.DOTALL) is not None


def test_a_template_has_as_cases_only_its_own_texts() -> None:
    assert _matches_template("Must be {expected}.", "Must be a string.")
    assert not _matches_template("{field} is required.", "You may not join this call.")


def test_keys_name_a_code_and_french_keeps_the_variable_parts() -> None:
    codes = {code.value for code in ErrorCode} | {code.value for code in TopLevelCode}
    for key, english in ENGLISH.items():
        assert re.fullmatch(r"[A-Z_]+(\.[a-z0-9_]+)?", key), key
        assert i18n.code_of(key) in codes, key
        assert sorted(re.findall(r"\{(\w+)\}", english)) == sorted(re.findall(r"\{(\w+)\}", FRENCH[key])), key


def test_a_code_with_several_messages_names_each_variant() -> None:
    by_code: dict[str, list[str]] = {}
    for key in ENGLISH:
        by_code.setdefault(i18n.code_of(key), []).append(key)
    for code, keys in by_code.items():
        if len(keys) > 1:
            assert all("." in key for key in keys), (code, keys)


@pytest.mark.parametrize(
    ("message", "code", "french"),
    [
        ("No such channel.", "NOT_FOUND", "Ce salon n'existe pas."),
        ("bio must be at most 190 characters.", "TOO_LONG", "bio doit contenir au plus 190 caractères."),
        ("A server has at most 250 roles.", "LIMIT_REACHED", "Un serveur a au plus 250 rôles."),
        # One English text under two codes: each code's own French.
        ("Must be 10 or fewer in length.", "TOO_LONG", "Doit compter au plus 10 éléments ou caractères."),
        ("Must be 10 or fewer in length.", "LIMIT_REACHED", "Doit compter au plus 10 éléments."),
        # A case spelled out whole beats the template it is one value of.
        ("Must be a string.", "INVALID_FORMAT", "Doit être une chaîne."),
        ("Must be a color.", "INVALID_FORMAT", "Doit être : a color."),
        ("Sign in to do this.", "UNAUTHENTICATED", "Connectez-vous pour faire cela."),
    ],
)
def test_translation_by_key(message: str, code: str, french: str) -> None:
    assert i18n.translate(message, "fr", code=code) == french
    assert i18n.translate(message, "en", code=code) == message


def test_a_message_outside_the_catalogue_stays_english() -> None:
    assert i18n.lookup("Something nobody wrote down.") is None
    assert i18n.translate("Something nobody wrote down.", "fr") == "Something nobody wrote down."


@pytest.mark.parametrize("key", sorted(k for k, english in ENGLISH.items() if "{" not in english))
def test_the_exact_text_shortcut_finds_what_the_patterns_find(key: str) -> None:
    code = i18n.code_of(key)
    by_patterns = next(k for k, pattern in i18n._patterns(code) if pattern.match(ENGLISH[key]))
    assert i18n.lookup(ENGLISH[key], code) == (by_patterns, {})


def test_english_is_returned_without_a_lookup(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_: object, **__: object) -> None:
        raise AssertionError("an English request paid for the catalogue lookup")

    monkeypatch.setattr(i18n, "lookup", refuse)
    assert i18n.translate("Anything at all.", "en") == "Anything at all."
