"""Finding what a sender typed as mentions, and writing the canonical tokens."""

from __future__ import annotations

from subgraphs.messages.mentions import (
    candidates,
    keep_tokens,
    mentioned_channel_ids,
    mentioned_user_ids,
    only_here,
    rewrite,
    typed_tokens,
)


def test_candidates_skip_code_emails_and_tokens() -> None:
    users, channels, everyone = candidates(
        "hi @Ada and @bob.x, see #general, mail a@b.com `@notme` ```\n@nor #me\n``` <@3> <#4> @here"
    )
    assert users == {"ada", "bob.x"}
    assert channels == {"general"}
    assert everyone is True


def test_rewrite_replaces_only_what_resolved() -> None:
    text = "hi @Ada and @ghost, see #general and #secret `@Ada`"
    assert rewrite(text, {"ada": 1}, {"general": 9}) == "hi <@1> and @ghost, see <#9> and #secret `@Ada`"


def test_tokens_are_read_back_in_order_without_repeats() -> None:
    content = "<@2> <@1> <@2> <#7> <#7>"
    assert mentioned_user_ids(content) == [2, 1]
    assert mentioned_channel_ids(content) == [7]


def test_only_here_means_here_without_everyone_outside_code() -> None:
    assert only_here("@here standup in 5")
    assert only_here("`@everyone` is code; @here is not")
    assert not only_here("@here and @everyone")
    assert not only_here("@everyone")
    assert not only_here("`@here` in code, nothing else")
    assert not only_here("mail me at me@here.com")


def test_tokens_in_code_or_beyond_any_id_mention_nothing() -> None:
    content = "<@2> `<@3>` ```\n<#8>\n``` <#7> <@99999999999999999999> <#0>"
    assert mentioned_user_ids(content) == [2]
    assert mentioned_channel_ids(content) == [7]


def test_tokens_not_addressable_become_plain_text() -> None:
    content = "<@1> <@2> <#7> <#8> `<@2> <#8>` <@99999999999999999999>"
    assert typed_tokens(content) == ({"1", "2", "99999999999999999999"}, {"7", "8"})
    assert keep_tokens(content, {1}, {7}) == (
        "<@1> @unknown-user <#7> #unknown-channel `<@2> <#8>` @unknown-user"
    )
