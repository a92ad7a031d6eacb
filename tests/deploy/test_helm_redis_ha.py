"""The chart pointed at a Sentinel-managed Redis (docs/redis-ha.md): every Beep process gets one
`redis+sentinel://` URL that Beep's own settings accept, with the password only by reference."""

from __future__ import annotations

import pytest

from subgraphs.kernel.redis_client import parse_sentinel_url
from subgraphs.kernel.settings import Settings
from tests.deploy.chart import env_of, helm, pod_specs, render

pytestmark = pytest.mark.deploy

SENTINELS = ["redis-node-0.redis-headless:26379", "redis-node-1.redis-headless:26379"]


def _redis_urls(*args: str) -> dict[str, str]:
    manifests = render(*args)
    urls = {}
    for name, spec in pod_specs(manifests):
        for container in spec["containers"]:
            env = env_of(container)
            if "BEEP_REDIS_URL" in env:
                urls[name] = env["BEEP_REDIS_URL"]["value"]
    return urls


def test_sentinels_reach_every_process_that_uses_redis() -> None:
    plain = _redis_urls()
    sentinel = _redis_urls(
        "--set-json", f"redis.sentinel.sentinels={SENTINELS}".replace("'", '"'),
        "--set", "redis.sentinel.masterName=beep-master",
        "--set", "redis.sentinel.db=2",
        "--set", "redis.sentinel.sentinelPassword=true",
    )  # fmt: skip
    assert set(sentinel) == set(plain) and plain, "the same processes get Redis either way"
    for name, url in sentinel.items():
        assert url.startswith("redis+sentinel://:$(BEEP_REDIS_PASSWORD)@"), name
        target = parse_sentinel_url(url)
        assert [f"{host}:{port}" for host, port in target.sentinels] == SENTINELS
        assert (target.master, target.db) == ("beep-master", 2)
        assert target.sentinel_password == target.password == "$(BEEP_REDIS_PASSWORD)"
        # As the pod sees it once Kubernetes has substituted the Secret's value.
        assert Settings(redis_url=url.replace("$(BEEP_REDIS_PASSWORD)", "s3cret")).redis_url
    assert all(url.startswith("redis://") for url in plain.values())


def test_sentinels_without_a_master_name_are_refused() -> None:
    result = helm(
        "template", "beep", "helm/beep",
        "--set-json", f"redis.sentinel.sentinels={SENTINELS}".replace("'", '"'),
        "--set", "redis.sentinel.masterName=",
    )  # fmt: skip
    assert result.returncode != 0 and "masterName is required" in result.stderr
