"""The subgraph ASGI app factory: GraphQL over HTTP and graphql-transport-ws, health, request ids."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from cross_web import HTTPException
from sqlalchemy.exc import SQLAlchemyError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.federation import Schema
from strawberry.http import GraphQLHTTPResponse
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types import ExecutionResult

from db.engines import Database
from subgraphs.kernel import heap, i18n, metrics, pauses, wellformed
from subgraphs.kernel.auth import InvalidToken, Principal, bearer_token, connection_authorization
from subgraphs.kernel.errors import TopLevelCode
from subgraphs.kernel.logging import configure_logging, request_id_var
from subgraphs.kernel.media_types import GraphQLResponseMedia, wants_graphql_response
from subgraphs.kernel.settings import Settings
from subgraphs.kernel.tenancy.uow import UnitOfWork
from subgraphs.kernel.tracing import TraceRequests, configure_tracing
from subgraphs.kernel.web import access_log, internal, live_access, presence
from subgraphs.kernel.web.context import BeepContext
from subgraphs.kernel.web.runtime import Runtime, RuntimeHolder

log = logging.getLogger("beep.app")
Background = Callable[[Runtime], AbstractAsyncContextManager[Any]]  # runs beside the app (the worker)
UOW_STATE_KEY = "beep_uow"
PRESENCE_STATE_KEY = "beep_presence"
REQUEST_ERROR_KEY = "beep_request_error"  # process_result -> run: answer 400 (media_types.py)


@dataclass(frozen=True)
class SubgraphDefinition:
    name: str
    schema: Schema
    loaders_factory: Callable[[UnitOfWork, Principal | None], Any]
    extra_routes: Callable[[RuntimeHolder], Sequence[BaseRoute]] = field(default=lambda _holder: ())
    # Long-running work of the process (e.g. the attachment sweeper), started and cancelled by the lifespan.
    background: Callable[[Runtime], Coroutine[Any, Any, None]] | None = None
    # Takes message attachments: its multipart cap follows BEEP_ATTACHMENT_MAX_BYTES (others: 11 MiB).
    large_uploads: bool = False
    # Refuses to build the app (raising UnusableSettings, whose message is for the operator) when the
    # settings cannot work on this machine, e.g. the channels' voice host addresses are none of its own.
    check_settings: Callable[[Settings], None] | None = None
    # Subscription fields the router's fan-out tier may share between sockets, with the check that says
    # who may receive them (kernel/web/live_access.py). A field not listed is executed per subscriber.
    live_access: Mapping[str, live_access.LiveAccessCheck | live_access.StateStream] = field(
        default_factory=dict
    )


def _authorization_value(raw: Any) -> str | None:
    """The router interpolates a missing header as an empty string or 'undefined'; both mean anonymous."""
    if not isinstance(raw, str) or raw.strip() in ("", "undefined", "null"):
        return None
    return raw


async def principal_for(runtime: Runtime, raw: str | None) -> Principal | None:
    """Who an Authorization value names: a user's access token, or the router's fan-out credential."""
    if raw is not None and internal.is_fanout(raw):
        return internal.fanout_principal(runtime.settings.resolved_internal_secret, raw)
    token = bearer_token(raw)
    return await runtime.verifier.verify(token) if token is not None else None


class SubgraphGraphQL(GraphQL[BeepContext[Any], None]):
    def __init__(self, definition: SubgraphDefinition, holder: RuntimeHolder, origins: Sequence[str]) -> None:
        super().__init__(
            definition.schema,
            graphql_ide=None,  # the router serves the (offline) Laboratory; subgraphs aren't browsed
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
            connection_init_wait_timeout=timedelta(seconds=10),
            allowed_origins=origins,
            # GraphQL multipart requests (file uploads), behind UploadGuard: preflight header, size cap.
            multipart_uploads_enabled=True,
        )
        self.definition = definition
        self.holder = holder

    def parse_json(self, data: str | bytes) -> Any:
        """As Strawberry's, but nesting too deep for the decoder is a 400 too, not a RecursionError (a
        500). Lone surrogates pass here and are refused as BAD_USER_INPUT
        (error_masking.RefuseInvalidText)."""
        try:
            parsed = wellformed.loads(data, text=False)
            access_log.note_operation(parsed)
            return parsed
        except json.JSONDecodeError as error:
            raise HTTPException(400, "Unable to parse request body as JSON") from error
        except wellformed.MalformedJSON as error:
            raise _MalformedBody(str(error)) from error

    async def run(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            response = await super().run(request, *args, **kwargs)
        except _MalformedBody as error:  # a 400 the client can read like any GraphQL error
            return _refuse(400, str(error))
        except HTTPException as error:
            if not isinstance(request, Request) or not wants_graphql_response(request.headers.get("accept")):
                raise  # Strawberry's plain-text answer
            return _refuse(error.status_code, error.reason)  # a GraphQL response (media_types.py)
        if isinstance(request, Request) and request.scope.get("state", {}).pop(REQUEST_ERROR_KEY, False):
            response.status_code = 400
        return response

    async def process_result(self, request: Any, result: ExecutionResult) -> GraphQLHTTPResponse:
        """Under application/graphql-response+json a request error (no execution: nothing has a path) has
        no `data` entry and is answered 400 (`run`)."""
        found = await super().process_result(request, result)
        errors = result.errors or []
        request_error = result.data is None and bool(errors) and all(e.path is None for e in errors)
        wanted = isinstance(request, Request) and wants_graphql_response(request.headers.get("accept"))
        if request_error and wanted:
            found.pop("data", None)  # type: ignore[misc]
            request.scope.setdefault("state", {})[REQUEST_ERROR_KEY] = True
        return found

    def decode_json(self, data: str | bytes) -> object:
        """WebSocket messages: too deep is not JSON either (the connection closes with 4400)."""
        try:
            return wellformed.loads(data, text=False)
        except wellformed.MalformedJSON as error:
            raise json.JSONDecodeError(str(error), data if isinstance(data, str) else "", 0) from error

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> BeepContext[Any]:
        runtime = self.holder.runtime
        uow = UnitOfWork(runtime.database, runtime.bus)
        request.scope.setdefault("state", {})[UOW_STATE_KEY] = uow
        request.scope["state"][metrics.SUBGRAPH_STATE_KEY] = self.definition.name
        principal = None
        if isinstance(request, Request):
            # Already verified by AuthMiddleware (which answers 401 for a bad token).
            principal = request.scope.get("state", {}).get("beep_principal")
            i18n.set_language(
                i18n.negotiate(
                    principal.locale if principal else None, request.headers.get("accept-language")
                )
            )
        return BeepContext(
            runtime=runtime,
            request=request,
            response=response,
            request_uow=uow,
            loaders_factory=self.definition.loaders_factory,
            principal=principal,
        )

    async def on_ws_connect(self, context: BeepContext[Any]) -> Any:
        params = context.connection_params or {}
        raw = _authorization_value(connection_authorization(params))
        try:
            context.principal = await principal_for(context.runtime, raw)
        except InvalidToken as exc:
            log.info("websocket rejected: invalid token", extra={"reason": str(exc)})
            raise ConnectionRejectionError({"code": TopLevelCode.UNAUTHENTICATED.value}) from exc
        locale = context.principal.locale if context.principal else None
        accept = params.get("accept-language") or context.request.headers.get("accept-language")
        i18n.set_language(i18n.negotiate(locale, accept if isinstance(accept, str) else None))
        if context.principal is not None and not context.principal.fanout:
            await self._track_presence(context)
        return await super().on_ws_connect(context)

    async def _track_presence(self, context: BeepContext[Any]) -> None:
        """The connection counts toward its user's presence until it closes (see `_end_presence`)."""
        runtime = context.runtime
        assert context.principal is not None

        async def announce(user_id: int, connected: bool) -> None:
            async with runtime.database.directory_session() as session:
                await presence.announce(session, runtime.bus, user_id, connected)

        tracked = presence.PresenceSession(
            runtime.presence, context.principal.user_id, runtime.settings.presence_ttl_seconds, announce
        )
        try:
            await tracked.start()
        except Exception:  # presence is best effort: never refuse a connection over it
            log.warning("presence start failed", exc_info=True)
            return
        context.request.scope.setdefault("state", {})[PRESENCE_STATE_KEY] = tracked


