"""`POST /webhooks/{id}/{token}`: Discord's Execute Webhook over plain HTTP, on the webhooks process.

Clients reach it through the router (`<router>/webhooks/{id}/{token}`, also `/api/webhooks/...` as in
Discord's URLs), which forwards it here untouched (router/gateway.config.ts, `useWebhookProxy`).

`GET` on the same URL is Discord's Get Webhook with Token (the webhook's id, name, avatar, channel).

Answers, in Discord's shapes:
- 204 (or 200 with the message JSON when `?wait=true`);
- 400 `{"code": 50035, "message": "Invalid Form Body", "errors": {<field path>: {"_errors": [...]}}}`
  for a field that breaks a rule, 50006 for an empty message, 50109 for a body that is not JSON;
  files in a multipart body are refused (400, code 40005-like `UNSUPPORTED_ATTACHMENTS`) until message
  attachments exist;
- 401 `{"code": 50027, "message": "Invalid Webhook Token"}` for a wrong, replaced or unknown
  id/token pair (the same answer whether or not the id exists);
- 404 `{"code": 10015, "message": "Unknown Webhook"}` for a deleted webhook (to its token's holder);
- 413 for a body over 256 KiB;
- 429 with `Retry-After` and `X-RateLimit-*` headers (also sent on success), body
  `{"message": "You are being rate limited.", "retry_after": s, "global": false}`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Sequence
from typing import Any

from starlette.datastructures import UploadFile
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from db.ids import parse_id
from subgraphs.kernel.errors import AuthenticationError, AuthenticationFailed, NotFoundError, ValidationError
from subgraphs.kernel.mutations import run_in_transaction
from subgraphs.kernel.ratelimit import Window
from subgraphs.kernel.runtime import RuntimeHolder
from subgraphs.kernel.uow import UnitOfWork
from subgraphs.messages.embeds import PayloadProblem
from subgraphs.webhooks import execute, service

log = logging.getLogger("beep.webhooks.http")

MAX_BODY_BYTES = 256 * 1024


def _error(status: int, code: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"code": code, "message": message, **extra}, status_code=status)


def _nested(path: Sequence[str | int], kind: str, message: str) -> dict[str, Any]:
    """Discord's error tree: {"embeds": {"0": {"title": {"_errors": [{"code": ..., "message": ...}]}}}}."""
    tree: dict[str, Any] = {"_errors": [{"code": kind, "message": message}]}
    for part in reversed(path):
        tree = {str(part): tree}
    return tree


def invalid(problem_path: Sequence[str | int], kind: str, message: str) -> JSONResponse:
    field = ".".join(str(p) for p in problem_path)
    if kind == "EMPTY_MESSAGE":
        return _error(400, 50006, "Cannot send an empty message", field=field)
    return _error(400, 50035, "Invalid Form Body", errors=_nested(problem_path, kind, message), field=field)


def _rate_headers(window: Window, bucket: str) -> dict[str, str]:
    reset_after = max(0.0, window.resets_in)
    return {
        "X-RateLimit-Limit": str(window.limit.count),
        "X-RateLimit-Remaining": str(window.remaining),
        "X-RateLimit-Reset": f"{time.time() + reset_after:.3f}",
        "X-RateLimit-Reset-After": f"{reset_after:.3f}",
        "X-RateLimit-Bucket": bucket,
    }


class BodyTooLarge(Exception):
    pass


async def _body(request: Request) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared and (not declared.isdigit() or int(declared) > MAX_BODY_BYTES):
        raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


class Unsupported(Exception):
    def __init__(self, response: Response) -> None:
        self.response = response


async def _payload(request: Request) -> Any:
    """The JSON payload of a JSON, multipart (`payload_json` or plain fields) or url-encoded body."""
    kind = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    body = await _body(request)
    if kind in ("application/json", ""):
        try:
            return json.loads(body or b"null")
        except (ValueError, UnicodeDecodeError) as error:
            raise Unsupported(_error(400, 50109, "The request body contains invalid JSON.")) from error
    if kind in ("multipart/form-data", "application/x-www-form-urlencoded"):

        async def replay() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        form_request = Request(request.scope, replay)
        async with form_request.form(max_files=10, max_fields=50) as form:
            if any(isinstance(value, UploadFile) for _key, value in form.multi_items()):
                raise Unsupported(
                    _error(
                        400,
                        40005,
                        "File uploads are not supported yet: message attachments are being built. "
                        "Send the message without files.",
                        field="files",
                    )
                )
            if "payload_json" in form:
                try:
                    return json.loads(str(form["payload_json"]))
                except ValueError as error:
                    raise Unsupported(
                        invalid(("payload_json",), "BASE_TYPE_BAD_TYPE", "Must be valid JSON.")
                    ) from error
            return {key: str(value) for key, value in form.items()}
    raise Unsupported(_error(415, 0, "Send application/json, multipart/form-data or a url-encoded form."))


