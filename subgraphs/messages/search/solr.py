"""The Solr backend: one core per channel (`s{server}_c{channel}`), created from the `beep_messages`
configset (search/solr/configsets/, kept in the repo) on the channel's first indexed message and unloaded,
index and all, when the channel (or its server) is deleted.

Queries use the standard Lucene parser over `terms` with only what documents.parse_query produced: quoted
letters-and-digits words and phrases. Every filter is an `fq` built from integers, booleans and dates
Beep formats itself, and the cores searched are exactly the channels the service allowed (one request
across them with `shards`). Writes are not part of the database transaction: they are idempotent and the
indexer's consumer retries a batch that failed. They become searchable within `commit_within_ms`
(BEEP_SEARCH_SOLR_COMMIT_WITHIN_MS, 1 s by default).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx

from subgraphs.kernel.tenancy.uow import UnitOfWork
from subgraphs.messages.search.backend import SearchHit
from subgraphs.messages.search.documents import ParsedQuery, SearchDocument, SearchRequest

CONFIGSET = "beep_messages"
_CORE = re.compile(r"^s(\d+)_c(\d+)$")


def core_name(server_id: int, channel_id: int) -> str:
    return f"s{server_id}_c{channel_id}"


def lucene_query(query: ParsedQuery) -> str:
    """`"a" "b c"` (all required: q.op=AND); words are letters and digits only, so nothing is syntax."""
    return " ".join([f'"{t}"' for t in query.terms] + [f'"{" ".join(p)}"' for p in query.phrases])


def _date(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class SolrError(RuntimeError):
    pass


class SolrSearchBackend:
    name = "solr"

    def __init__(self, base_url: str, *, timeout: float = 30.0, commit_within_ms: int = 0) -> None:
        self.base_url = base_url.rstrip("/")
        self._timeout = timeout
        # A hard commit per write opens a new searcher each time (Solr's most expensive routine step);
        # commitWithin lets Solr fold a burst of writes into one soft commit.
        self._commit = {"commitWithin": str(commit_within_ms)} if commit_within_ms else {"commit": "true"}
        self._cores: set[str] | None = None  # known to exist (refreshed on a miss)

    async def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        async with httpx.AsyncClient(timeout=self._timeout) as client:
            response = await client.request(method, f"{self.base_url}{path}", **kwargs)
        body: dict[str, Any] = response.json() if response.content else {}
        if response.status_code >= 400:
            raise SolrError(f"Solr {method} {path}: {response.status_code} {body.get('error', body)}")
        return body

    async def cores(self, *, refresh: bool = False) -> set[str]:
        if self._cores is None or refresh:
            status = await self._call(
                "GET", "/admin/cores", params={"action": "STATUS", "indexInfo": "false"}
            )
            self._cores = set(status.get("status", {}))
        return self._cores

    async def _ensure_core(self, name: str) -> None:
        if name in await self.cores() or name in await self.cores(refresh=True):
            return
        try:
            await self._call(
                "GET",
                "/admin/cores",
                params={"action": "CREATE", "name": name, "configSet": CONFIGSET, "instanceDir": name},
            )
        except SolrError:
            if name not in await self.cores(refresh=True):  # created meanwhile by another worker: fine
                raise
        (await self.cores()).add(name)

    async def _update(self, core: str, payload: object) -> None:
        await self._call("POST", f"/{core}/update", params=self._commit, json=payload)

    async def index(self, uow: UnitOfWork, server_id: int, documents: Sequence[SearchDocument]) -> None:
        by_core: dict[str, list[dict[str, object]]] = defaultdict(list)
        for d in documents:
            by_core[core_name(d.server_id, d.channel_id)].append(
                {
                    **d.fields(),
                    "id": str(d.message_id),
                    "created_at": _date(d.created_at),
                    "mentions": list(d.mentions),
                }
            )
        for core, docs in by_core.items():
            await self._ensure_core(core)
            await self._update(core, docs)

    async def remove(
        self, uow: UnitOfWork, server_id: int, channel_id: int, message_ids: Sequence[int]
    ) -> None:
        core = core_name(server_id, channel_id)
        if message_ids and core in await self.cores(refresh=True):
            await self._update(core, {"delete": [str(i) for i in message_ids]})

    async def _unload(self, core: str) -> None:
        params = {
            "action": "UNLOAD",
            "core": core,
            "deleteIndex": "true",
            "deleteDataDir": "true",
            "deleteInstanceDir": "true",
        }
        try:
            await self._call("GET", "/admin/cores", params=params)
        except SolrError:
            if core in await self.cores(refresh=True):
                raise
        (await self.cores()).discard(core)

    async def drop_channel(self, uow: UnitOfWork, server_id: int, channel_id: int) -> None:
        core = core_name(server_id, channel_id)
        if core in await self.cores(refresh=True):
            await self._unload(core)

    async def drop_server(self, uow: UnitOfWork, server_id: int) -> None:
        for core in sorted(await self.cores(refresh=True)):
            found = _CORE.match(core)
            if found and int(found.group(1)) == server_id:
                await self._unload(core)

    async def flush(self, server_id: int) -> None:
        for core in sorted(await self.cores(refresh=True)):
            found = _CORE.match(core)
            if found and int(found.group(1)) == server_id:
                await self._call("POST", f"/{core}/update", params={"commit": "true"}, json=[])

    async def search(self, uow: UnitOfWork, request: SearchRequest) -> list[SearchHit]:
        try:
            return await self._search(request)
        except SolrError:  # a core was unloaded (its channel deleted) since it was listed: list again
            return await self._search(request)

    async def _search(self, request: SearchRequest) -> list[SearchHit]:
        existing = await self.cores(refresh=True)
        cores = [name for c in request.channel_ids if (name := core_name(request.server_id, c)) in existing]
        if not cores:
            return []
        node = urlsplit(self.base_url)
        params: list[tuple[str, str]] = [
            ("q", "*:*" if request.query.empty else lucene_query(request.query)),
            ("defType", "lucene"),
            ("df", "terms"),
            ("q.op", "AND"),
            ("fl", "message_id,channel_id,score"),
            ("start", str(request.offset)),
            ("rows", str(request.limit)),
            ("sort", "message_id desc" if request.query.empty else "score desc,message_id desc"),
            ("shards", ",".join(f"{node.netloc}{node.path}/{core}" for core in cores)),
            ("fq", f"server_id:{int(request.server_id)}"),
            ("fq", "channel_id:(" + " OR ".join(str(int(c)) for c in request.channel_ids) + ")"),
        ]
        f = request.filters
        if f.author_id is not None:
            params.append(("fq", f"author_id:{int(f.author_id)}"))
        params += [("fq", f"mentions:{int(u)}") for u in f.mentions]
        for wanted, field in ((f.has_link, "has_link"), (f.has_file, "has_file"), (f.has_image, "has_image")):
            if wanted:
                params.append(("fq", f"{field}:true"))
        if f.before is not None or f.after is not None:
            low = _date(f.after) if f.after is not None else "*"
            high = _date(f.before) if f.before is not None else "*"
            params.append(("fq", f"created_at:{{{low} TO {high}}}"))
        body = await self._call("GET", f"/{cores[0]}/select", params=params)
        return [
            SearchHit(int(doc["message_id"]), int(doc["channel_id"]), float(doc.get("score", 0.0)))
            for doc in body["response"]["docs"]
        ]
