"""GraphQL of message search: `searchMessages` (mixed into the messages subgraph's Query)."""

from __future__ import annotations

import enum
from datetime import datetime

import strawberry

from subgraphs.kernel.federation import page_of
from subgraphs.kernel.ids import id_argument
from subgraphs.kernel.web.pagination import PageInfo, page_info
from subgraphs.messages.search import service
from subgraphs.messages.search.backends import backend_for
from subgraphs.messages.search.documents import (
    HIGHLIGHT_END,
    HIGHLIGHT_START,
    MAX_MENTIONS_FILTER,
    MAX_QUERY_LENGTH,
    highlight,
)
from subgraphs.messages.types import Message, MessagesInfo


@strawberry.enum(description="What a message must contain to match.")
class SearchHas(enum.Enum):
    LINK = "LINK"
    FILE = "FILE"
    IMAGE = "IMAGE"


@strawberry.type(description="A message that matched, with its text highlighted.")
class MessageSearchEdge:
    cursor: str
    node: Message
    highlight: str = strawberry.field(
        description=f"The message's text, HTML-escaped, with each matched word wrapped in {HIGHLIGHT_START}"
        f"…{HIGHLIGHT_END}; nothing else in it is markup."
    )


@strawberry.type(description="One page of search results, best match first (newest first without words).")
class MessageSearchConnection:
    edges: list[MessageSearchEdge]
    page_info: PageInfo


@strawberry.type
class SearchQuery:
    @strawberry.field(
        description="Search a server's messages (or one channel's) among the channels you can view and "
        f'read the history of; null unless you are a member. `query`: words and "quoted phrases" (at '
        f"most {MAX_QUERY_LENGTH} characters), every one required, case and accents ignored; nothing in it "
        "is query syntax. Filters: `author`, `mentions` (every one of them, at most "
        f"{MAX_MENTIONS_FILTER}), `has`, `before`/`after` (creation time). Page with `first` (1-50) and "
        "`afterCursor`; the first 1,000 results can be reached.",
        directives=[page_of("first")],
    )
    async def search_messages(
        self,
        info: MessagesInfo,
        server_id: strawberry.ID,
        channel_id: strawberry.ID | None = None,
        query: str = "",
        author: strawberry.ID | None = None,
        mentions: list[strawberry.ID] | None = None,
        has: list[SearchHas] | None = None,
        before: datetime | None = None,
        after: datetime | None = None,
        first: int | None = service.DEFAULT_PAGE,
        after_cursor: str | None = None,
    ) -> MessageSearchConnection | None:
        ctx = info.context
        wanted = set(has or [])
        data = service.SearchInput(
            server_id=id_argument(str(server_id), "serverId"),
            channel_id=id_argument(str(channel_id), "channelId") if channel_id is not None else None,
            query=query,
            author_id=id_argument(str(author), "author") if author is not None else None,
            mentions=tuple(id_argument(str(m), "mentions") for m in mentions or []),
            has_link=SearchHas.LINK in wanted,
            has_file=SearchHas.FILE in wanted,
            has_image=SearchHas.IMAGE in wanted,
            before=before,
            after=after,
            first=first,
            cursor=after_cursor,
        )
        page = await service.search_messages(ctx.uow, backend_for(ctx.runtime.settings), ctx.user_id, data)
        if page is None:
            return None
        rows = await ctx.loaders.visible_messages.load_many([h.message_id for h in page.hits])
        edges = [
            MessageSearchEdge(
                cursor=service.encode_offset(page.offset + n + 1),
                node=Message.from_row(row),
                highlight=highlight(row.content, page.query),
            )
            for n, row in enumerate(rows)
            if row is not None
        ]
        return MessageSearchConnection(
            edges=edges,
            page_info=page_info(
                [e.cursor for e in edges], has_next_page=page.has_next_page, has_previous_page=page.offset > 0
            ),
        )
