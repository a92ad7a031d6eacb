"""The docs name what exists: every relative link and anchor resolves, and every repository path,
`BEEP_*` setting and `beep` command they name in code spans is still in the code.

Prose drifts silently when code moves; this fails CI instead. It reads the README, docs/*.md and the
other READMEs of the repository (bench/, router/, the Helm chart's when there is one)."""

from __future__ import annotations

import contextlib
import io
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

from beep.cli import main as beep_main
from subgraphs.kernel.settings import SUBGRAPH_NAMES, Settings

ROOT = Path(__file__).resolve().parents[2]
# Generated or installed, never committed: a doc may name them, they need not exist in a checkout.
GENERATED = ("router/node_modules", "search/solr/lib", ".venv", ".cache", "var")
# Where settings are read or set: the code, the chart, the scripts, the realm, the test harness.
CODE_DIRS = (
    "subgraphs",
    "beep",
    "db",
    "media",
    "router",
    "helm",
    "scripts",
    "keycloak",
    "tests",
    ".ci",
    "bench",
)
CODE_SUFFIXES = {"", ".py", ".ts", ".mjs", ".js", ".yaml", ".yml", ".tpl", ".json", ".txt", ".sh", ".toml"}

_FENCE = re.compile(r"^(```|~~~)")
_CODE_SPAN = re.compile(r"(`+)(.+?)\1")
_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_REF_LINK = re.compile(r"^\s*\[[^\]]+\]:\s*(\S+)")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_HTML_ANCHOR = re.compile(r"<a\s+(?:name|id)=\"([^\"]+)\"")
_SETTING = re.compile(r"BEEP_[A-Z0-9_]*[A-Z0-9]")
_SETTING_OR_PREFIX = re.compile(r"BEEP_[A-Z0-9_]*")  # in code, `'BEEP_SUBGRAPH_URL_' + name` names a family
# `beep` where a command starts (a line, a code span, after `$ `, `&& `, `; ` or `(`): not a release or
# namespace named beep inside another command (`helm install beep …`, `kubectl label namespace beep …`).
_COMMAND = re.compile(r"(?:^|(?<=[`(])|(?<=\$ )|(?<=&& )|(?<=; ))[ \t]*beep((?: [a-z][a-z0-9-]*)+)", re.M)


def doc_files() -> list[Path]:
    found = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    found += [p for p in (ROOT / "bench/README.md", ROOT / "router/README.md") if p.exists()]
    found += sorted((ROOT / "helm").glob("*/README.md"))
    return found


def _name(path: Path) -> str:
    return str(path.relative_to(ROOT))


