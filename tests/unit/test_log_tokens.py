"""Personal data in logs as tokens (kernel/logtokens.py, router/logtokens.ts): reversible with the key and
only with it, the same value always the same token, and no clear text left in what a formatter writes."""

from __future__ import annotations

import argparse
import io
import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from beep import logs
from subgraphs.kernel.logging import AUDIT_LOGGER, JsonFormatter, TextFormatter
from subgraphs.kernel.logtokens import (
    MEMO_SIZE,
    TOKEN_RE,
    LogTokenError,
    LogTokenizer,
    Personal,
    generate_key,
)
from subgraphs.kernel.settings import Settings

ROUTER = Path(__file__).resolve().parents[2] / "router"
VALUES = ["alice@example.com", "alice", "x", "exactly16bytes!!", "Grüße, ✓ — a message longer than a block"]


@pytest.fixture
def tokens() -> LogTokenizer:
    return LogTokenizer(generate_key())


def test_a_token_gives_its_value_back_and_hides_it(tokens: LogTokenizer) -> None:
    for value in VALUES:
        token = tokens.token(value)
        assert TOKEN_RE.fullmatch(token)
        if len(value) > 3:  # (one letter may well occur in any token)
            assert value.lower() not in token.lower()
        assert tokens.reveal(token) == value


def test_the_same_value_gives_the_same_token_and_others_differ(tokens: LogTokenizer) -> None:
    assert tokens.token("alice@example.com") == tokens.token("alice@example.com")
    assert tokens.token("alice@example.com") != tokens.token("alice@example.org")
    assert LogTokenizer(generate_key()).token("alice") != tokens.token("alice")  # keyed


def test_the_memo_of_tokens_made_stays_bounded_and_changes_no_token() -> None:
    key = generate_key()
    tokens = LogTokenizer(key)
    values = [f"user{i}@example.com" for i in range(MEMO_SIZE + 10)]
    made = [tokens.token(v) for v in values]
    assert len(tokens._made) <= MEMO_SIZE
    fresh = LogTokenizer(key)
    assert made[:3] + made[-3:] == [fresh.token(v) for v in values[:3] + values[-3:]]
    assert [tokens.token(v) for v in values[-3:]] == made[-3:]  # remembered, the same


def test_another_key_or_an_altered_token_is_refused(tokens: LogTokenizer) -> None:
    token = tokens.token("alice@example.com")
    with pytest.raises(LogTokenError) as refused:
        LogTokenizer(generate_key()).reveal(token)
    assert refused.value.code == "LOG_TOKEN_INVALID"
    altered = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    with pytest.raises(LogTokenError):
        tokens.reveal(altered)
    with pytest.raises(LogTokenError) as bad_key:
        LogTokenizer("too-short")
    assert bad_key.value.code == "LOG_TOKEN_KEY_INVALID"


def test_free_text_loses_email_and_ip_addresses_but_not_loopback_or_times(tokens: LogTokenizer) -> None:
    text = "from 203.0.113.9 and [2001:db8::7] to bob.smith+x@mail.example.org at 12:04:31 via 127.0.0.1"
    scrubbed = tokens.scrub(text)
    for secret in ("203.0.113.9", "2001:db8::7", "bob.smith+x@mail.example.org"):
        assert secret not in scrubbed and tokens.token(secret) in scrubbed
    assert "12:04:31" in scrubbed and "127.0.0.1" in scrubbed
    assert tokens.reveal_text(scrubbed) == text


def record(message: str, *args: object, name: str = "beep.app", **extra: object) -> logging.LogRecord:
    made = logging.LogRecord(name, logging.WARNING, __file__, 1, message, args, None)
    made.__dict__.update(extra)
    return made