def _wait(request: Request) -> bool | Response:
    raw = request.query_params.get("wait")
    if raw is None:
        return False
    if raw.lower() in ("true", "1"):
        return True
    if raw.lower() in ("false", "0"):
        return False
    return invalid(("wait",), "BOOLEAN_TYPE_COERCE", "Must be either true or false.")


def webhook_routes(holder: RuntimeHolder) -> list[BaseRoute]:
    async def execute_webhook(request: Request) -> Response:
        runtime = holder.runtime
        wait = _wait(request)
        if isinstance(wait, Response):
            return wait
        try:
            payload = execute.parse(await _payload(request))
        except BodyTooLarge:
            return _error(413, 40005, f"Request entity too large (at most {MAX_BODY_BYTES} bytes).")
        except ClientDisconnect:
            return Response(status_code=400)
        except Unsupported as unsupported:
            return unsupported.response
        except PayloadProblem as problem:
            return invalid(problem.path, problem.kind, problem.message)
        webhook_id = parse_id(request.path_params["webhook_id"])
        token = request.path_params["token"]
        uow = UnitOfWork(runtime.database, runtime.bus)
        try:
            result = await run_in_transaction(
                uow,
                lambda: execute.execute(
                    uow, runtime.rate_limiter, runtime.settings, webhook_id, token, payload, want_message=wait
                ),
            )
        except execute.RateLimited as limited:
            bucket = hashlib.sha256(f"webhook:{limited.window.limit.name}".encode()).hexdigest()[:32]
            retry = limited.window.resets_in
            return JSONResponse(
                {"message": "You are being rate limited.", "retry_after": round(retry, 3), "global": False},
                status_code=429,
                headers={
                    "Retry-After": str(limited.retry_after),
                    "X-RateLimit-Scope": "shared",
                    **_rate_headers(limited.window, bucket),
                },
            )
        finally:
            await uow.close()
        if isinstance(result, AuthenticationError):
            return _error(401, 50027, "Invalid Webhook Token")
        if isinstance(result, NotFoundError):
            return _error(404, 10015, "Unknown Webhook")
        if isinstance(result, ValidationError):
            problem_path = tuple(int(p) if p.isdigit() else p for p in (result.field or "_body").split("."))
            return invalid(problem_path, "BASE_TYPE_INVALID", result.message)
        assert isinstance(result, execute.Executed)
        bucket = hashlib.sha256(f"webhook:{result.window.limit.name}".encode()).hexdigest()[:32]
        headers = _rate_headers(result.window, bucket)
        if result.discord is not None:
            return JSONResponse(result.discord, headers=headers)
        return Response(status_code=204, headers=headers)

    async def get_webhook(request: Request) -> Response:
        """Discord's Get Webhook with Token (tools show the name and avatar before posting)."""
        runtime = holder.runtime
        uow = UnitOfWork(runtime.database, runtime.bus)
        try:
            row = await service.authenticate(
                uow, parse_id(request.path_params["webhook_id"]), request.path_params["token"]
            )
        except AuthenticationFailed:
            return _error(401, 50027, "Invalid Webhook Token")
        except service.WebhookGone:
            return _error(404, 10015, "Unknown Webhook")
        finally:
            await uow.close()
        return JSONResponse(
            {
                "type": 1,
                "id": str(row.id),
                "name": row.name,
                "avatar": None,
                "avatar_url": row.avatar_url,
                "channel_id": str(row.channel_id),
                "guild_id": str(row.server_id),
                "application_id": None,
                "token": request.path_params["token"],
            }
        )

    async def webhook_endpoint(request: Request) -> Response:
        return await (get_webhook if request.method == "GET" else execute_webhook)(request)

    return [
        Route("/webhooks/{webhook_id}/{token}", webhook_endpoint, methods=["GET", "POST"]),
    ]
