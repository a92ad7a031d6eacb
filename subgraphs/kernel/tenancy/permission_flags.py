"""Permission names in the schema: the `PermissionFlag` enum, one value per bit of `Permission`.

Permission values travel as Discord-compatible decimal strings (bots and Discord tooling read those);
next to each, a field lists the flags the value holds by name, so a client never needs the bit table.
Servers and channels both expose them, with this one definition (identical in both SDLs, as federation
wants of a shared enum).
"""

from __future__ import annotations

import enum
from typing import Any

import strawberry

from subgraphs.kernel.errors import ValidationFailed
from subgraphs.kernel.federation import at_most
from subgraphs.kernel.tenancy.permissions import Permission, parse_permissions


def _flag(name: str) -> Any:
    """A flag whose description is its Discord value, e.g. MANAGE_CHANNELS: "16 (1 << 4)"."""
    value = Permission[name].value
    return strawberry.enum_value(name, description=f"{value} (1 << {value.bit_length() - 1})")


@strawberry.enum(description="A permission by name. Its bit is Discord's: MANAGE_CHANNELS is 1 << 4 (16).")
class PermissionFlag(enum.Enum):
    CREATE_INVITE = _flag("CREATE_INVITE")
    KICK_MEMBERS = _flag("KICK_MEMBERS")
    BAN_MEMBERS = _flag("BAN_MEMBERS")
    ADMINISTRATOR = _flag("ADMINISTRATOR")
    MANAGE_CHANNELS = _flag("MANAGE_CHANNELS")
    MANAGE_SERVER = _flag("MANAGE_SERVER")
    ADD_REACTIONS = _flag("ADD_REACTIONS")
    VIEW_AUDIT_LOG = _flag("VIEW_AUDIT_LOG")
    STREAM = _flag("STREAM")
    VIEW_CHANNEL = _flag("VIEW_CHANNEL")
    SEND_MESSAGES = _flag("SEND_MESSAGES")
    MANAGE_MESSAGES = _flag("MANAGE_MESSAGES")
    EMBED_LINKS = _flag("EMBED_LINKS")
    ATTACH_FILES = _flag("ATTACH_FILES")
    READ_MESSAGE_HISTORY = _flag("READ_MESSAGE_HISTORY")
    MENTION_EVERYONE = _flag("MENTION_EVERYONE")
    CONNECT = _flag("CONNECT")
    SPEAK = _flag("SPEAK")
    MUTE_MEMBERS = _flag("MUTE_MEMBERS")
    MOVE_MEMBERS = _flag("MOVE_MEMBERS")
    CHANGE_NICKNAME = _flag("CHANGE_NICKNAME")
    MANAGE_NICKNAMES = _flag("MANAGE_NICKNAMES")
    MANAGE_ROLES = _flag("MANAGE_ROLES")
    MANAGE_WEBHOOKS = _flag("MANAGE_WEBHOOKS")
    MODERATE_MEMBERS = _flag("MODERATE_MEMBERS")
    PIN_MESSAGES = _flag("PIN_MESSAGES")


def permissions_from_input(
    raw: str | None, flags: list[PermissionFlag] | None, field: str, flags_field: str
) -> Permission | None:
    """A permission value given as Discord's decimal string or by name (not both); None if neither."""
    if flags is None:
        return parse_permissions(raw, field) if raw is not None else None
    if raw is not None:
        raise ValidationFailed(f"Give {field} or {flags_field}, not both.", field=flags_field)
    value = Permission(0)
    for flag in flags:
        value |= Permission[flag.name]
    return value


def flags_of(value: int) -> list[PermissionFlag]:
    """The flags a permission value holds, in bit order (bits that name no permission are left out)."""
    return [PermissionFlag[bit.name] for bit in Permission if bit.name and value & bit.value]


FLAGS_DESCRIPTION = "The same permissions by name, in bit order."


FLAG_LIST = at_most(len(PermissionFlag))  # a flags list names each permission at most once
