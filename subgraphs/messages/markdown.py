"""Message Markdown to safe HTML, for clients and bots that do not render Markdown themselves.

CommonMark (markdown-it-py) with strikethrough (`~~x~~`) and spoilers (`||x||`); raw HTML is shown as
text, never passed through; links keep only http(s) and mailto targets and open without referrer;
images become plain links (an inline image would load a remote URL in every reader's client).
Mention tokens (`<@id>`, `<#id>`, `<@&id>`) become spans labelled by the caller (the current name,
looked up when rendering, so renames show everywhere).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from html import escape

from markdown_it import MarkdownIt
from markdown_it.renderer import RendererHTML
from markdown_it.rules_core import StateCore
from markdown_it.rules_inline import StateInline
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict

SAFE_SCHEMES = ("http:", "https:", "mailto:")
MENTION = re.compile(r"<(@|#|@&)(\d{1,20})>")

# (kind, id) -> the label to show, e.g. ("user", 42) -> "@ada"; None: unknown (shown as "@unknown").
MentionLabel = Callable[[str, int], str | None]
_KINDS = {"@": "user", "#": "channel", "@&": "role"}
_FALLBACK = {"user": "@unknown-user", "channel": "#deleted-channel", "role": "@deleted-role"}


def _spoilers(state: StateCore) -> None:
    """`||hidden||` -> a spoiler span. A core rule over each paragraph's inline tokens, since `|` does not
    stop markdown-it's text rule: markers are split out of text tokens, paired in order, and an odd one
    left over stays literal text. Formatting inside a spoiler is kept."""
    for block in state.tokens:
        if block.type != "inline" or not block.children:
            continue
        pieces: list[Token] = []
        markers: list[int] = []
        for child in block.children:
            if child.type != "text" or "||" not in child.content:
                pieces.append(child)
                continue
            for i, part in enumerate(child.content.split("||")):
                if i:
                    markers.append(len(pieces))
                    pieces.append(Token("spoiler_marker", "", 0, content="||"))
                if part:
                    pieces.append(Token("text", "", 0, content=part))
        if not markers:
            continue
        for n, at in enumerate(markers):
            if n % 2 == 0 and n + 1 == len(markers):
                pieces[at] = Token("text", "", 0, content="||")
            elif n % 2 == 0:
                pieces[at] = Token("spoiler_open", "span", 1, attrs={"class": "spoiler"})
            else:
                pieces[at] = Token("spoiler_close", "span", -1)
        block.children = pieces


def _mention(state: StateInline, silent: bool) -> bool:
    match = MENTION.match(state.src, state.pos)
    if match is None:
        return False
    if not silent:
        token = state.push("mention", "span", 0)
        token.meta = {"kind": _KINDS[match.group(1)], "id": int(match.group(2))}
    state.pos = match.end()
    return True


def _safe_link(url: str) -> bool:
    lowered = url.strip().lower()
    return lowered.startswith(SAFE_SCHEMES) or lowered.startswith("#")


class _Renderer(RendererHTML):
    """markdown-it renders a token type with the method of that name."""

    def mention(self, tokens: Sequence[Token], idx: int, _options: OptionsDict, env: EnvType) -> str:
        meta = tokens[idx].meta
        label_of: MentionLabel = env["mention_label"]
        label = label_of(meta["kind"], meta["id"]) or _FALLBACK[meta["kind"]]
        return f'<span class="mention" data-{meta["kind"]}-id="{meta["id"]}">{escape(label)}</span>'

    def image(self, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType) -> str:
        token = tokens[idx]
        src = str(token.attrGet("src") or "")
        alt = self.renderInlineAsText(token.children or [], options, env) or src
        if not _safe_link(src):
            return escape(alt)
        return f'<a href="{escape(src)}" rel="noopener noreferrer nofollow">{escape(alt)}</a>'

    def link_open(self, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType) -> str:
        token = tokens[idx]
        token.attrSet("rel", "noopener noreferrer nofollow")
        return self.renderToken(tokens, idx, options, env)


class _Markdown(MarkdownIt):
    def validateLink(self, url: str) -> bool:
        return _safe_link(url)


def _build() -> MarkdownIt:
    md = _Markdown("commonmark", {"html": False, "linkify": False, "breaks": True}, renderer_cls=_Renderer)
    md.enable("strikethrough")
    md.core.ruler.push("spoiler", _spoilers)
    md.inline.ruler.before("autolink", "mention", _mention)
    return md


_MD = _build()


def to_html(text: str, mention_label: MentionLabel | None = None) -> str:
    """Sanitised HTML of a message's Markdown."""
    return _MD.render(text, {"mention_label": mention_label or (lambda _kind, _id: None)}).strip()
