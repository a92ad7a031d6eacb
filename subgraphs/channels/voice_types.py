"""The GraphQL type of one call participant: a channel shows its call's (types.py) and the voice API
returns them (voice_schema.py), so it sits below both."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import strawberry

if TYPE_CHECKING:
    from media.voice.room import ParticipantState


@strawberry.type(description="One participant of a call.")
class VoiceState:
    user_id: strawberry.ID
    self_mute: bool = strawberry.field(description="Muted by themselves.")
    self_deaf: bool = strawberry.field(
        description="Deafened by themselves: they hear no one, and are not heard while deafened."
    )
    server_mute: bool = strawberry.field(description="Muted by a moderator (Mute Members).")
    suppressed: bool = strawberry.field(description="May not speak here (no Speak): not heard.")
    camera: bool
    screen: bool = strawberry.field(description="Sharing their screen.")
    joined_at: datetime

    @classmethod
    def of(cls, state: ParticipantState) -> VoiceState:
        return cls(
            user_id=strawberry.ID(str(state.user_id)),
            self_mute=state.self_mute,
            self_deaf=state.self_deaf,
            server_mute=state.server_mute,
            suppressed=state.suppressed,
            camera=state.camera,
            screen=state.screen,
            joined_at=datetime.fromtimestamp(state.joined_at, UTC),
        )
