"""Input types of the users context."""

from __future__ import annotations

import strawberry


@strawberry.input
class SignUpInput:
    first_name: str
    last_name: str
    username: str = strawberry.field(
        description="2-32 letters, digits, '_' or '.'; unique, case-insensitive."
    )
    email: str
    password: str = strawberry.field(description="8-128 characters.")


@strawberry.input
class SignInInput:
    email: str
    password: str