async def _end_presence(scope: Scope) -> None:
    tracked = scope.get("state", {}).pop(PRESENCE_STATE_KEY, None)
    if tracked is not None:
        try:
            await tracked.end()
        except Exception:
            log.warning("presence end failed", exc_info=True)


class _MalformedBody(Exception):
    """A body that is JSON but not one Beep takes (kernel/wellformed.py): 400 BAD_USER_INPUT."""


class PresenceLifecycle:
    """Pure ASGI around the WebSocket endpoint: when the connection is over, its presence ends."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.app(scope, receive, send)
        finally:
            await _end_presence(scope)


class RequestIdMiddleware:
    """Pure ASGI (BaseHTTPMiddleware would break contextvars): request id in logs and response headers,
    a line in the access log per request, and the request's sessions closed once the response is sent."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        incoming = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if 0 < len(incoming) <= 128 and incoming.isprintable() else uuid.uuid4().hex
        token = request_id_var.set(request_id)
        entry = access_log.Entry.start(scope)
        operation_token = access_log.operation_var.set(entry)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", []).append((b"x-request-id", request_id.encode()))
                entry.status = message["status"]
            elif message["type"] == "websocket.accept":
                entry.status = 101
            elif message["type"] == "websocket.close" and entry.status is None:
                entry.status = 403  # refused before it was accepted
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            uow = scope.get("state", {}).get(UOW_STATE_KEY)
            if uow is not None:
                await uow.close()
            entry.write()
            access_log.operation_var.reset(operation_token)
            request_id_var.reset(token)


