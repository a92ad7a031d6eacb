"""What search stores about a message, and how text becomes terms — the same for every backend.

A user's query is never handed to a search engine's parser: it is cut into plain terms and "quoted
phrases" here (letters and digits only), and each backend builds its own query from those. So query
syntax (FTS5's NEAR/*/^/column filters, tsquery's &|!:*, Solr's field:value, {!...} local params)
is just text, and nothing a user types can widen the channel filter the service adds.

Indexed text is normalised here too (mention tokens removed, case and accents folded), so both SQL
backends and Solr see the same terms, and highlighting (done here, over the stored content) agrees with
what matched.
"""

from __future__ import annotations

import html
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime

from subgraphs.messages.mentions import mentioned_user_ids

MAX_QUERY_LENGTH = 512  # characters of the query text
MAX_QUERY_TERMS = 32  # terms, counting each phrase's words
MAX_MENTIONS_FILTER = 10
HIGHLIGHT_START = "<mark>"
HIGHLIGHT_END = "</mark>"

_WORD = re.compile(r"[^\W_]+")
_TOKENS = re.compile(r"<(?:@|#|@&)\d{1,20}>")  # mention tokens: filtered by `mentions`, not matched as text
_LINK = re.compile(r"https?://[^\s<>]", re.IGNORECASE)
_QUERY_PART = re.compile(r'"([^"]*)"?|([^\s"]+)')


def fold(word: str) -> str:
    """Case- and accent-insensitive form of a word (what is indexed and what is looked up)."""
    decomposed = unicodedata.normalize("NFKD", word.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def terms_of(text: str) -> list[str]:
    """The searchable words of a text, folded; mention tokens are left out."""
    return [folded for word in _WORD.findall(_TOKENS.sub(" ", text)) if (folded := fold(word))]


@dataclass(frozen=True)
class SearchDocument:
    message_id: int
    channel_id: int
    server_id: int
    author_id: int
    content: str  # the stored text, mention tokens `<@id>` included
    created_at: datetime
    has_link: bool
    has_file: bool
    has_image: bool
    mentions: tuple[int, ...]

    @property
    def terms(self) -> str:
        return " ".join(terms_of(self.content))

    def fields(self) -> dict[str, object]:
        """Every stored field but `mentions` (a list), by the name both backends give it."""
        return {
            "message_id": self.message_id,
            "channel_id": self.channel_id,
            "server_id": self.server_id,
            "author_id": self.author_id,
            "content": self.content,
            "terms": self.terms,
            "created_at": self.created_at,
            "has_link": self.has_link,
            "has_file": self.has_file,
            "has_image": self.has_image,
        }


def document_of(
    *,
    message_id: int,
    channel_id: int,
    server_id: int,
    author_id: int,
    content: str,
    created_at: datetime,
    has_file: bool = False,
    has_image: bool = False,
) -> SearchDocument:
    return SearchDocument(
        message_id=message_id,
        channel_id=channel_id,
        server_id=server_id,
        author_id=author_id,
        content=content,
        created_at=created_at,
        has_link=_LINK.search(content) is not None,
        has_file=has_file,
        has_image=has_image,
        mentions=tuple(mentioned_user_ids(content)),
    )


@dataclass(frozen=True)
class ParsedQuery:
    """Plain terms and phrases (each a tuple of terms), every one required."""

    terms: tuple[str, ...] = ()
    phrases: tuple[tuple[str, ...], ...] = ()

    @property
    def empty(self) -> bool:
        return not self.terms and not self.phrases

    @property
    def all_terms(self) -> set[str]:
        return {*self.terms, *(t for p in self.phrases for t in p)}


def parse_query(text: str) -> ParsedQuery:
    """`hello "good morning" wor-ld` → terms (hello, wor, ld) and the phrase (good, morning). Everything
    that is not a letter or a digit separates words; an unclosed quote runs to the end."""
    terms: list[str] = []
    phrases: list[tuple[str, ...]] = []
    for match in _QUERY_PART.finditer(text):
        phrase, bare = match.group(1), match.group(2)
        words = terms_of(phrase if phrase is not None else bare)
        if phrase is not None and len(words) > 1:
            phrases.append(tuple(words))
        else:
            terms.extend(words)
    return ParsedQuery(tuple(dict.fromkeys(terms)), tuple(dict.fromkeys(phrases)))


def highlight(content: str, query: ParsedQuery) -> str:
    """The content, HTML-escaped, with every word of the query wrapped in <mark>…</mark>. Nothing of the
    content can become markup: only the markers are unescaped."""
    wanted = query.all_terms
    out: list[str] = []
    last = 0
    for match in _WORD.finditer(content):
        if fold(match.group()) in wanted and not _inside_token(content, match.start()):
            out.append(html.escape(content[last : match.start()]))
            out.append(HIGHLIGHT_START + html.escape(match.group()) + HIGHLIGHT_END)
            last = match.end()
    out.append(html.escape(content[last:]))
    return "".join(out)


def _inside_token(content: str, at: int) -> bool:
    return any(m.start() <= at < m.end() for m in _TOKENS.finditer(content, max(0, at - 24), at + 24))


@dataclass(frozen=True)
class SearchFilters:
    author_id: int | None = None
    mentions: tuple[int, ...] = ()  # the message mentions every one of them
    has_link: bool = False
    has_file: bool = False
    has_image: bool = False
    before: datetime | None = None  # created strictly before
    after: datetime | None = None  # created strictly after


@dataclass(frozen=True)
class SearchRequest:
    """One search, already authorised: `channel_ids` are the only channels it may look in (never empty)."""

    server_id: int
    channel_ids: tuple[int, ...]
    query: ParsedQuery
    filters: SearchFilters = field(default_factory=SearchFilters)
    offset: int = 0
    limit: int = 25
