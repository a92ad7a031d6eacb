"""Input types of the users context."""

from __future__ import annotations

import strawberry

from subgraphs.users.types import Language, UserStatus


@strawberry.input
class SignUpInput:
    first_name: str
    last_name: str
    username: str = strawberry.field(
        description="2-32 letters, digits, '_' or '.'; unique, case-insensitive."
    )
    email: str = strawberry.field(description="Unique, case-insensitive.")
    password: str = strawberry.field(
        description="8-128 characters, at least 4 different ones, not your username or e-mail."
    )


@strawberry.input
class SignInInput:
    email: str
    password: str
    totp_code: str | None = strawberry.field(
        default=None, description="The 6-digit code, when a first attempt answered TOTP_REQUIRED."
    )
    recovery_code: str | None = strawberry.field(
        default=None, description="A recovery code instead of the 6-digit code (each works once)."
    )


@strawberry.input(description="Only the fields given change.")
class UpdateProfileInput:
    first_name: str | None = None
    last_name: str | None = None
    username: str | None = None
    bio: str | None = strawberry.field(default=None, description="At most 190 characters.")
    status: UserStatus | None = None
    language: Language | None = strawberry.field(
        default=None, description="The app's language, and the language of error messages."
    )
    audio_input_device_id: str | None = strawberry.field(
        default=None, description="Preferred microphone (a browser device id); empty to forget it."
    )
    video_input_device_id: str | None = strawberry.field(
        default=None, description="Preferred camera (a browser device id); empty to forget it."
    )
