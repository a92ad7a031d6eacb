"""What `beep dev` says when its router stops: which process, how it ended, the end of its log."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from beep.dev import _router_stopped, tail


def test_tail_shows_the_last_lines_of_a_large_log(tmp_path: Path) -> None:
    log = tmp_path / "router.log"
    log.write_text("".join(f"line {n}\n" for n in range(20_000)))
    assert tail(log, 3) == "  line 19997\n  line 19998\n  line 19999"
    assert tail(tmp_path / "missing.log").startswith("  (cannot read it:")
    (tmp_path / "empty.log").write_text("")
    assert tail(tmp_path / "empty.log") == "  (empty)"


def test_an_exit_code_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "router.log"
    log.write_text("starting\n[beep-router] BEEP_JWKS_URL is required\n")
    process = subprocess.Popen(["sh", "-c", "exit 3"])
    process.wait()
    assert _router_stopped(process, log, "before it was ready") == 1
    said = capsys.readouterr().err
    assert f"the router (process {process.pid}) exited with code 3 before it was ready" in said
    assert said.rstrip().endswith("  starting\n  [beep-router] BEEP_JWKS_URL is required")


def test_a_signal_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    process = subprocess.Popen(["sleep", "30"])
    process.kill()
    process.wait()
    _router_stopped(process, tmp_path / "router.log", "while Beep was running")
    assert "was killed by SIGKILL while Beep was running" in capsys.readouterr().err
