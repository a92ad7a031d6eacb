"""Finding what a sender typed as mentions, and writing the canonical tokens."""

from __future__ import annotations

from subgraphs.messages.mentions import (
    candidates,
    mentioned_channel_ids,
    mentioned_user_ids,
    only_here,
    rewrite,
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
