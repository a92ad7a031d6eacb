"""Pictures uploaded through GraphQL (the multipart request spec): read, stored, swapped transactionally.

A new picture is stored before the transaction that points a row at it, and the old one is deleted only
after that transaction commits; if the transaction fails, the new one is deleted instead. So a row never
names a missing object, and what can leak on a crash is an unreferenced file, never a broken profile.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from starlette.datastructures import UploadFile

from media.errors import MediaError
from media.images import MiB, PictureKind
from media.pictures import Pictures
from subgraphs.kernel.errors import ErrorCode, ErrorTypes, UserError, ValidationFailed
from subgraphs.kernel.tenancy.uow import UnitOfWork
from subgraphs.kernel.web.mutations import run_in_transaction

T = TypeVar("T")
E = TypeVar("E", bound=UserError)


async def store_upload(pictures: Pictures, kind: PictureKind, scope: str, upload: Any, field: str) -> str:
    """The stored key of an uploaded picture; `ValidationFailed` with the media code when refused."""
    if not isinstance(upload, UploadFile):
        raise ValidationFailed("Send the file as a GraphQL multipart upload.", field=field)
    data = await upload.read(kind.max_bytes + 1)
    if len(data) > kind.max_bytes:
        raise ValidationFailed(
            f"The file is larger than {kind.max_bytes // MiB} MiB.",
            code=ErrorCode.FILE_TOO_LARGE,
            field=field,
        )
    try:
        return await pictures.store(kind, scope, data)
    except MediaError as error:
        code = ErrorCode.__members__.get(error.code.value, ErrorCode.INVALID_INPUT)
        raise ValidationFailed(error.message, code=code, field=field) from None


async def commit_swap(
    uow: UnitOfWork,
    pictures: Pictures,
    new_key: str | None,
    operation: Callable[[list[str | None]], Awaitable[T]],
    errors: ErrorTypes[E],
) -> T | E:
    """Run `operation` (which appends the keys it stops referencing to its list) in one transaction; then
    delete those keys, or `new_key` if the transaction did not commit."""
    replaced: list[str | None] = []
    try:
        result = await run_in_transaction(uow, lambda: operation(replaced), errors)
    except BaseException:
        await pictures.delete(new_key)
        raise
    if isinstance(result, UserError):
        await pictures.delete(new_key)
    else:
        await pictures.delete(*(key for key in replaced if key != new_key))
    return result
