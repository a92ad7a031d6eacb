"""The embedded storage's side of a backup: SQLite files copied at one common point, and restored.

As on PostgreSQL (`beep.backup.postgres`), one point across files: a write lock (`BEGIN IMMEDIATE`) is
taken on every file first, so no writer can commit anywhere, then each file is copied with SQLite's
online backup API from a second connection (Beep's files are in WAL mode: readers go on beside the
lock), then the locks go. The copy lands in a private temporary file (0600, beside nothing else) that is
streamed into the sealed backup and removed.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from beep.backup.sealed import BackupError


def path_of(url: str) -> Path:
    prefix, sep, rest = url.partition(":///")
    if not sep or not prefix.startswith("sqlite"):
        raise BackupError("UNSUPPORTED_DATABASE", f"not a SQLite URL: {url}")
    return Path(rest.split("?", 1)[0])


@contextlib.contextmanager
def fenced_copies(paths: list[Path], *, busy_ms: int = 10_000) -> Iterator[tuple[list[Path], float]]:
    """Copies of every file as of one instant, in a private temporary directory, and the pause in ms."""
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise BackupError("NO_DATABASE", f"no database file at {', '.join(missing)}: nothing to back up")
    with tempfile.TemporaryDirectory(prefix="beep-backup-") as scratch:
        started = time.perf_counter()
        locks = [sqlite3.connect(p, isolation_level=None, timeout=busy_ms / 1000) for p in paths]
        copies: list[Path] = []
        try:
            for lock in locks:
                lock.execute("BEGIN IMMEDIATE")
            for index, path in enumerate(paths):
                copy = Path(scratch) / f"{index}-{path.name}"
                source = sqlite3.connect(path, isolation_level=None, timeout=busy_ms / 1000)
                target = sqlite3.connect(copy)
                try:
                    source.backup(target)
                finally:
                    target.close()
                    source.close()
                os.chmod(copy, 0o600)
                copies.append(copy)
        except sqlite3.OperationalError as error:
            raise BackupError("BUSY", f"could not hold every database file still: {error}") from error
        finally:
            for lock in locks:
                if lock.in_transaction:
                    lock.execute("ROLLBACK")
                lock.close()
        yield copies, (time.perf_counter() - started) * 1000


def check_empty(path: Path) -> None:
    if path.exists() and path.stat().st_size > 0:
        raise BackupError("TARGET_NOT_EMPTY", f"{path} already exists: restore wants an empty data directory")
