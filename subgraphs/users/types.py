"""GraphQL types of the users context. `User` is the entity every other subgraph points at.

What a User shows depends on who asks: the profile (names, username, biography) to anyone signed in;
status and connection to the user, people who share a server with them and their friends; e-mail,
settings and two-factor state to the user alone. Secrets (password hash, TOTP secrets, recovery codes,
refresh tokens) have no field at all.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Annotated

import strawberry
from strawberry.types import Info

from db.ids import parse_id
from subgraphs.kernel.errors import AuthenticationError, ConflictError, NotFoundError, ValidationError
from subgraphs.kernel.federation import VIEWER_DEPENDENT, at_most
from subgraphs.kernel.web.context import BeepContext
from subgraphs.kernel.web.pagination import PageInfo
from subgraphs.kernel.web.presence import INVISIBLE_STATUS
from subgraphs.users.loaders import UsersLoaders
from subgraphs.users.models import UserRow
from subgraphs.users.totp import RECOVERY_CODES
from subgraphs.users.wiring import services_for

UsersInfo = Info[BeepContext[UsersLoaders], None]


@strawberry.enum(description="What a user chose to show; MYSTERIOUS looks disconnected to others.")
class UserStatus(enum.Enum):
    ACTIVE = "ACTIVE"
    INACTIVE = "INACTIVE"
    SLEEPING = "SLEEPING"
    DO_NOT_DISTURB = "DO_NOT_DISTURB"
    MYSTERIOUS = "MYSTERIOUS"


@strawberry.enum
class Language(enum.Enum):
    EN = "EN"
    FR = "FR"


@strawberry.enum(description="Whether a live connection (a subscription) of the user is open.")
class ConnectionStatus(enum.Enum):
    CONNECTED = "CONNECTED"
    DISCONNECTED = "DISCONNECTED"


@strawberry.federation.type(keys=["id"], description="A person using Beep.")
class User:
    id: strawberry.ID
    # Shareable: the messages subgraph provides it with the authors of messages (`@provides`).
    username: str = strawberry.federation.field(shareable=True)
    first_name: str
    last_name: str
    bio: str = strawberry.field(description="A short biography (at most 190 characters).")
    created_at: datetime
    row: strawberry.Private[UserRow]

    def _is_me(self, info: UsersInfo) -> bool:
        return info.context.user_id == self.row.id

    @strawberry.field(description="First and last name, as shown next to messages.")
    def display_name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()

    @strawberry.field(
        directives=VIEWER_DEPENDENT, description="Your own e-mail address; null for anyone else's."
    )
    def email(self, info: UsersInfo) -> str | None:
        return self.row.email if self._is_me(info) else None

    @strawberry.field(
        directives=VIEWER_DEPENDENT,
        description="Null unless you share a server with them, are friends, or are them.",
    )
    async def status(self, info: UsersInfo) -> UserStatus | None:
        if not await info.context.loaders.presence_visible.load(self.row.id):
            return None
        return UserStatus(self.row.status)

    @strawberry.field(
        directives=VIEWER_DEPENDENT,
        description="Null unless you share a server with them, are friends, or are them.",
    )
    async def connection_status(self, info: UsersInfo) -> ConnectionStatus | None:
        if not await info.context.loaders.presence_visible.load(self.row.id):
            return None
        if self.row.status == INVISIBLE_STATUS and not self._is_me(info):
            return ConnectionStatus.DISCONNECTED
        connected = await info.context.loaders.connected(info.context.runtime.presence).load(self.row.id)
        return ConnectionStatus.CONNECTED if connected else ConnectionStatus.DISCONNECTED

    @strawberry.field(
        description="Your language setting; null when not chosen (the browser's language applies), and "
        "for anyone else."
    )
    def language(self, info: UsersInfo) -> Language | None:
        return Language(self.row.language) if self._is_me(info) and self.row.language else None

    @strawberry.field(description="Your preferred microphone; null for anyone else.")
    def audio_input_device_id(self, info: UsersInfo) -> str | None:
        return self.row.audio_input_device_id if self._is_me(info) else None

    @strawberry.field(description="Your preferred camera; null for anyone else.")
    def video_input_device_id(self, info: UsersInfo) -> str | None:
        return self.row.video_input_device_id if self._is_me(info) else None

    @strawberry.field(
        description="The profile picture: a signed URL that works for about 15 minutes (WebP, within "
        "512x512); null when none is set. Ask again for a fresh one."
    )
    def avatar_url(self, info: UsersInfo) -> str | None:
        return info.context.runtime.pictures.url(self.row.avatar_key)

    @strawberry.field(
        description="The profile banner: a signed URL that works for about 15 minutes (WebP, within "
        "1920x1080); null when none is set."
    )
    def banner_url(self, info: UsersInfo) -> str | None:
        return info.context.runtime.pictures.url(self.row.banner_key)

    @strawberry.field(description="Whether this is a bot account (created by a server's managers).")
    def bot(self) -> bool:
        return bool(self.row.bot)

    @strawberry.field(description="Whether sign-in asks you for a one-time code; null for anyone else.")
    async def two_factor_enabled(self, info: UsersInfo) -> bool | None:
        if not self._is_me(info):
            return None
        return await services_for(info.context.runtime).provider.totp_enabled(self.row)

    @classmethod
    def from_row(cls, row: UserRow) -> User:
        return cls(
            id=strawberry.ID(str(row.id)),
            username=row.username,
            first_name=row.first_name,
            last_name=row.last_name,
            bio=row.bio,
            created_at=row.created_at,
            row=row,
        )

    @classmethod
    async def resolve_reference(cls, info: UsersInfo, id: strawberry.ID) -> User | None:
        user_id = parse_id(str(id))
        row = await info.context.loaders.users.load(user_id) if user_id else None
        return cls.from_row(row) if row else None


@strawberry.type(description="Tokens for a signed-in session.")
class AuthPayload:
    access_token: str = strawberry.field(description="RS256 JWT; send as 'Authorization: Bearer <token>'.")
    refresh_token: str = strawberry.field(description="Opaque; keep it secret. Exchanged for new tokens.")
    expires_in: int = strawberry.field(description="Seconds until the access token expires.")
    user: User


@strawberry.type(
    description="A bot's access token, exchanged for its bot token. Exchange again when it expires."
)
class BotSession:
    access_token: str = strawberry.field(description="RS256 JWT; send as 'Authorization: Bearer <token>'.")
    expires_in: int = strawberry.field(description="Seconds until it expires (300 by default).")
    user: User


BotSignInResult = Annotated[BotSession | AuthenticationError, strawberry.union("BotSignInResult")]


@strawberry.type(description="Your profile after the change.")
class ProfilePayload:
    user: User


@strawberry.type(description="The identity's Beep user. Refresh the token to get one that names it.")
class FirstSignInPayload:
    user: User


@strawberry.type(description="Scan the QR code (or enter the secret) in an authenticator app, then confirm.")
class TwoFactorSetup:
    secret: str = strawberry.field(
        description="The key to type into an authenticator app when the QR code cannot be scanned: base32 in "
        "groups of four (e.g. `GEZD GNBV ...`; the same key as `otpauthUri`'s `secret`). Shown this once, "
        "to you only."
    )
    otpauth_uri: str
    qr_code_png: str = strawberry.field(description="The otpauth URI as a PNG data: URI.")


@strawberry.type(description="Two-factor authentication is on. Keep the recovery codes somewhere safe.")
class TwoFactorEnabled:
    recovery_codes: list[str] = strawberry.field(
        description="Each works once instead of a code; shown once.", directives=[at_most(RECOVERY_CODES)]
    )
    user: User


@strawberry.type
class UserEdge:
    cursor: str
    node: User


@strawberry.type(description="Users by username, alphabetically.")
class UserConnection:
    edges: list[UserEdge]
    page_info: PageInfo


SignUpResult = Annotated[AuthPayload | ValidationError | ConflictError, strawberry.union("SignUpResult")]
SignInResult = Annotated[
    AuthPayload | AuthenticationError | ValidationError, strawberry.union("SignInResult")
]
RefreshSessionResult = Annotated[AuthPayload | AuthenticationError, strawberry.union("RefreshSessionResult")]
FirstSignInResult = Annotated[
    FirstSignInPayload | AuthenticationError | ConflictError | ValidationError | NotFoundError,
    strawberry.union("FirstSignInResult"),
]
ProfileResult = Annotated[
    ProfilePayload | ValidationError | ConflictError | AuthenticationError | NotFoundError,
    strawberry.union("ProfileResult"),
]
TwoFactorSetupResult = Annotated[
    TwoFactorSetup | ConflictError | NotFoundError, strawberry.union("TwoFactorSetupResult")
]
ConfirmTwoFactorResult = Annotated[
    TwoFactorEnabled | ValidationError | AuthenticationError | NotFoundError,
    strawberry.union("ConfirmTwoFactorResult"),
]
