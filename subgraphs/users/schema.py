"""The users subgraph: identity, sessions, two-factor authentication, profiles, search."""

from __future__ import annotations

import logging
from typing import Any

import strawberry
from strawberry.file_uploads import Upload

from media.images import PictureKind
from subgraphs.kernel.auth import Principal
from subgraphs.kernel.errors import (
    PICTURE_CODES,
    TEXT_CODES,
    AuthenticationError,
    ConflictError,
    DomainError,
    ErrorCode,
    NotFoundError,
    ValidationError,
    bad_user_input,
    error_types,
)
from subgraphs.kernel.federation import page_of
from subgraphs.kernel.ids import id_argument
from subgraphs.kernel.tenancy.permissions import IsAuthenticated
from subgraphs.kernel.web import internal
from subgraphs.kernel.web.context import BeepContext
from subgraphs.kernel.web.mutations import error_codes, run_in_transaction, signed_in_mutation
from subgraphs.kernel.web.pagination import MAX_PAGE, PageInfo, decode_cursor, encode_cursor, page_size
from subgraphs.kernel.web.subgraph_schema import subgraph_schema
from subgraphs.kernel.web.uploads import commit_swap, store_upload
from subgraphs.users import bots, service
from subgraphs.users.identity import SessionReplayed, session_expired
from subgraphs.users.inputs import SignInInput, SignUpInput, UpdateProfileInput
from subgraphs.users.issuer import issuer_for
from subgraphs.users.notifications.schema import (
    NotificationMutations,
    NotificationQueries,
    NotificationSubscriptions,
)
from subgraphs.users.service import AuthResult, ProfileChanges, SignUpData
from subgraphs.users.throttle import client_address
from subgraphs.users.types import (
    AuthPayload,
    BotSession,
    BotSignInResult,
    ConfirmTwoFactorResult,
    FirstSignInPayload,
    FirstSignInResult,
    ProfilePayload,
    ProfileResult,
    RefreshSessionResult,
    SignInResult,
    SignUpResult,
    TwoFactorEnabled,
    TwoFactorSetup,
    TwoFactorSetupResult,
    User,
    UserConnection,
    UserEdge,
    UsersInfo,
)
from subgraphs.users.wiring import services_for

log = logging.getLogger("beep.users")

SEARCH_PAGE = 10


def _payload(result: AuthResult) -> AuthPayload:
    return AuthPayload(
        access_token=result.access_token,
        refresh_token=result.refresh_token,
        expires_in=result.expires_in,
        user=User.from_row(result.user),
    )


@strawberry.type
class Query(NotificationQueries):
    @strawberry.field(description="The signed-in user.", permission_classes=[IsAuthenticated])
    async def me(self, info: UsersInfo) -> User | None:
        principal = info.context.require_principal()
        row = await info.context.loaders.users.load(principal.user_id)
        return User.from_row(row) if row else None

    @strawberry.field(
        description="A user's public profile; null when there is none.", permission_classes=[IsAuthenticated]
    )
    async def user(self, info: UsersInfo, id: strawberry.ID) -> User | None:
        row = await info.context.loaders.users.load(id_argument(str(id), "id"))
        return User.from_row(row) if row else None

    @strawberry.field(
        description=f"Users whose username starts with `prefix` (case-insensitive), alphabetically; "
        f"`first` defaults to {SEARCH_PAGE}, at most 100.",
        permission_classes=[IsAuthenticated],
        directives=[page_of("first", otherwise=MAX_PAGE)],
    )
    async def search_users(
        self, info: UsersInfo, prefix: str, first: int | None = None, after: str | None = None
    ) -> UserConnection:
        size = page_size(first, default=SEARCH_PAGE)
        after_id = decode_cursor(after, "after") if after else None
        try:
            rows, more = await service.search_users(info.context.uow, prefix, size, after_id)
        except DomainError as error:
            raise bad_user_input(error.message, "prefix") from error
        edges = [UserEdge(cursor=encode_cursor(r.id), node=User.from_row(r)) for r in rows]
        return UserConnection(
            edges=edges,
            page_info=PageInfo(
                has_next_page=more,
                has_previous_page=after is not None,
                start_cursor=edges[0].cursor if edges else None,
                end_cursor=edges[-1].cursor if edges else None,
            ),
        )


