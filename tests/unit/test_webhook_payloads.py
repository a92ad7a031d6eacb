"""Discord execute-webhook payloads: every limit at its edge, the field each problem names."""

from __future__ import annotations

import json
from typing import Any

import pytest

from subgraphs.messages import embeds
from subgraphs.messages.embeds import PayloadProblem
from subgraphs.messages.webhook_posts import allowed_mentions
from subgraphs.webhooks.execute import parse
from subgraphs.webhooks.http import invalid


def problem(raw: Any) -> PayloadProblem:
    with pytest.raises(PayloadProblem) as caught:
        parse(raw)
    return caught.value


@pytest.mark.parametrize(
    ("key", "limit"),
    [("title", embeds.MAX_TITLE), ("description", embeds.MAX_DESCRIPTION)],
)
def test_embed_text_limits_are_inclusive(key: str, limit: int) -> None:
    assert parse({"embeds": [{key: "x" * limit}]}).embeds[0][key] == "x" * limit
    assert problem({"embeds": [{key: "x" * (limit + 1)}]}).path == ("embeds", 0, key)


def test_field_footer_author_limits() -> None:
    ok = {
        "fields": [{"name": "n" * 256, "value": "v" * 1024}] * 1,
        "footer": {"text": "f" * 2048},
        "author": {"name": "a" * 256},
    }
    parse({"embeds": [ok]})
    assert problem({"embeds": [{**ok, "footer": {"text": "f" * 2049}}]}).path == (
        "embeds",
        0,
        "footer",
        "text",
    )
    assert problem({"embeds": [{**ok, "author": {"name": "a" * 257}}]}).path == (
        "embeds",
        0,
        "author",
        "name",
    )
    assert problem({"embeds": [{"fields": [{"name": "n", "value": "v" * 1025}]}]}).path == (
        "embeds",
        0,
        "fields",
        0,
        "value",
    )
    assert len(parse({"embeds": [{"fields": [{"name": "n", "value": "v"}] * 25}]}).embeds[0]["fields"]) == 25
    assert problem({"embeds": [{"fields": [{"name": "n", "value": "v"}] * 26}]}).path == (
        "embeds",
        0,
        "fields",
    )


def test_ten_embeds_and_six_thousand_characters() -> None:
    assert len(parse({"embeds": [{"title": "t"}] * 10}).embeds) == 10
    assert problem({"embeds": [{"title": "t"}] * 11}).path == ("embeds",)
    # 6000 counted characters in all are fine, one more is not (title + description + footer + author)
    at_limit = [{"description": "d" * 4096}, {"title": "t" * 256, "description": "d" * 1648}]
    parse({"embeds": at_limit})
    over = problem({"embeds": [*at_limit, {"footer": {"text": "f"}}]})
    assert (over.path, over.kind) == (("embeds",), "MAX_EMBED_SIZE_EXCEEDED")


def test_content_username_avatar_and_empty() -> None:
    assert parse({"content": "x" * 2000}).content == "x" * 2000
    assert problem({"content": "x" * 2001}).path == ("content",)
    assert problem({"content": " "}).kind == "EMPTY_MESSAGE"
    assert problem({}).kind == "EMPTY_MESSAGE"
    assert problem([]).path == ("_body",)
    assert problem({"content": "x", "username": "Discord Bot"}).path == ("username",)
    assert problem({"content": "x", "avatar_url": "data:image/png;base64,AAAA"}).path == ("avatar_url",)
    assert (
        parse({"content": "x", "avatar_url": "https://example.com/a.png"}).avatar_url
        == "https://example.com/a.png"
    )
    # the legacy single `embed` still works; unknown keys (tts, flags, components) are ignored
    assert parse({"embed": {"title": "t"}, "tts": True, "flags": 4}).embeds[0]["title"] == "t"


def test_embed_values_are_checked_and_normalised() -> None:
    embed = parse({"embeds": [{"title": "t", "color": 0, "timestamp": "2026-11-28T06:00:00Z"}]}).embeds[0]
    assert embed == {"type": "rich", "title": "t", "color": 0, "timestamp": "2026-11-28T06:00:00+00:00"}
    assert problem({"embeds": [{"title": "t", "color": True}]}).path == ("embeds", 0, "color")
    assert problem({"embeds": [{"title": "t", "color": -1}]}).kind == "NUMBER_TYPE_MAX"
    assert problem({"embeds": [{"image": {}}]}).path == ("embeds", 0, "image", "url")
    assert problem({"embeds": [{}]}).path == ("embeds", 0)
    assert problem({"embeds": [{"title": "a\x00b"}]}).path == ("embeds", 0, "title")


def test_allowed_mentions() -> None:
    assert allowed_mentions(None).pings_user(1)
    none = allowed_mentions({"parse": []})
    assert not none.pings_user(1) and "everyone" not in none.parse
    some = allowed_mentions({"users": ["7", 8]})
    assert some.pings_user(7) and some.pings_user(8) and not some.pings_user(9)
    with pytest.raises(PayloadProblem) as both:
        allowed_mentions({"parse": ["users"], "users": ["1"]})
    assert both.value.path == ("allowed_mentions", "users")
    with pytest.raises(PayloadProblem) as many:
        allowed_mentions({"users": [str(i) for i in range(1, 102)]})
    assert many.value.path == ("allowed_mentions", "users")
    with pytest.raises(PayloadProblem):
        allowed_mentions({"users": ["abc"]})


def test_http_errors_nest_like_discord() -> None:
    response = invalid(
        ("embeds", 0, "fields", 3, "value"), "BASE_TYPE_MAX_LENGTH", "Must be 1024 or fewer in length."
    )
    body = json.loads(bytes(response.body))
    assert (
        response.status_code == 400 and body["code"] == 50035 and body["field"] == "embeds.0.fields.3.value"
    )
    assert (
        body["errors"]["embeds"]["0"]["fields"]["3"]["value"]["_errors"][0]["code"] == "BASE_TYPE_MAX_LENGTH"
    )


def test_flags_suppress_embeds_only() -> None:
    assert parse({"content": "a", "flags": 4}).suppress_embeds
    assert parse({"content": "a", "flags": "4"}).suppress_embeds  # a url-encoded form's field
    assert not parse({"content": "a", "flags": 1 << 12}).suppress_embeds  # SUPPRESS_NOTIFICATIONS: ignored
    assert not parse({"content": "a"}).suppress_embeds
    for bad in (-1, "x", True, 1.5):
        with pytest.raises(PayloadProblem) as problem:
            parse({"content": "a", "flags": bad})
        assert problem.value.path == ("flags",)


def test_files_make_an_empty_payload_a_message() -> None:
    assert parse({}, with_files=True).content == ""
    with pytest.raises(PayloadProblem):
        parse({})
