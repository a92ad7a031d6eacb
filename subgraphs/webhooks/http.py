"""`POST /webhooks/{id}/{token}`: Discord's Execute Webhook over plain HTTP, on the webhooks process.

Clients reach it through the router (`<router>/webhooks/{id}/{token}`, also `/api/webhooks/...` as in
Discord's URLs), which forwards it here untouched (router/gateway.config.ts, `useWebhookProxy`).

`GET` on the same URL is Discord's Get Webhook with Token (the webhook's id, name, avatar, channel).

Files come as Discord sends them: `multipart/form-data` with a `payload_json` part and file parts
`files[0]`..`files[9]` (or `file`, `file1`...), checked and stored by the message attachments' service
(subgraphs/messages/attachments.py `store_files`, execute.py `execute_with_files`).

Answers, in Discord's shapes:
- 204 (or 200 with the message JSON when `?wait=true`);
- 400 `{"code": 50035, "message": "Invalid Form Body", "errors": {<field path>: {"_errors": [...]}}}`
  for a field that breaks a rule, 50006 for an empty message, 50109 for a body that is not JSON (or
  nests over 64 levels, or holds a NUL or a lone surrogate: kernel/wellformed.py);
  a refused file (too many, empty, an image that is not one) is 50035 on `files` with Beep's code
  (`TOO_MANY_FILES`, `EMPTY_FILE`, `CONTENT_TYPE_MISMATCH`) and nothing is stored;
- 401 `{"code": 50027, "message": "Invalid Webhook Token"}` for a wrong, replaced or unknown
  id/token pair (the same answer whether or not the id exists);
- 404 `{"code": 10015, "message": "Unknown Webhook"}` for a deleted webhook (to its token's holder);
- 413 for a JSON body over 256 KiB, a multipart one over BEEP_ATTACHMENT_MAX_BYTES + 1 MiB, or files
  together over BEEP_ATTACHMENT_MAX_BYTES (`{"code": 40005, ..., "field": "files"}`);
- 429 with `Retry-After` and `X-RateLimit-*` headers (also sent on success), body
  `{"message": "You are being rate limited.", "retry_after": s, "global": false}`.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import Message

from db.ids import parse_id
from media.attachments import MAX_FILES
from subgraphs.kernel import wellformed
from subgraphs.kernel.errors import (
    ANY_ERROR_TYPE,
    AuthenticationError,
    AuthenticationFailed,
    ErrorCode,
    NotFoundError,
    ValidationError,
)
from subgraphs.kernel.tenancy.uow import UnitOfWork
from subgraphs.kernel.web.mutations import run_in_transaction
from subgraphs.kernel.web.ratelimit import Window
from subgraphs.kernel.web.runtime import RuntimeHolder
from subgraphs.messages.api import FILES_FIELD, PayloadProblem
from subgraphs.webhooks import execute, service

log = logging.getLogger("beep.webhooks.http")

MAX_BODY_BYTES = 256 * 1024  # a JSON or url-encoded body, and the `payload_json` part of a multipart one
# A multipart body: the message's files (BEEP_ATTACHMENT_MAX_BYTES together, 20 MiB by default) plus this
# much for `payload_json`, the other fields and the parts' headers.
MULTIPART_FORM_BYTES = 1024 * 1024
FILE_FIELD = re.compile(r"files\[\d{1,20}\]|file\d{0,2}")


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
    def __init__(self, limit: int) -> None:
        super().__init__("body too large")
        self.limit = limit


async def _body(request: Request) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared and (not declared.isdigit() or int(declared) > MAX_BODY_BYTES):
        raise BodyTooLarge(MAX_BODY_BYTES)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise BodyTooLarge(MAX_BODY_BYTES)
        chunks.append(chunk)
    return b"".join(chunks)


def _capped(request: Request, limit: int) -> Request:
    """The request, its body cut at `limit` bytes (BodyTooLarge), read as it streams: a multipart
    body's files are spooled by the form parser, never held whole in memory here."""
    declared = request.headers.get("content-length", "")
    if declared and (not declared.isdigit() or int(declared) > limit):
        raise BodyTooLarge(limit)
    seen = 0

    async def receive() -> Message:
        nonlocal seen
        message = await request.receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise BodyTooLarge(limit)
        return message

    return Request(request.scope, receive)


class Unsupported(Exception):
    def __init__(self, response: Response) -> None:
        self.response = response


def _files_refused(kind: str, message: str) -> Unsupported:
    return Unsupported(
        _error(400, 50035, "Invalid Form Body", errors=_nested(("files",), kind, message), field="files")
    )


def _too_many_files() -> Unsupported:
    return _files_refused("TOO_MANY_FILES", f"At most {MAX_FILES} files per message.")


def _json_part(raw: str | bytes) -> Any:
    try:
        return wellformed.loads(raw)
    except (ValueError, UnicodeDecodeError) as error:
        raise Unsupported(invalid(("payload_json",), "BASE_TYPE_BAD_TYPE", "Must be valid JSON.")) from error


