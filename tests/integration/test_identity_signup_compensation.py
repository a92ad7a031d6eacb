"""Sign-up against Keycloak never leaves half an account: Keycloak refusing, unreachable, or a failure
after it created the identity (injected into the real provider) — neither side keeps anything."""

from __future__ import annotations

import secrets
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from db.engines import Database
from subgraphs.kernel.errors import Conflict
from subgraphs.kernel.events.bus import InProcessBus
from subgraphs.kernel.settings import Settings
from subgraphs.kernel.tenancy.uow import UnitOfWork
from subgraphs.users import service
from subgraphs.users.identity import SignedIn
from subgraphs.users.keycloak import KeycloakProvider
from subgraphs.users.models import UserRow
from tests.harness.client import GraphQLClient
from tests.harness.keycloak import KeycloakServer
from tests.harness.ports import free_port
from tests.harness.stack import Stack
from tests.integration.flows import SIGN_UP, unique
from tests.integration.identity_helpers import create_unlinked_identity, user_error


def _input(username: str, email: str) -> dict[str, str]:
    return {
        "firstName": "A",
        "lastName": "B",
        "username": username,
        "email": email,
        "password": "pw-" + "x1y2z3w4",
    }


async def test_keycloak_refusing_the_identity_leaves_no_beep_user(
    keycloak_stack: Stack, keycloak: KeycloakServer
) -> None:
    # Keycloak already holds this address (an LDAP identity not yet in Beep): it refuses the new identity.
    name = unique("held")
    await create_unlinked_identity(keycloak, name, "pw-" + secrets.token_hex(6), ("Held", "Elsewhere"))
    username = unique("fresh")
    client = GraphQLClient(keycloak_stack.router_url)
    refused = (await client.data(SIGN_UP, {"input": _input(username, f"{name}@ldap.example.test")}))["signUp"]
    assert user_error(refused) == ("EMAIL_TAKEN", "email")
    # The Beep user written before Keycloak answered was rolled back: its username is free.
    accepted = (await client.data(SIGN_UP, {"input": _input(username, f"{username}@example.test")}))["signUp"]
    assert accepted["__typename"] == "AuthPayload", accepted


class FailsAfterCreating(KeycloakProvider):
    """The real provider, with a failure injected after Keycloak created the identity."""

    async def sign_in(self, uow: UnitOfWork, email: str, password: str, totp_code: str | None) -> SignedIn:
        raise RuntimeError("injected: the sign-in step failed")


@pytest.fixture
async def directory(tmp_path: Path) -> AsyncIterator[tuple[Settings, UnitOfWork]]:
    env = {"BEEP_DATA_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    subprocess.run(
        [sys.executable, "-m", "beep.cli", "db", "upgrade"], env=env, check=True, capture_output=True
    )
    settings = Settings(data_dir=tmp_path)
    database = Database(settings.resolved_directory_url, settings.shard_map)
    uow = UnitOfWork(database, InProcessBus())
    yield settings, uow
    await uow.close()
    await database.dispose()


async def _beep_users(uow: UnitOfWork, email: str) -> list[Any]:
    async with uow.database.directory_session() as session:
        return list(await session.scalars(select(UserRow).where(UserRow.email == email)))


async def _keycloak_users(keycloak: KeycloakServer, email: str) -> list[Any]:
    async with httpx.AsyncClient(timeout=10) as http:
        found = await http.get(
            f"{keycloak.url}/admin/realms/beep/users",
            params={"email": email, "exact": "true"},
            headers={"Authorization": f"Bearer {keycloak.admin_token()}"},
        )
    return list(found.json())


async def test_failure_after_keycloak_created_the_identity_deletes_it(
    keycloak: KeycloakServer, directory: tuple[Settings, UnitOfWork]
) -> None:
    settings, uow = directory
    settings = settings.model_copy(
        update={"keycloak_url": keycloak.url, "keycloak_client_secret": keycloak.client_secret}
    )
    username = unique("half")
    email = f"{username}@example.test"
    data = service.SignUpData("A", "B", username, email, "pw-" + secrets.token_hex(6))
    with pytest.raises(RuntimeError, match="injected"):
        await service.sign_up_compensated(uow, FailsAfterCreating(settings), data, uow.atomic)
    assert await _keycloak_users(keycloak, email) == []
    assert await _beep_users(uow, email) == []
    # Without the injected failure the same sign-up goes through, on both sides.
    result = await service.sign_up_compensated(uow, KeycloakProvider(settings), data, uow.atomic)
    assert result.user.keycloak_id and len(await _keycloak_users(keycloak, email)) == 1
    assert [u.id for u in await _beep_users(uow, email)] == [result.user.id]
    with pytest.raises(Conflict):
        await service.sign_up_compensated(uow, KeycloakProvider(settings), data, uow.atomic)


async def test_unreachable_keycloak_leaves_no_beep_user(directory: tuple[Settings, UnitOfWork]) -> None:
    settings, uow = directory
    settings = settings.model_copy(update={"keycloak_url": f"http://127.0.0.1:{free_port()}"})
    email = f"{unique('down')}@example.test"
    data = service.SignUpData("A", "B", unique("down"), email, "pw-" + secrets.token_hex(6))
    with pytest.raises(Exception) as raised:
        await service.sign_up_compensated(uow, KeycloakProvider(settings), data, uow.atomic)
    assert not isinstance(raised.value, Conflict)
    assert await _beep_users(uow, email) == []