def prose_and_code(path: Path) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    """(line number, prose line with code spans blanked) and (line number, code: spans and fenced lines)."""
    prose: list[tuple[int, str]] = []
    code: list[tuple[int, str]] = []
    fenced = False
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if _FENCE.match(line.strip()):
            fenced = not fenced
            continue
        if fenced:
            code.append((number, line))
            continue
        code.extend((number, m.group(2)) for m in _CODE_SPAN.finditer(line))
        prose.append((number, _CODE_SPAN.sub(lambda m: " " * len(m.group(0)), line)))
    return prose, code


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: its text (code spans and links as their text), lower case, without
    punctuation, spaces as hyphens."""
    text = _CODE_SPAN.sub(lambda m: m.group(2), heading)
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"[^\w\- ]", "", text.lower())
    return text.replace(" ", "-")


@cache
def anchors(path: Path) -> frozenset[str]:
    seen: dict[str, int] = {}
    found: set[str] = set()
    prose, _ = prose_and_code(path)
    for _number, line in prose:
        found.update(_HTML_ANCHOR.findall(line))
    fenced = False
    for line in path.read_text().splitlines():
        if _FENCE.match(line.strip()):
            fenced = not fenced
            continue
        match = None if fenced else _HEADING.match(line)
        if match:
            base = slug(match.group(2))
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
    return frozenset(found)


def links(path: Path) -> Iterator[tuple[int, str]]:
    prose, _ = prose_and_code(path)
    for number, line in prose:
        for target in _LINK.findall(line):
            yield number, target
        ref = _REF_LINK.match(line)
        if ref:
            yield number, ref.group(1)


def broken_link(path: Path, target: str) -> str | None:
    if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE):
        return None  # http:, https:, mailto:…: not this test's business
    file_part, _, anchor = target.partition("#")
    dest = (path.parent / file_part).resolve() if file_part else path
    if not dest.exists():
        return f"{target}: no such file"
    if not dest.is_relative_to(ROOT):
        return f"{target}: outside the repository"
    if anchor and dest.suffix == ".md" and anchor not in anchors(dest):
        return f"{target}: no heading #{anchor} in {_name(dest)}"
    return None


def test_every_relative_link_and_anchor_resolves() -> None:
    problems = [
        f"{_name(path)}:{number}: {problem}"
        for path in doc_files()
        for number, target in links(path)
        if (problem := broken_link(path, target))
    ]
    assert not problems, "dead links in the docs:\n" + "\n".join(problems)


def _roots() -> set[str]:
    skip = {".git", "node_modules", "beep.egg-info", *GENERATED}
    return {p.name for p in ROOT.iterdir() if p.name not in skip}


def repository_path(span: str) -> str | None:
    """The repository path a code span names (`subgraphs/kernel/web/limits.py`, `kernel/tenancy/access.py:
    lock_tenant`, `db/migrations/shard/versions/`), or None when it names something else or a pattern
    (`<name>`, `{a,b}`, `*`, `…`)."""
    words = span.split()
    if not words:
        return None
    word = words[0].rstrip(":,;.)")
    if "/" not in word or re.search(r"[<>{}*$|…?=]|\.\.\.", word) or word.startswith("/"):
        return None
    first = word.split("/", 1)[0]
    if first == "kernel" or first in SUBGRAPH_NAMES:
        word = f"subgraphs/{word}"  # the docs' short form for a subgraph's or the kernel's module
    elif first not in _roots():
        return None
    if word.startswith(GENERATED):
        return None
    return word


def test_every_repository_path_named_exists() -> None:
    missing = []
    for path in doc_files():
        _, code = prose_and_code(path)
        for number, span in code:
            named = repository_path(span)
            if named and not (ROOT / named).exists():
                missing.append(f"{_name(path)}:{number}: {named}")
    assert not missing, "the docs name paths that do not exist:\n" + "\n".join(missing)


@cache
def settings_in_code() -> frozenset[str]:
    names = {f"BEEP_{field.upper()}" for field in Settings.model_fields}
    for directory in CODE_DIRS:
        for file in (ROOT / directory).rglob("*"):
            if "node_modules" in file.parts or not file.is_file() or file.suffix not in CODE_SUFFIXES:
                continue
            if file == Path(__file__).resolve():
                continue  # this test names settings only as examples
            names.update(_SETTING_OR_PREFIX.findall(file.read_text(errors="ignore")))
    names.update(_SETTING_OR_PREFIX.findall((ROOT / "Dockerfile").read_text()))
    return frozenset(names)


def settings_named(path: Path) -> Iterator[tuple[int, str, bool]]:
    """(line, name, whether it is a family's prefix: `BEEP_S3_*`, `BEEP_SUBGRAPH_URL_<NAME>`)."""
    _, code = prose_and_code(path)
    for number, span in code:
        for match in _SETTING.finditer(span):
            after = span[match.end() : match.end() + 2]
            yield number, match.group(0), after in ("_*", "_<") or after.startswith("_{")


def setting_is_known(name: str, family: bool) -> bool:
    """A setting by name, a family the code reads by its prefix (`BEEP_SUBGRAPH_URL_<NAME>`) or one of
    such a family's members (`BEEP_SUBGRAPH_URL_USERS`)."""
    known = settings_in_code()
    if family:
        return any(k.startswith(name + "_") for k in known)
    families = (k for k in known if k.endswith("_") and k != "BEEP_")  # not the settings' env_prefix
    return name in known or any(name.startswith(k) for k in families)


def test_every_setting_named_is_read_somewhere() -> None:
    unknown = []
    for path in doc_files():
        for number, name, family in settings_named(path):
            if not setting_is_known(name, family):
                unknown.append(f"{_name(path)}:{number}: {name}")
    assert not unknown, "the docs name settings no code reads:\n" + "\n".join(unknown)


def commands_named(path: Path) -> Iterator[tuple[int, tuple[str, ...]]]:
    """`beep tenants move ID --to N` names ("tenants", "move"): the words before any argument."""
    _, code = prose_and_code(path)
    for number, span in code:
        for match in _COMMAND.finditer(span):
            yield number, tuple(match.group(1).split())


@cache
def is_beep_command(words: tuple[str, ...]) -> bool:
    """Whether the CLI's parser takes these words: `--help` after them exits 0, an unknown choice 2."""
    sink = io.StringIO()
    quiet = contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink)
    with quiet[0], quiet[1], pytest.raises(SystemExit) as ended:
        beep_main([*words, "--help"])
    return ended.value.code == 0


def test_every_beep_command_named_exists() -> None:
    unknown = []
    for path in doc_files():
        for number, words in commands_named(path):
            # The words after the command may be arguments (`beep serve users`): try the longest first.
            if not any(is_beep_command(words[:n]) for n in range(len(words), 0, -1)):
                unknown.append(f"{_name(path)}:{number}: beep {' '.join(words)}")
    assert not unknown, "the docs name beep commands the CLI does not have:\n" + "\n".join(unknown)


def test_the_checks_catch_what_they_are_for() -> None:
    """Each check fails on a planted mistake, so a check that silently matches nothing cannot pass."""
    page = ROOT / "docs" / "configuration.md"
    assert broken_link(page, "nowhere.md") == "nowhere.md: no such file"
    assert broken_link(page, "../README.md#no-such-heading") is not None
    assert broken_link(page, "../README.md#the-two-commands") is None
    assert (
        repository_path("subgraphs/kernel/web/limits.py: RequestLimits") == "subgraphs/kernel/web/limits.py"
    )
    assert repository_path("kernel/gone.py") == "subgraphs/kernel/gone.py"
    assert not (ROOT / "subgraphs/kernel/gone.py").exists()
    assert setting_is_known("BEEP_INTERNAL_SECRET", family=False)
    assert setting_is_known("BEEP_SUBGRAPH_URL_USERS", family=False)
    assert setting_is_known("BEEP_S3", family=True)
    assert not setting_is_known("BEEP_NO_SUCH_SETTING", family=False)
    assert is_beep_command(("tenants", "move"))
    assert not is_beep_command(("teleport",))
    assert slug("Moving a tenant (`beep tenants move`)") == "moving-a-tenant-beep-tenants-move"
    assert slug("Live fan-out: one render, every socket") == "live-fan-out-one-render-every-socket"
    # Every kind of thing is found in the docs as they are, so none of the checks is vacuous.
    pages = doc_files()
    assert sum(1 for p in pages for _ in links(p)) > 20
    assert sum(1 for p in pages for _, span in prose_and_code(p)[1] if repository_path(span)) > 50
    assert sum(1 for p in pages for _ in settings_named(p)) > 50
    assert sum(1 for p in pages for _ in commands_named(p)) > 5