def test_formatters_write_personal_fields_and_addresses_only_as_tokens(tokens: LogTokenizer) -> None:
    try:
        raise ValueError("no account for carol@example.net")
    except ValueError:
        failing = record("sign-in for %s failed", "carol@example.net", name=AUDIT_LOGGER, exc_info=None)
        failing.exc_info = sys.exc_info()
    failing.__dict__.update(
        username="carol",
        ip="198.51.100.4",
        recipient=Personal("dave"),
        nested={"email": "erin@example.com", "note": "see frank@example.com"},
    )
    entry = json.loads(JsonFormatter("beep-test", tokens).format(failing))
    line = TextFormatter(tokens).format(failing)
    for written in (json.dumps(entry), line):
        for secret in ("carol@example.net", "198.51.100.4", "erin@example.com", "frank@example.com"):
            assert secret not in written
        assert "carol" not in TOKEN_RE.sub("", written)
    assert entry["username"] == tokens.token("carol")
    assert entry["recipient"] == tokens.token("dave")
    assert entry["ip"] == tokens.token("198.51.100.4")
    assert entry["nested"]["email"] == tokens.token("erin@example.com")
    assert entry["message"] == f"sign-in for {tokens.token('carol@example.net')} failed"
    assert tokens.token("carol@example.net") in entry["exception"]
    assert entry["stream"] == "audit"
    standard = {"level", "timestamp", "service", "container_id", "trace_id", "span_id", "request_id"}
    assert standard <= set(entry)


def test_without_a_key_a_formatter_still_writes_no_clear_text() -> None:
    entry = json.loads(JsonFormatter("beep-test").format(record("x", email="gina@example.com")))
    assert entry["email"].startswith("pii_") and "gina" not in json.dumps(entry)


def test_beep_logs_reveal_and_tokenize(
    tokens: LogTokenizer, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    key = generate_key()
    settings = Settings(log_token_key=key, data_dir=tmp_path)
    mine = LogTokenizer(key)
    token = mine.token("alice@example.com")
    assert logs.run(settings, argparse.Namespace(logs_command="reveal", tokens=[token])) == 0
    assert capsys.readouterr().out == "alice@example.com\n"
    foreign = tokens.token("alice@example.com")
    assert logs.run(settings, argparse.Namespace(logs_command="reveal", tokens=[foreign])) == 1
    assert "LOG_TOKEN_INVALID" in capsys.readouterr().err
    lines = io.StringIO(f'{{"email": "{token}", "other": "{foreign}"}}\n')
    assert logs.run(settings, argparse.Namespace(logs_command="reveal", tokens=[]), stdin=lines) == 0
    assert capsys.readouterr().out == f'{{"email": "alice@example.com", "other": "{foreign}"}}\n'
    assert logs.run(settings, argparse.Namespace(logs_command="tokenize", values=["alice"])) == 0
    assert capsys.readouterr().out == mine.token("alice") + "\n"


ROUTER_SCRIPT = """
import { register } from 'node:module';
register('@graphql-hive/importer/hooks', import.meta.url);
const { LogTokenizer } = await import('./logtokens.ts');
const [key, values, theirs] = JSON.parse(process.argv[1]);
const t = new LogTokenizer(key);
console.log(JSON.stringify({
  tokens: values.map((v) => t.token(v)),
  again: values.map((v) => t.token(v)),
  revealed: theirs.map((v) => t.reveal(v) ?? null),
  scrubbed: t.scrub('from 203.0.113.9 for bob@example.org via 127.0.0.1'),
}));
"""


def test_the_router_makes_the_same_tokens() -> None:
    key = generate_key()
    tokens = LogTokenizer(key)
    foreign = LogTokenizer(generate_key()).token("alice")
    done = subprocess.run(
        [
            "node",
            "--input-type=module",
            "-e",
            ROUTER_SCRIPT,
            json.dumps([key, VALUES, [*(tokens.token(v) for v in VALUES), foreign]]),
        ],
        cwd=ROUTER,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    found = json.loads(done.stdout)
    assert found["tokens"] == [tokens.token(v) for v in VALUES]
    assert found["again"] == found["tokens"]  # from its memo
    assert found["revealed"] == [*VALUES, None]
    assert found["scrubbed"] == tokens.scrub("from 203.0.113.9 for bob@example.org via 127.0.0.1")
