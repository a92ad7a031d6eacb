"""`beep logs`: read back personal data the logs hold as tokens (kernel/logtokens.py; docs/logging.md).

- `beep logs reveal TOKEN...`: each token's value, one a line; with no token (or `-`), a filter that
  replaces every token in the lines it reads (`kubectl logs deploy/beep-users | beep logs reveal`).
- `beep logs tokenize VALUE...`: the token a value is logged as, to search the logs for a person.
- `beep logs new-key`: a new BEEP_LOG_TOKEN_KEY.
The key is BEEP_LOG_TOKEN_KEY, else the one `beep dev` keeps in <data_dir>/log-token-key.
"""

from __future__ import annotations

import argparse
import sys
from typing import TextIO

from subgraphs.kernel.logtokens import LogTokenError, LogTokenizer, generate_key
from subgraphs.kernel.settings import Settings


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    logs = commands.add_parser("logs", help="personal data in logs: reveal tokens, make tokens and keys")
    sub = logs.add_subparsers(dest="logs_command", required=True)
    reveal = sub.add_parser("reveal", help="the values of tokens (none or -: replace tokens in stdin)")
    reveal.add_argument("tokens", nargs="*", metavar="TOKEN")
    tokenize = sub.add_parser("tokenize", help="the token each value is logged as")
    tokenize.add_argument("values", nargs="+", metavar="VALUE")
    sub.add_parser("new-key", help="print a new BEEP_LOG_TOKEN_KEY")


def run(settings: Settings, args: argparse.Namespace, stdin: TextIO = sys.stdin) -> int:
    if args.logs_command == "new-key":
        print(generate_key())
        return 0
    key = settings.log_token_key
    if not key:
        kept = settings.data_dir / "log-token-key"
        if not kept.exists():
            print("beep: no key: set BEEP_LOG_TOKEN_KEY (or BEEP_DATA_DIR to `beep dev`'s)", file=sys.stderr)
            return 2
        key = kept.read_text().strip()
    try:
        tokenizer = LogTokenizer(key)
    except LogTokenError as error:
        print(f"beep: {error.code}: {error}", file=sys.stderr)
        return 2
    if args.logs_command == "tokenize":
        for value in args.values:
            print(tokenizer.token(value))
        return 0
    if not args.tokens or args.tokens == ["-"]:
        for line in stdin:
            sys.stdout.write(tokenizer.reveal_text(line))
        return 0
    failed = 0
    for token in args.tokens:
        try:
            print(tokenizer.reveal(token))
        except LogTokenError as error:
            print(f"beep: {error.code}: {token}: {error}", file=sys.stderr)
            failed = 1
    return failed
