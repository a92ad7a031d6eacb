"""The router's CORS allow-list (router/cors.ts): which origins get CORS headers; the gateway's answers
themselves are checked end to end in tests/security/test_cors_and_media_types.py."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

ROUTER = Path(__file__).resolve().parents[2] / "router"

SCRIPT = """
import { register } from 'node:module';
register('@graphql-hive/importer/hooks', import.meta.url);
const { corsPolicy } = await import('./cors.ts');
const [setting, publicUrl, origins] = JSON.parse(process.argv[1]);
let out;
try {
  const policy = corsPolicy(setting ?? undefined, publicUrl);
  const answers = origins.map((o) => {
    const found = policy.cors(new Request('http://x/graphql', { headers: o ? { origin: o } : {} }));
    return found ? found.origin : false;
  });
  out = { allowed: policy.allowed, answers };
} catch (e) {
  out = { error: String(e.message) };
}
console.log(JSON.stringify(out));
"""


def policy(setting: str | None, public_url: str, *origins: str | None) -> dict[str, object]:
    done = subprocess.run(
        ["node", "--input-type=module", "-e", SCRIPT, json.dumps([setting, public_url, list(origins)])],
        cwd=ROUTER,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    found: dict[str, object] = json.loads(done.stdout)
    return found


def test_by_default_only_the_routers_own_origin_is_answered() -> None:
    found = policy(
        None, "https://chat.example.com/", "https://chat.example.com", "https://evil.example", None
    )
    assert found == {
        "allowed": ["https://chat.example.com"],
        "answers": [["https://chat.example.com"], False, False],
    }


def test_listed_origins_are_answered_and_no_other() -> None:
    listed = "https://a.example, http://localhost:5173"
    found = policy(
        listed,
        "http://127.0.0.1:4000",
        "http://localhost:5173",
        "https://a.example",
        "null",
        "https://b.example",
    )
    assert found["answers"] == [["http://localhost:5173"], ["https://a.example"], False, False]


def test_any_origin_only_when_asked_and_malformed_origins_stop_the_router() -> None:
    assert policy("*", "http://127.0.0.1:4000", "https://x.example")["answers"] == [["https://x.example"]]
    assert "error" in policy("*, https://a.example", "http://127.0.0.1:4000")
    assert "error" in policy("a.example", "http://127.0.0.1:4000")
    assert "error" in policy("ftp://a.example", "http://127.0.0.1:4000")
