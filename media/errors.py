"""Typed errors of the file storage service, each with a stable code callers can branch on.

The media package stands alone (no GraphQL): a subgraph service that stores a file catches these and maps
them to its own `DomainError` codes (e.g. FILE_TOO_LARGE becomes a `UserError` on the upload mutation).
"""

from __future__ import annotations

import enum


class MediaErrorCode(enum.StrEnum):
    FILE_TOO_LARGE = "FILE_TOO_LARGE"
    INVALID_KEY = "INVALID_KEY"
    INVALID_CONTENT_TYPE = "INVALID_CONTENT_TYPE"
    NOT_FOUND = "NOT_FOUND"
    SIGNATURE_INVALID = "SIGNATURE_INVALID"
    SIGNATURE_EXPIRED = "SIGNATURE_EXPIRED"
    UNSUPPORTED_IMAGE_TYPE = "UNSUPPORTED_IMAGE_TYPE"
    IMAGE_UNDECODABLE = "IMAGE_UNDECODABLE"
    IMAGE_DIMENSIONS_TOO_LARGE = "IMAGE_DIMENSIONS_TOO_LARGE"
    EMPTY_FILE = "EMPTY_FILE"
    CONTENT_TYPE_MISMATCH = "CONTENT_TYPE_MISMATCH"


class MediaError(Exception):
    code: MediaErrorCode

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class FileTooLarge(MediaError):
    code = MediaErrorCode.FILE_TOO_LARGE

    def __init__(self, limit: int) -> None:
        super().__init__(f"file exceeds the {limit}-byte limit")
        self.limit = limit


class InvalidKey(MediaError):
    """A key or scope that does not match the storage grammar (traversal attempts end here)."""

    code = MediaErrorCode.INVALID_KEY


class InvalidContentType(MediaError):
    code = MediaErrorCode.INVALID_CONTENT_TYPE


class ObjectNotFound(MediaError):
    code = MediaErrorCode.NOT_FOUND

    def __init__(self, key: str) -> None:
        super().__init__("no stored object with this key")
        self.key = key


class SignatureInvalid(MediaError):
    """Malformed, tampered with, or signed with a key this server does not hold."""

    code = MediaErrorCode.SIGNATURE_INVALID


class SignatureExpired(MediaError):
    """Authentic, but past its expiry: the client should ask for a fresh URL."""

    code = MediaErrorCode.SIGNATURE_EXPIRED
