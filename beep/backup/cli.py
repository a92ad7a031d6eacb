"""`beep backup …` arguments and exit codes: progress on stderr, one JSON object on stdout.

Exit codes: 0 done; 1 the backup is unusable or the operation failed (the JSON names a stable `code`:
WRONG_KEY, TAMPERED, TRUNCATED, NOT_A_BACKUP, TARGET_NOT_EMPTY, LAYOUT_MISMATCH, …); 2 bad arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import sys
from pathlib import Path

from beep.backup import run
from beep.backup.sealed import BackupError, parse_key
from subgraphs.kernel.settings import Settings

KEY_VARIABLE = "BEEP_BACKUP_KEY"


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    backup = commands.add_parser(
        "backup", help="encrypted backups of every database (create, verify, restore)"
    )
    verbs = backup.add_subparsers(dest="backup_command", required=True)
    keygen = verbs.add_parser("keygen", help="write a new random backup key (64 hex digits) to a file")
    keygen.add_argument("path", help="where to write it (created with mode 0600; never overwritten)")

    create = verbs.add_parser("create", help="back up every database and the media manifest at one point")
    create.add_argument("--to", required=True, help="a directory, or s3://BUCKET/PREFIX")
    create.add_argument("--keep", type=int, default=0, help="then delete all but the newest N backups there")
    for verb, text in (
        ("verify", "read a backup whole, checking every byte"),
        ("restore", "restore a backup into this deployment's empty databases"),
    ):
        parser = verbs.add_parser(verb, help=text)
        parser.add_argument("location", help="a backup file, or s3://BUCKET/KEY")
    for parser in verbs.choices.values():
        if parser is not keygen:
            parser.add_argument("--key-file", help=f"the key (default: the {KEY_VARIABLE} variable)")


def _key(args: argparse.Namespace) -> bytes:
    if args.key_file:
        try:
            return parse_key(Path(args.key_file).read_bytes())
        except OSError as error:
            raise BackupError("BAD_KEY", f"cannot read the key file: {error.strerror}") from None
    if value := os.environ.get(KEY_VARIABLE):
        return parse_key(value)
    raise BackupError("BAD_KEY", f"no key: pass --key-file or set {KEY_VARIABLE}")


def main(settings: Settings, args: argparse.Namespace) -> int:
    if args.backup_command == "keygen":
        try:
            fd = os.open(args.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            print(f"beep backup keygen: {args.path} exists; a key is never overwritten", file=sys.stderr)
            return 1
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_hex(32) + "\n")
        return 0
    try:
        key = _key(args)
        if args.backup_command == "create":
            if args.keep < 0:
                raise BackupError("BAD_ARGUMENT", "--keep is a count of backups (0: keep all)")
            result = asyncio.run(run.create(settings, args.to, key, args.keep, run.stderr_progress))
        elif args.backup_command == "verify":
            result = asyncio.run(run.verify(settings, args.location, key, run.stderr_progress))
        else:
            result = asyncio.run(run.restore(settings, args.location, key, run.stderr_progress))
    except BackupError as error:
        print(f"beep backup {args.backup_command}: {error}", file=sys.stderr)
        print(json.dumps({"ok": False, "code": error.code, "message": str(error)}))
        return 1
    print(json.dumps({"ok": True, **result}))
    return 0