@dataclass(frozen=True)
class Body:
    payload: Any  # the decoded JSON payload
    files: list[UploadFile]  # Discord's `files[n]` (or `file`, `file1`...) parts, in the order sent


@asynccontextmanager
async def _read(request: Request, multipart_cap: int) -> AsyncIterator[Body]:
    """The JSON payload of a JSON, multipart (`payload_json` or plain fields, plus files) or url-encoded
    body; the files are open until the block ends."""
    kind = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if kind in ("application/json", ""):
        body = await _body(request)
        try:
            decoded = wellformed.loads(body or b"null")
        except wellformed.MalformedJSON as error:  # too deep, or text no message can hold
            raise Unsupported(_error(400, 50109, str(error))) from error
        except (ValueError, UnicodeDecodeError) as error:
            raise Unsupported(_error(400, 50109, "The request body contains invalid JSON.")) from error
        yield Body(decoded, [])
        return
    if kind not in ("multipart/form-data", "application/x-www-form-urlencoded"):
        raise Unsupported(_error(415, 0, "Send application/json, multipart/form-data or a url-encoded form."))
    if kind == "application/x-www-form-urlencoded":
        body = await _body(request)

        async def replay() -> Message:
            return {"type": "http.request", "body": body, "more_body": False}

        form_request = Request(request.scope, replay)
    else:
        form_request = _capped(request, multipart_cap)
    try:
        # One file more than allowed is parsed, so too many files get the same answer as in the service.
        parsed = form_request.form(max_files=MAX_FILES + 1, max_fields=50, max_part_size=MAX_BODY_BYTES)
        form = await parsed
    except (MultiPartException, HTTPException) as error:  # Starlette wraps the first in the second
        problem = error.detail if isinstance(error, HTTPException) else error.message
        if problem.startswith("Too many files"):
            raise _too_many_files() from error
        if "maximum size" in problem:  # a field (payload_json) larger than a JSON body may be
            raise BodyTooLarge(MAX_BODY_BYTES) from error
        raise Unsupported(invalid(("_body",), "BASE_TYPE_BAD_TYPE", problem)) from error
    try:
        files: list[UploadFile] = []
        fields: dict[str, Any] = {}
        for key, value in form.multi_items():
            if key == "payload_json":
                raw = await value.read(MAX_BODY_BYTES + 1) if isinstance(value, UploadFile) else value
                if len(raw) > MAX_BODY_BYTES:
                    raise BodyTooLarge(MAX_BODY_BYTES)
                fields[key] = raw
            elif isinstance(value, UploadFile):
                if not FILE_FIELD.fullmatch(key):
                    raise _files_refused(
                        "BASE_TYPE_BAD_TYPE", f"Unexpected file part {key[:40]!r}: send files as files[0]..."
                    )
                files.append(value)
            else:
                fields[key] = value
        if len(files) > MAX_FILES:
            raise _too_many_files()
        payload = _json_part(fields["payload_json"]) if "payload_json" in fields else fields
        yield Body(payload, files)
    finally:
        await form.close()


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
        wait = _wait(request)
        if isinstance(wait, Response):
            return wait
        multipart_cap = holder.runtime.attachments.max_bytes + MULTIPART_FORM_BYTES
        try:
            async with _read(request, multipart_cap) as body:
                return await _execute(request, body, wait)
        except BodyTooLarge as too_large:
            return _error(413, 40005, f"Request entity too large (at most {too_large.limit} bytes).")
        except ClientDisconnect:
            return Response(status_code=400)
        except Unsupported as unsupported:
            return unsupported.response

    async def _execute(request: Request, body: Body, wait: bool) -> Response:
        runtime = holder.runtime
        try:
            payload = execute.parse(body.payload, with_files=bool(body.files))
        except PayloadProblem as problem:
            return invalid(problem.path, problem.kind, problem.message)
        webhook_id = parse_id(request.path_params["webhook_id"])
        token = request.path_params["token"]
        uow = UnitOfWork(runtime.database, runtime.bus)
        try:
            if body.files:
                result = await execute.execute_with_files(
                    uow,
                    runtime.rate_limiter,
                    runtime.settings,
                    runtime.attachments,
                    webhook_id,
                    token,
                    payload,
                    body.files,
                    want_message=wait,
                )
            else:
                result = await run_in_transaction(
                    uow,
                    lambda: execute.execute(
                        uow,
                        runtime.rate_limiter,
                        runtime.settings,
                        webhook_id,
                        token,
                        payload,
                        want_message=wait,
                    ),
                    ANY_ERROR_TYPE,
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
        if isinstance(result, ValidationError) and result.field == FILES_FIELD:
            if result.code == ErrorCode.FILE_TOO_LARGE:
                return _error(413, 40005, result.message, field="files")
            return _files_refused(result.code.value, result.message).response
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