# Largest body of a multipart request: the largest picture (10 MiB) and the form's JSON parts. The
# router caps each file at the same 10 MiB first (router/README.md); per-kind limits follow in media/.
MAX_MULTIPART_BYTES = 11 * 1024 * 1024
# A browser can send multipart/form-data cross-site without a CORS preflight (an HTML form can), but not
# with a custom header: one of these must be present and non-empty. The router sends the first.
PREFLIGHT_HEADERS = (b"graphql-require-preflight", b"apollo-require-preflight", b"x-apollo-operation-name")


class UploadGuard:
    """Pure ASGI in front of GraphQL over HTTP: a multipart request without a preflight header is refused
    (403, no cross-site form posts), and one larger than MAX_MULTIPART_BYTES is cut off (413)."""

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_MULTIPART_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = dict(scope.get("headers") or [])
        content_type = headers.get(b"content-type", b"").split(b";", 1)[0].strip().lower()
        if scope["type"] != "http" or content_type != b"multipart/form-data":
            await self.app(scope, receive, send)
            return
        if not any(headers.get(name, b"").strip() for name in PREFLIGHT_HEADERS):
            await _refuse(403, "Multipart requests need a preflight header (GraphQL-Require-Preflight).")(
                scope, receive, send
            )
            return
        declared = headers.get(b"content-length", b"")
        if declared and (not declared.isdigit() or int(declared) > self.max_bytes):
            await _refuse(413, f"The request is larger than {self.max_bytes} bytes.")(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                raise _BodyTooLarge()
            return message

        try:
            await self.app(scope, counted, send)
        except _BodyTooLarge:
            await _refuse(413, f"The request is larger than {self.max_bytes} bytes.")(scope, receive, send)


class _BodyTooLarge(Exception):
    pass


def _refuse(status: int, message: str) -> Response:
    code = TopLevelCode.FORBIDDEN if status == 403 else TopLevelCode.BAD_USER_INPUT
    return JSONResponse({"errors": [{"message": message, "extensions": {"code": code.value}}]}, status)


class AuthMiddleware:
    """Verifies `Authorization: Bearer` on HTTP requests; a bad token is a 401 with UNAUTHENTICATED."""

    def __init__(self, app: ASGIApp, holder: RuntimeHolder) -> None:
        self.app = app
        self.holder = holder

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        raw = _authorization_value(headers.get(b"authorization", b"").decode("latin-1"))
        try:
            principal = await principal_for(self.holder.runtime, raw)
        except InvalidToken:
            # No principal yet, so no user setting: the language is the request's Accept-Language.
            language = i18n.negotiate(None, headers.get(b"accept-language", b"").decode("latin-1"))
            body = {
                "errors": [
                    {
                        "message": i18n.translate(
                            "Invalid or expired access token.", language, code=TopLevelCode.UNAUTHENTICATED
                        ),
                        "extensions": {"code": TopLevelCode.UNAUTHENTICATED.value},
                    }
                ]
            }
            response = JSONResponse(body, status_code=401, headers={"www-authenticate": "Bearer"})
            await response(scope, receive, send)
            return
        scope.setdefault("state", {})["beep_principal"] = principal
        await self.app(scope, receive, send)


class InternalCallerGuard:
    """Pure ASGI in front of GraphQL over HTTP and WebSocket: only Beep's own processes (the router, its
    fan-out tier, tests and tools holding the deployment's secret) may call a subgraph. A request without
    a valid `Beep-Internal` credential (kernel/web/internal.py) is refused with 403 FORBIDDEN before anything
    is parsed; a WebSocket upgrade likewise, before it is accepted. Health checks are other routes."""

    def __init__(self, app: ASGIApp, secret: str) -> None:
        self.app = app
        self.secret = secret
        internal.caller_credential(secret)  # computed once, here, not on the first request

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        presented = headers.get(internal.CALLER_HEADER.encode(), b"").decode("latin-1")
        if internal.caller_credential_valid(self.secret, presented):
            scope.setdefault("state", {})[internal.CALLER_STATE_KEY] = True
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        log.info(
            "refused a caller without the internal credential",
            extra={"peer": client[0] if client else None, "presented": bool(presented)},
        )
        refusal = _refuse(403, INTERNAL_ONLY)
        if scope["type"] == "websocket":
            # An HTTP 403 with the same body where the server can send one (uvicorn can); else closing
            # before accepting, which servers answer with a bare 403.
            if "websocket.http.response" in scope.get("extensions", {}):
                await WebSocket(scope, receive, send).send_denial_response(refusal)
            else:
                await send({"type": "websocket.close", "code": 1008})
            return
        await refusal(scope, receive, send)


INTERNAL_ONLY = (
    "This service is internal: send requests to the Beep router. (Beep's own processes present the "
    "deployment's internal credential.)"
)


async def _healthz(_request: Request) -> Response:
    return Response(json.dumps({"status": "ok"}), media_type="application/json")


def build_subgraph(definition: SubgraphDefinition, holder: RuntimeHolder, settings: Settings) -> Starlette:
    if definition.check_settings is not None:
        definition.check_settings(settings)
    graphql = SubgraphGraphQL(definition, holder, settings.origins)
    # A message's attachments travel in one request: the cap grows with their limit (+ 1 MiB of form).
    upload_cap = MAX_MULTIPART_BYTES
    if definition.large_uploads:
        upload_cap = max(upload_cap, settings.attachment_max_bytes + 1024 * 1024)
    secret = settings.resolved_internal_secret
    http = InternalCallerGuard(
        GraphQLResponseMedia(UploadGuard(AuthMiddleware(graphql, holder), upload_cap)), secret
    )
    routes: list[BaseRoute] = [
        Route("/graphql", http, methods=["GET", "POST"]),
        WebSocketRoute(
            "/graphql",
            InternalCallerGuard(metrics.CountWebSockets(PresenceLifecycle(graphql), definition.name), secret),
        ),
        Route("/healthz", _healthz),
        *live_access.routes(holder, definition.live_access),
        *definition.extra_routes(holder),
    ]
    return Starlette(routes=routes)


def configure_process(settings: Settings, component: str) -> None:
    service = f"{settings.service_name}-{component}"
    configure_logging(service, settings.log_level, settings.log_format, settings.resolved_log_token_key)
    configure_tracing(service, settings.otel_exporter, settings.otel_endpoint, settings.otel_sampling_ratio)


# Opening a pool's connections normally takes well under a second; past this a database that is slow or not
# there yet costs the start no more (requests open what they need, as without warming).
WARM_SECONDS = 10.0


async def _warm_pools(database: Database, connections: int) -> None:
    """Connections opened before the process serves (uvicorn listens once the lifespan has started)."""
    try:
        async with asyncio.timeout(WARM_SECONDS):
            opened = await database.warm(connections)
    except (TimeoutError, OSError, SQLAlchemyError) as error:
        log.warning("database pools not warmed: %s", error.__class__.__name__)
        return
    if opened:
        log.info("database pools warmed", extra={"connections": opened})


def runtime_lifespan(
    holder: RuntimeHolder,
    settings: Settings,
    definitions: Sequence[SubgraphDefinition] = (),
    background: Background | None = None,
) -> Callable[[Starlette], Any]:
    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        runtime = Runtime.create(settings)
        holder.set(runtime)
        metrics.watch_database(runtime.database)
        await _warm_pools(runtime.database, settings.db_pool_warm)
        log.info("runtime started", extra={"mode": settings.mode, "shards": settings.logical_shards})
        tasks = [asyncio.create_task(d.background(runtime)) for d in definitions if d.background]
        heap.settle()  # the start-up's heap out of the collector's way (kernel/heap.py)
        tasks.append(pauses.start())  # collections and event-loop stalls, measured (kernel/pauses.py)
        try:
            if background is None:
                yield
            else:
                async with background(runtime):
                    yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            holder.set(None)
            await runtime.close()

    return lifespan


def create_app(
    definitions: Sequence[SubgraphDefinition],
    settings: Settings,
    *,
    mounted: bool,
    background: Background | None = None,
) -> ASGIApp:
    """One subgraph at the root (full mode) or several mounted at /<name> (embedded mode). `background`
    runs beside the app for its lifetime (the embedded mode's worker: beep/worker.py)."""
    holder = RuntimeHolder()
    if mounted:
        routes: list[BaseRoute] = [
            Mount(f"/{d.name}", app=build_subgraph(d, holder, settings)) for d in definitions
        ]
        routes += [Route("/healthz", _healthz), metrics.metrics_route()]
        app = Starlette(routes=routes, lifespan=runtime_lifespan(holder, settings, definitions, background))
    else:
        (definition,) = definitions
        app = build_subgraph(definition, holder, settings)
        app.router.routes.append(metrics.metrics_route())  # one process, one registry: at the root only
        app.router.lifespan_context = runtime_lifespan(holder, settings, definitions)
    # Off, not even the middleware: nothing to pay per request.
    served: ASGIApp = TraceRequests(app) if settings.otel_exporter != "none" else app
    return RequestIdMiddleware(served)
