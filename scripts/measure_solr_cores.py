"""How many channel cores one Solr node holds: starts a node (tests/harness/solr.py) with the given heap,
creates cores from the beep_messages configset with five documents each, and every STEP cores prints the
heap in use (Solr's jvm.memory.raw.used, 2 s after the last core; no forced GC, so it is an upper
bound) and the node's RSS.

    python scripts/measure_solr_cores.py [CORES=300] [STEP=50] [HEAP=512m]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.harness.solr import solr_node


def rss_mib(port: int) -> float:
    for status in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            cmdline = status.read_bytes().split(b"\0")
        except OSError:
            continue
        if b"chat.beep.solr.BeepSolrNode" in cmdline and str(port).encode() in cmdline:
            for line in (status.parent / "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    cores = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    step = int(sys.argv[2]) if len(sys.argv) > 2 else 50
    heap = sys.argv[3] if len(sys.argv) > 3 else "512m"
    with solr_node(heap=heap) as url, httpx.Client(timeout=120) as client:
        port = int(url.split(":")[2].split("/")[0])
        started = time.monotonic()
        for n in range(1, cores + 1):
            name = f"s1_c{n}"
            created = client.get(
                f"{url}/admin/cores",
                params={"action": "CREATE", "name": name, "configSet": "beep_messages", "instanceDir": name},
            )
            if not created.is_success:
                print(f"core {n}: {created.status_code} {created.text[:300]}")
                return
            docs = [
                {
                    "id": str(n * 10 + i),
                    "message_id": n * 10 + i,
                    "channel_id": n,
                    "server_id": 1,
                    "terms": f"hello world message {i}",
                    "content": f"hello world message {i}",
                }
                for i in range(5)
            ]
            client.post(f"{url}/{name}/update", params={"commit": "true"}, json=docs).raise_for_status()
            if n % step == 0:
                time.sleep(2)
                info = client.get(f"{url}/admin/info/system").json()["jvm"]["memory"]["raw"]
                print(
                    f"{n} cores: heap used {info['used'] / 2**20:.0f} MiB of {info['max'] / 2**20:.0f} MiB, "
                    f"RSS {rss_mib(port):.0f} MiB, {time.monotonic() - started:.0f} s",
                    flush=True,
                )


if __name__ == "__main__":
    main()
