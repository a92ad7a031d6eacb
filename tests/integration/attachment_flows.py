"""Message attachments as a client sends and fetches them (GraphQL multipart), for the tests."""

from __future__ import annotations

import io
import json
from typing import Any
from urllib.parse import urlsplit

import httpx
from PIL import Image

from tests.harness.client import GraphQLClient
from tests.harness.stack import Stack
from tests.integration.flows import Account, create_channel, create_server, sign_up

PREFLIGHT = {"GraphQL-Require-Preflight": "true"}


ATTACHMENT = "id filename size contentType width height url thumbnailUrl"


MESSAGE = f"... on Message {{ id content attachments {{ {ATTACHMENT} }} }}"


ERROR = "... on UserError { code message field }"


SEND = f"""mutation($input: SendMessageInput!, $files: [Upload!]) {{
  sendMessage(input: $input, files: $files) {{ __typename {MESSAGE} {ERROR} }} }}"""


UPLOAD = f"""mutation($channelId: ID!, $file: Upload!) {{
  uploadAttachment(channelId: $channelId, file: $file) {{
    __typename ... on Attachment {{ {ATTACHMENT} }} {ERROR} }} }}"""


File = tuple[str, bytes, str]


def png(size: tuple[int, int]) -> bytes:
    image = Image.new("RGB", size, (200, 40, 40))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


async def multipart(
    stack: Stack, token: str, query: str, variables: dict[str, Any], files: dict[str, File]
) -> httpx.Response:
    """A GraphQL multipart request (jaydenseric's spec): `files` maps variable paths (`files.0`) to files."""
    names = {path: str(i) for i, path in enumerate(files)}
    form = {
        "operations": json.dumps({"query": query, "variables": variables}),
        "map": json.dumps({index: [f"variables.{path}"] for path, index in names.items()}),
    }
    parts = [(names[path], spec) for path, spec in files.items()]
    headers = {**PREFLIGHT, "authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(timeout=120) as http:
        return await http.post(stack.router_url, data=form, files=parts, headers=headers)


def payload(response: httpx.Response, field: str) -> dict[str, Any]:
    body = response.json()
    assert response.status_code == 200 and not body.get("errors"), (response.status_code, body)
    result: dict[str, Any] = body["data"][field]
    return result


async def send_files(
    stack: Stack, token: str, channel_id: str, files: list[File], content: str = "", **extra: Any
) -> dict[str, Any]:
    variables = {
        "input": {"channelId": channel_id, "content": content, **extra},
        "files": [None] * len(files),
    }
    mapped = {f"files.{i}": f for i, f in enumerate(files)}
    return payload(await multipart(stack, token, SEND, variables, mapped), "sendMessage")


async def upload_first(stack: Stack, token: str, channel_id: str, file: File) -> dict[str, Any]:
    response = await multipart(stack, token, UPLOAD, {"channelId": channel_id, "file": None}, {"file": file})
    return payload(response, "uploadAttachment")


async def get(url: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=30) as http:
        return await http.get(url)


def key_of(url: str) -> str:
    return urlsplit(url).path.split("/files/", 1)[1]


async def community(
    stack: Stack, prefix: str
) -> tuple[GraphQLClient, Account, dict[str, Any], dict[str, Any]]:
    client = GraphQLClient(stack.router_url)
    owner = await sign_up(client, prefix)
    server = await create_server(client.with_token(owner.token), name=f"{prefix} files")
    channel = await create_channel(client.with_token(owner.token), server["id"], "files")
    return client, owner, server, channel