def _profile(row: Any) -> ProfilePayload:
    return ProfilePayload(user=User.from_row(row))


@strawberry.type
class Mutation(NotificationMutations):
    @error_codes(
        *TEXT_CODES,
        *PICTURE_CODES,
        ErrorCode.ALREADY_EXISTS,
        ErrorCode.EMAIL_TAKEN,
        ErrorCode.INVALID_CREDENTIALS,
        ErrorCode.INVALID_INPUT,
        ErrorCode.USERNAME_TAKEN,
        ErrorCode.WEAK_PASSWORD,
    )
    @strawberry.mutation(
        description="Create an account and sign in. `avatar`, optional, is a profile picture sent as a "
        f"GraphQL multipart upload: {PictureKind.AVATAR.describe()}"
    )
    async def sign_up(
        self, info: UsersInfo, input: SignUpInput, avatar: Upload | None = None
    ) -> SignUpResult:
        ctx = info.context
        provider = services_for(ctx.runtime).provider
        pictures = ctx.runtime.pictures
        avatar_key = None
        try:
            if avatar is not None:  # checked and stored first: a refused picture creates no account
                avatar_key = await store_upload(pictures, PictureKind.AVATAR, USER_SCOPE, avatar, "avatar")
            data = SignUpData(
                input.first_name, input.last_name, input.username, input.email, input.password, avatar_key
            )
            return _payload(await service.sign_up_compensated(ctx.uow, provider, data, ctx.uow.atomic))
        except DomainError as error:
            await pictures.delete(avatar_key)
            return error_types(ValidationError, ConflictError).shape(error)
        except BaseException:
            await pictures.delete(avatar_key)
            raise

    @error_codes(
        ErrorCode.ALREADY_EXISTS,
        ErrorCode.EMAIL_TAKEN,
        ErrorCode.INVALID_CREDENTIALS,
        ErrorCode.INVALID_FORMAT,
        ErrorCode.INVALID_TOTP_CODE,
        ErrorCode.RATE_LIMITED,
        ErrorCode.SESSION_EXPIRED,
        ErrorCode.TOTP_REQUIRED,
        ErrorCode.USERNAME_TAKEN,
        ErrorCode.WEAK_PASSWORD,
    )
    @strawberry.mutation(
        description="Sign in with e-mail and password. With two-factor authentication on, the first "
        "attempt answers TOTP_REQUIRED: send the same input again with `totpCode` (or `recoveryCode`). "
        "After 5 failures for an e-mail address or 30 from a client address within 15 minutes, sign-in "
        "answers RATE_LIMITED until the window ends."
    )
    async def sign_in(self, info: UsersInfo, input: SignInInput) -> SignInResult:
        ctx = info.context
        services = services_for(ctx.runtime)
        peer = ctx.request.client.host if ctx.request.client else None
        address = client_address(internal.forwarded_for(ctx.request), peer)

        async def operation() -> AuthPayload:
            return _payload(
                await service.sign_in(
                    ctx.uow,
                    services.provider,
                    services.throttle,
                    (input.email, input.password),
                    (input.totp_code, input.recovery_code),
                    address,
                )
            )

        return await run_in_transaction(ctx.uow, operation, error_types(AuthenticationError, ValidationError))

    @error_codes(ErrorCode.INVALID_CREDENTIALS)
    @strawberry.mutation(
        description="A bot signs in: its bot token (from createBot) for a short-lived access token "
        "(no refresh token: exchange again when it expires). A wrong or revoked token: INVALID_CREDENTIALS."
    )
    async def bot_sign_in(self, info: UsersInfo, token: str) -> BotSignInResult:
        ctx = info.context
        ttl = ctx.runtime.settings.bot_access_token_ttl_seconds

        async def operation() -> BotSession:
            access_token, user = await bots.bot_sign_in(ctx.uow, issuer_for(ctx.runtime), token, ttl)
            return BotSession(access_token=access_token, expires_in=ttl, user=User.from_row(user))

        return await run_in_transaction(ctx.uow, operation, error_types(AuthenticationError))

    @error_codes(
        ErrorCode.ALREADY_EXISTS,
        ErrorCode.EMAIL_TAKEN,
        ErrorCode.INVALID_CREDENTIALS,
        ErrorCode.INVALID_FORMAT,
        ErrorCode.SESSION_EXPIRED,
        ErrorCode.USERNAME_TAKEN,
        ErrorCode.WEAK_PASSWORD,
    )
    @strawberry.mutation(
        description="New tokens for a refresh token, which then stops working. A refresh token used a "
        "second time (a copy exists) ends its whole session: the newer tokens stop working too."
    )
    async def refresh_session(self, info: UsersInfo, refresh_token: str) -> RefreshSessionResult:
        ctx = info.context
        provider = services_for(ctx.runtime).provider

        async def operation() -> AuthPayload:
            return _payload(await service.refresh(ctx.uow, provider, refresh_token))

        try:
            return await run_in_transaction(ctx.uow, operation, error_types(AuthenticationError))
        except SessionReplayed as replayed:
            # Outlives the refresh's rolled-back transaction: the session ends for every holder.
            async with ctx.uow.atomic():
                await provider.end_replayed(ctx.uow, replayed)
            log.warning("refresh token replayed: its session ended", extra={"provider": provider.name})
            return error_types(AuthenticationError).shape(session_expired())

    @error_codes()
    @strawberry.mutation(
        description="End this session: its refresh token stops working at once; access tokens already "
        "issued expire on their own (at most 15 minutes with the built-in issuer, 5 with Keycloak)."
    )
    async def sign_out(self, info: UsersInfo, refresh_token: str) -> bool:
        ctx = info.context
        provider = services_for(ctx.runtime).provider
        async with ctx.uow.atomic():
            await service.sign_out(ctx.uow, provider, refresh_token)
        return True

    @error_codes(ErrorCode.NOT_FOUND)
    @strawberry.mutation(description="End every session of yours, on every device.")
    async def sign_out_everywhere(self, info: UsersInfo) -> bool:
        ctx = info.context
        principal = ctx.require_principal()
        async with ctx.uow.atomic():
            await service.sign_out_everywhere(ctx.uow, services_for(ctx.runtime).provider, principal.user_id)
        return True

    @error_codes(
        ErrorCode.ALREADY_EXISTS,
        ErrorCode.EMAIL_TAKEN,
        ErrorCode.INVALID_CREDENTIALS,
        ErrorCode.INVALID_FORMAT,
        ErrorCode.NOT_FOUND,
        ErrorCode.USERNAME_TAKEN,
        ErrorCode.WEAK_PASSWORD,
    )
    @strawberry.mutation(
        description="After signing in through Keycloak's pages (Google, LDAP): the Beep user of that "
        "identity, created from its claims the first time. Refresh the token afterwards."
    )
    async def complete_first_sign_in(self, info: UsersInfo, access_token: str) -> FirstSignInResult:
        ctx = info.context
        provider = services_for(ctx.runtime).provider

        async def operation() -> FirstSignInPayload:
            user = await service.complete_first_sign_in(ctx.uow, provider, ctx.runtime.verifier, access_token)
            return FirstSignInPayload(user=User.from_row(user))

        return await run_in_transaction(
            ctx.uow,
            operation,
            error_types(AuthenticationError, ConflictError, ValidationError, NotFoundError),
        )

    @error_codes(ErrorCode.NOT_FOUND, ErrorCode.TOTP_ALREADY_ENABLED)
    @strawberry.mutation(description="Start turning two-factor authentication on.")
    async def begin_two_factor_setup(self, info: UsersInfo) -> TwoFactorSetupResult:
        async def operation(ctx: BeepContext[Any], principal: Principal) -> TwoFactorSetup:
            setup = await service.begin_totp_setup(
                ctx.uow, services_for(ctx.runtime).provider, principal.user_id
            )
            return TwoFactorSetup(secret=setup.secret, otpauth_uri=setup.uri, qr_code_png=setup.qr_code)

        return await signed_in_mutation(info, operation, error_types(ConflictError, NotFoundError))

    @error_codes(ErrorCode.INVALID_TOTP_CODE, ErrorCode.NOT_FOUND, ErrorCode.TOTP_NOT_ENABLED)
    @strawberry.mutation(description="Finish turning two-factor authentication on with a code from the app.")
    async def confirm_two_factor(self, info: UsersInfo, code: str) -> ConfirmTwoFactorResult:
        async def operation(ctx: BeepContext[Any], principal: Principal) -> TwoFactorEnabled:
            provider = services_for(ctx.runtime).provider
            codes = await service.confirm_totp(ctx.uow, provider, principal.user_id, code)
            user = await ctx.loaders.users.load(principal.user_id)
            return TwoFactorEnabled(recovery_codes=codes, user=User.from_row(user))

        return await signed_in_mutation(
            info, operation, error_types(ValidationError, AuthenticationError, NotFoundError)
        )

    @error_codes(ErrorCode.INVALID_TOTP_CODE, ErrorCode.NOT_FOUND, ErrorCode.TOTP_NOT_ENABLED)
    @strawberry.mutation(description="Turn two-factor authentication off (password and a current code).")
    async def disable_two_factor(self, info: UsersInfo, password: str, code: str) -> ProfileResult:
        async def operation(ctx: BeepContext[Any], principal: Principal) -> ProfilePayload:
            provider = services_for(ctx.runtime).provider
            return _profile(await service.disable_totp(ctx.uow, provider, principal.user_id, password, code))

        return await signed_in_mutation(
            info, operation, error_types(ValidationError, ConflictError, AuthenticationError, NotFoundError)
        )

    @error_codes(
        *TEXT_CODES,
        ErrorCode.ALREADY_EXISTS,
        ErrorCode.EMAIL_TAKEN,
        ErrorCode.INVALID_INPUT,
        ErrorCode.NOT_FOUND,
        ErrorCode.USERNAME_TAKEN,
        ErrorCode.WEAK_PASSWORD,
    )
    @strawberry.mutation(description="Change names, username, biography, status, language or devices.")
    async def update_profile(self, info: UsersInfo, input: UpdateProfileInput) -> ProfileResult:
        changes = ProfileChanges(
            first_name=input.first_name,
            last_name=input.last_name,
            username=input.username,
            bio=input.bio,
            status=input.status.value if input.status else None,
            language=input.language.value if input.language else None,
            audio_input_device_id=input.audio_input_device_id,
            video_input_device_id=input.video_input_device_id,
        )

        async def operation(ctx: BeepContext[Any], principal: Principal) -> ProfilePayload:
            provider = services_for(ctx.runtime).provider
            store = ctx.runtime.presence
            return _profile(
                await service.update_profile(ctx.uow, provider, store, principal.user_id, changes)
            )

        return await signed_in_mutation(
            info, operation, error_types(ValidationError, ConflictError, AuthenticationError, NotFoundError)
        )

    @error_codes(
        ErrorCode.ALREADY_EXISTS,
        ErrorCode.EMAIL_TAKEN,
        ErrorCode.INVALID_CREDENTIALS,
        ErrorCode.INVALID_FORMAT,
        ErrorCode.NOT_FOUND,
        ErrorCode.USERNAME_TAKEN,
        ErrorCode.WEAK_PASSWORD,
    )
    @strawberry.mutation(description="Change your e-mail address (your password confirms it is you).")
    async def change_email(self, info: UsersInfo, email: str, password: str) -> ProfileResult:
        async def operation(ctx: BeepContext[Any], principal: Principal) -> ProfilePayload:
            provider = services_for(ctx.runtime).provider
            return _profile(await service.change_email(ctx.uow, provider, principal.user_id, email, password))

        return await signed_in_mutation(
            info, operation, error_types(ValidationError, ConflictError, AuthenticationError, NotFoundError)
        )

    @error_codes(
        ErrorCode.EMAIL_TAKEN,
        ErrorCode.INVALID_CREDENTIALS,
        ErrorCode.NOT_FOUND,
        ErrorCode.TOO_LONG,
        ErrorCode.USERNAME_TAKEN,
        ErrorCode.WEAK_PASSWORD,
    )
    @strawberry.mutation(description="Change your password (the current one is required; 8-128 characters).")
    async def change_password(self, info: UsersInfo, old_password: str, new_password: str) -> ProfileResult:
        async def operation(ctx: BeepContext[Any], principal: Principal) -> ProfilePayload:
            provider = services_for(ctx.runtime).provider
            user = await service.change_password(
                ctx.uow, provider, principal.user_id, old_password, new_password
            )
            return _profile(user)

        return await signed_in_mutation(
            info, operation, error_types(ValidationError, ConflictError, AuthenticationError, NotFoundError)
        )

    @error_codes(*PICTURE_CODES, ErrorCode.ALREADY_EXISTS, ErrorCode.INVALID_INPUT, ErrorCode.NOT_FOUND)
    @strawberry.mutation(
        description=f"Set your profile picture (GraphQL multipart upload): {PictureKind.AVATAR.describe()}"
    )
    async def set_avatar(self, info: UsersInfo, file: Upload) -> ProfileResult:
        return await _change_picture(info, "avatar", PictureKind.AVATAR, file)

    @error_codes(ErrorCode.ALREADY_EXISTS, ErrorCode.INVALID_INPUT, ErrorCode.NOT_FOUND)
    @strawberry.mutation(description="Remove your profile picture.")
    async def remove_avatar(self, info: UsersInfo) -> ProfileResult:
        return await _change_picture(info, "avatar", PictureKind.AVATAR, None)

    @error_codes(*PICTURE_CODES, ErrorCode.ALREADY_EXISTS, ErrorCode.INVALID_INPUT, ErrorCode.NOT_FOUND)
    @strawberry.mutation(
        description=f"Set your profile banner (GraphQL multipart upload): {PictureKind.BANNER.describe()}"
    )
    async def set_banner(self, info: UsersInfo, file: Upload) -> ProfileResult:
        return await _change_picture(info, "banner", PictureKind.BANNER, file)

    @error_codes(ErrorCode.ALREADY_EXISTS, ErrorCode.INVALID_INPUT, ErrorCode.NOT_FOUND)
    @strawberry.mutation(description="Remove your profile banner.")
    async def remove_banner(self, info: UsersInfo) -> ProfileResult:
        return await _change_picture(info, "banner", PictureKind.BANNER, None)


USER_SCOPE = "users"  # media/ scope of profile pictures and banners


async def _change_picture(
    info: UsersInfo, slot: str, kind: PictureKind, file: Upload | None
) -> ProfileResult:
    """Store the new picture (if any), point the profile at it, then delete the one it replaces."""
    ctx = info.context
    principal = ctx.require_principal()
    pictures = ctx.runtime.pictures
    errors = error_types(ValidationError, ConflictError, AuthenticationError, NotFoundError)
    try:
        new_key = await store_upload(pictures, kind, USER_SCOPE, file, "file") if file is not None else None
    except DomainError as error:
        return errors.shape(error)

    async def operation(replaced: list[str | None]) -> ProfilePayload:
        user, previous = await service.set_picture(ctx.uow, principal.user_id, slot, new_key)
        replaced.append(previous)
        return _profile(user)

    return await commit_swap(ctx.uow, pictures, new_key, operation, errors)


@strawberry.type
class Subscription(NotificationSubscriptions):
    pass


schema = subgraph_schema(
    query=Query,
    mutation=Mutation,
    subscription=Subscription,
    types=[User],
)
