"""A real Solr 9.10.1 node for tests: jars from Maven Central (search/solr/pom.xml, fetched once into
search/solr/lib by `mvn dependency:copy-dependencies`), the small launcher in search/solr/src compiled
with javac, started on a free port with a throwaway Solr home; cores come from search/solr/configsets."""

from __future__ import annotations

import contextlib
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from tests.harness.ports import free_port

ROOT = Path(__file__).resolve().parents[2] / "search" / "solr"
LIB = ROOT / "lib"
CLASSES = ROOT / "target" / "launcher"
LAUNCHER = ROOT / "src" / "main" / "java" / "chat" / "beep" / "solr" / "BeepSolrNode.java"


def build() -> str:
    """The launcher's classpath, fetching the jars and compiling the launcher when missing."""
    if not (LIB / "solr-core-9.10.1.jar").exists():
        subprocess.run(
            ["mvn", "-q", "-B", "dependency:copy-dependencies", f"-DoutputDirectory={LIB}"],
            cwd=ROOT,
            check=True,
            timeout=1200,
        )
    compiled = CLASSES / "chat" / "beep" / "solr" / "BeepSolrNode.class"
    if not compiled.exists() or compiled.stat().st_mtime < LAUNCHER.stat().st_mtime:
        CLASSES.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["javac", "-d", str(CLASSES), "-cp", f"{LIB}/*", str(LAUNCHER)], check=True, timeout=300
        )
    return f"{CLASSES}:{LIB}/*"


@contextlib.contextmanager
def solr_node(heap: str = "512m") -> Iterator[str]:
    """Yields the node's base URL (http://127.0.0.1:PORT/solr) until the block ends."""
    classpath = build()
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="beep-solr-") as home:
        log = open(Path(home) / "node.log", "wb")  # noqa: SIM115 - closed below
        process = subprocess.Popen(
            [
                "java",
                f"-Xmx{heap}",
                f"-Dsolr.log.dir={home}",
                "-cp",
                classpath,
                "chat.beep.solr.BeepSolrNode",
                f"{home}/home",
                str(port),
                str(ROOT / "configsets"),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}/solr"
        try:
            deadline = time.monotonic() + 120
            while True:
                assert process.poll() is None, (Path(home) / "node.log").read_text()[-3000:]
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"{url}/admin/cores", params={"action": "STATUS"}, timeout=2).is_success:
                        break
                assert time.monotonic() < deadline, "Solr did not start in 120 s"
                time.sleep(0.5)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
            log.close()
