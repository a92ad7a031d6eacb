"""`application/graphql-response+json` (GraphQL over HTTP): the media type a client asks for with `Accept`
to get unambiguous status codes. A subgraph answers with it when it is preferred (the router asks for it
first), and then a request error (the document does not parse or validate, variables do not coerce: no
execution started) is a 400 without a `data` entry, as the specification requires; under
`application/json` nothing changes (200, Strawberry's body)."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

GRAPHQL_RESPONSE = "application/graphql-response+json"
_CONTENT_TYPE = f"{GRAPHQL_RESPONSE}; charset=utf-8".encode()


def _quality(parameters: list[str]) -> float:
    for parameter in parameters:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "q":
            try:
                q = float(value.strip())
            except ValueError:
                return 0.0
            return q if 0.0 <= q <= 1.0 else 0.0
    return 1.0


def wants_graphql_response(accept: str | None) -> bool:
    """Whether `accept` (an Accept header) prefers application/graphql-response+json to application/json:
    listed with a quality above 0 and at least that of application/json (or of `*/*`, `application/*`
    when application/json itself is not listed). Malformed parts are ignored."""
    if not accept:
        return False
    ranges: dict[str, float] = {}
    for part in accept.split(",")[:32]:  # a few are plenty; a hostile header is not walked forever
        media, *parameters = part.split(";")
        media = media.strip().lower()
        if media:
            ranges[media] = max(ranges.get(media, 0.0), _quality(parameters))
    wanted = ranges.get(GRAPHQL_RESPONSE, 0.0)
    if wanted <= 0.0:
        return False
    json = ranges.get("application/json")
    if json is None:
        json = max(ranges.get("application/*", 0.0), ranges.get("*/*", 0.0))
    return wanted >= json


def accept_of(scope: Scope) -> str | None:
    for name, value in scope.get("headers") or ():
        if name == b"accept":
            return bytes(value).decode("latin-1")
    return None


class GraphQLResponseMedia:
    """Pure ASGI: for a client that prefers application/graphql-response+json, every JSON answer of the
    GraphQL endpoint (results, and the refusals of the middlewares in front of it) is labelled so."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not wants_graphql_response(accept_of(scope)):
            await self.app(scope, receive, send)
            return

        async def relabelled(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (name, _CONTENT_TYPE if name.lower() == b"content-type" and _is_json(value) else value)
                    for name, value in message.get("headers") or ()
                ]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, relabelled)


def _is_json(content_type: bytes) -> bool:
    return content_type.split(b";")[0].strip().lower() == b"application/json"
