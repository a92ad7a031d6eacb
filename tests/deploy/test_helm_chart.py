"""The Helm chart in helm/beep: it lints, and what it renders is what Beep needs to run.

Helm is expected at <repo>/.cache/bin/helm (scripts/install-helm puts it there). Nothing here talks
to a cluster: `helm template` renders the manifests and the tests read them as data.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from tests.deploy.chart import (
    CHART,
    RELEASE,
    SUBGRAPHS,
    Manifest,
    env_of,
    helm,
    of_kind,
    only_container,
    pod_specs,
    render,
    workloads,
)

pytestmark = pytest.mark.deploy

HEALTH_PATHS = {"router": {"/healthcheck", "/readiness"}, "subgraph": {"/healthz"}}


# ---------------------------------------------------------------------------------------------
# helpers


def component(m: Manifest) -> str:
    return str(m["metadata"]["labels"]["app.kubernetes.io/component"])


@pytest.fixture(scope="module")
def default_manifests() -> list[Manifest]:
    return render()


# ---------------------------------------------------------------------------------------------
# lint


@pytest.mark.parametrize("strict", [False, True], ids=["lint", "lint-strict"])
def test_chart_lints(strict: bool) -> None:
    result = helm("lint", str(CHART), *(["--strict"] if strict else []))
    assert result.returncode == 0, f"helm lint failed:\n{result.stdout}\n{result.stderr}"
    assert "0 chart(s) failed" in result.stdout


def test_chart_lints_with_overrides(tmp_path: Path) -> None:
    values = tmp_path / "values.yaml"
    values.write_text(
        "subgraphs:\n  messages:\n    replicas: 2\n"
        "auth:\n  issuer: https://sso.example.test/realms/beep\n"
        "  jwksUrl: https://sso.example.test/realms/beep/protocol/openid-connect/certs\n"
    )
    result = helm("lint", "--strict", str(CHART), "-f", str(values))
    assert result.returncode == 0, f"helm lint failed:\n{result.stdout}\n{result.stderr}"


# ---------------------------------------------------------------------------------------------
# one Deployment + Service per subgraph, plus the router


def test_one_deployment_and_service_per_subgraph_plus_router(default_manifests: list[Manifest]) -> None:
    expected = {f"{RELEASE}-{name}" for name in (*SUBGRAPHS, "router")}
    assert set(of_kind(default_manifests, "StatefulSet")) == {f"{RELEASE}-channels"}  # call hosts
    assert set(workloads(default_manifests)) == expected | {f"{RELEASE}-worker"}
    # Nothing calls the worker; the call hosts have a headless Service for their stable names too.
    assert set(of_kind(default_manifests, "Service")) == expected | {f"{RELEASE}-channels-nodes"}


def test_the_worker_relays_with_the_same_connections_as_the_subgraphs(
    default_manifests: list[Manifest],
) -> None:
    deployments = workloads(default_manifests)
    worker = only_container(deployments[f"{RELEASE}-worker"])
    assert worker["command"][:2] == ["beep", "worker"]
    messages = only_container(deployments[f"{RELEASE}-messages"])
    assert worker["env"] == messages["env"]  # the databases and Redis, from the same Secret
    assert worker["envFrom"] == messages["envFrom"]


def test_each_service_selects_exactly_its_deployment_on_the_container_port(
    default_manifests: list[Manifest],
) -> None:
    deployments = workloads(default_manifests)
    for name, service in of_kind(default_manifests, "Service").items():
        selector = service["spec"]["selector"]
        selected = [
            d_name
            for d_name, d in deployments.items()
            if selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()
        ]
        target = name.removesuffix("-nodes")  # the call hosts' headless Service
        assert selected == [target], f"Service {name} selects {selected}"
        deployment = deployments[target]
        assert deployment["spec"]["selector"]["matchLabels"].items() <= (
            deployment["spec"]["template"]["metadata"]["labels"].items()
        )
        (port,) = service["spec"]["ports"]
        container_ports = {p["name"]: p["containerPort"] for p in only_container(deployment)["ports"]}
        assert port["targetPort"] in container_ports, f"{name}: targetPort {port['targetPort']} not exposed"
        assert port["port"] == container_ports[port["targetPort"]]


def test_subgraph_containers_serve_their_subgraph_on_all_interfaces(
    default_manifests: list[Manifest],
) -> None:
    deployments = workloads(default_manifests)
    for name in SUBGRAPHS:
        container = only_container(deployments[f"{RELEASE}-{name}"])
        command = container["command"]
        assert command[:3] == ["beep", "serve", name]
        # The app binds 127.0.0.1 by default: a pod must listen on every interface.
        assert command[command.index("--host") + 1] == "0.0.0.0"
        assert int(command[command.index("--port") + 1]) == container["ports"][0]["containerPort"]


# ---------------------------------------------------------------------------------------------
# the router reaches every subgraph through its Service


def subgraph_urls_from_services(manifests: list[Manifest], release: str) -> dict[str, str]:
    services = of_kind(manifests, "Service")
    urls = {}
    for name in SUBGRAPHS:
        service = services[f"{release}-{name}"]
        (port,) = service["spec"]["ports"]
        urls[f"BEEP_SUBGRAPH_URL_{name.upper()}"] = f"http://{release}-{name}:{port['port']}/graphql"
    return urls


@pytest.mark.parametrize("release", [RELEASE, "chat-prod"])
def test_router_env_points_at_each_subgraph_service(release: str) -> None:
    manifests = render(release=release)
    router = only_container(workloads(manifests)[f"{release}-router"])
    env = env_of(router)
    for key, url in subgraph_urls_from_services(manifests, release).items():
        assert key in env, f"router env lacks {key}"
        assert env[key].get("value") == url
    assert not {k for k in env if k.startswith("BEEP_SUBGRAPH_URL_")} - set(
        subgraph_urls_from_services(manifests, release)
    ), "router points at a subgraph that has no Service"


def test_router_serves_on_all_interfaces_and_verifies_tokens(default_manifests: list[Manifest]) -> None:
    router = only_container(workloads(default_manifests)[f"{RELEASE}-router"])
    env = {k: str(e.get("value")) for k, e in env_of(router).items()}
    assert env["BEEP_ROUTER_HOST"] == "0.0.0.0"
    assert int(env["BEEP_ROUTER_PORT"]) == router["ports"][0]["containerPort"]
    assert router["command"][:2] == ["node_modules/.bin/hive-gateway", "supergraph"]
    assert router["workingDir"] == "/app/router"
    # The built-in issuer lives in the users subgraph; the router and subgraphs agree on it.
    config = of_kind(default_manifests, "ConfigMap")[f"{RELEASE}-config"]["data"]
    assert env["BEEP_JWKS_URL"] == config["BEEP_JWKS_URL"]
    assert env["BEEP_JWKS_URL"].startswith(f"http://{RELEASE}-users:")
    assert env["BEEP_JWT_ISSUER"] == config["BEEP_JWT_ISSUER"] == config["BEEP_ISSUER_URL"]
    assert env["BEEP_JWT_AUDIENCE"] == config["BEEP_JWT_AUDIENCE"]


def test_external_identity_provider_replaces_the_builtin_issuer() -> None:
    issuer = "https://sso.example.test/realms/beep"
    jwks = f"{issuer}/protocol/openid-connect/certs"
    manifests = render("--set", f"auth.issuer={issuer}", "--set", f"auth.jwksUrl={jwks}")
    router = env_of(only_container(workloads(manifests)[f"{RELEASE}-router"]))
    assert router["BEEP_JWKS_URL"]["value"] == jwks
    assert router["BEEP_JWT_ISSUER"]["value"] == issuer
    config = of_kind(manifests, "ConfigMap")[f"{RELEASE}-config"]["data"]
    assert (config["BEEP_JWKS_URL"], config["BEEP_ISSUER_URL"]) == (jwks, issuer)
    # No built-in issuer: the users pods no longer need its signing key.
    users = workloads(manifests)[f"{RELEASE}-users"]["spec"]["template"]["spec"]
    assert "issuer-key" not in {v["name"] for v in users["volumes"]}


def test_builtin_issuer_key_is_mounted_into_users_only(default_manifests: list[Manifest]) -> None:
    for name, deployment in workloads(default_manifests).items():
        spec = deployment["spec"]["template"]["spec"]
        secrets = {v["secret"]["secretName"] for v in spec["volumes"] if "secret" in v}
        if name == f"{RELEASE}-users":
            assert secrets == {"beep-issuer-key"}
            key_file = env_of(only_container(deployment))["BEEP_ISSUER_KEY_FILE"]["value"]
            mounts = {m["name"]: m for m in only_container(deployment)["volumeMounts"]}
            assert key_file.startswith(mounts["issuer-key"]["mountPath"] + "/")
            assert mounts["issuer-key"]["readOnly"] is True
        else:
            assert not secrets, f"{name} mounts {secrets}"


# ---------------------------------------------------------------------------------------------
# replicas


def test_replicas_default_to_one(default_manifests: list[Manifest]) -> None:
    replicas = {n: d["spec"]["replicas"] for n, d in workloads(default_manifests).items()}
    assert set(replicas.values()) == {1}


def test_replicas_override_from_a_values_file(tmp_path: Path) -> None:
    values = tmp_path / "values.yaml"
    values.write_text("subgraphs:\n  messages:\n    replicas: 2\nrouter:\n  replicas: 3\n")
    deployments = workloads(render("-f", str(values)))
    replicas = {n: d["spec"]["replicas"] for n, d in deployments.items()}
    assert replicas.pop(f"{RELEASE}-messages") == 2
    assert replicas.pop(f"{RELEASE}-router") == 3
    assert set(replicas.values()) == {1}
    # Overriding one field of a subgraph keeps the rest of its defaults.
    messages = only_container(deployments[f"{RELEASE}-messages"])
    assert messages["resources"]["requests"]["memory"]


def test_replicas_override_with_set() -> None:
    deployments = workloads(render("--set", "subgraphs.messages.replicas=2"))
    assert deployments[f"{RELEASE}-messages"]["spec"]["replicas"] == 2
    assert deployments[f"{RELEASE}-users"]["spec"]["replicas"] == 1


# ---------------------------------------------------------------------------------------------
# probes and security


def test_every_deployment_container_has_http_probes_on_its_health_paths(
    default_manifests: list[Manifest],
) -> None:
    for name, deployment in workloads(default_manifests).items():
        kind = "router" if component(deployment) == "router" else "subgraph"
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            port_names = {p["name"] for p in container["ports"]}
            for probe in ("livenessProbe", "readinessProbe"):
                assert probe in container, f"{name}/{container['name']} has no {probe}"
                get = container[probe]["httpGet"]
                assert get["path"] in HEALTH_PATHS[kind], f"{name} {probe} on {get['path']}"
                assert get["port"] in port_names
    router = only_container(workloads(default_manifests)[f"{RELEASE}-router"])
    assert router["readinessProbe"]["httpGet"]["path"] == "/readiness"
    assert router["livenessProbe"]["httpGet"]["path"] == "/healthcheck"


def test_every_container_runs_as_non_root_with_a_read_only_root(default_manifests: list[Manifest]) -> None:
    specs = list(pod_specs(default_manifests))
    assert len(specs) == len(SUBGRAPHS) + 3  # subgraphs, router, worker, migration job
    for name, spec in specs:
        pod = spec.get("securityContext") or {}
        assert spec.get("automountServiceAccountToken") is False, name
        for container in [*spec.get("initContainers", []), *spec["containers"]]:
            sc = {**pod, **(container.get("securityContext") or {})}
            where = f"{name}/{container['name']}"
            assert sc.get("runAsNonRoot") is True, f"{where} may run as root"
            assert sc.get("runAsUser", 0) != 0, f"{where} runs as uid 0"
            assert sc.get("allowPrivilegeEscalation") is False, where
            assert sc.get("readOnlyRootFilesystem") is True, where
            assert "ALL" in sc.get("capabilities", {}).get("drop", []), where
            # The read-only root needs a writable /tmp.
            tmp = [m for m in container.get("volumeMounts", []) if m["mountPath"] == "/tmp"]
            assert tmp, f"{where} has no writable /tmp"
            volumes = {v["name"]: v for v in spec["volumes"]}
            assert "emptyDir" in volumes[tmp[0]["name"]]


def test_every_container_has_resources_and_the_pinned_image(default_manifests: list[Manifest]) -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    for name, spec in pod_specs(default_manifests):
        for container in spec["containers"]:
            assert container["image"] == f"beep:{chart['appVersion']}", name
            assert container["resources"]["requests"], name
            assert container["resources"]["limits"]["memory"], name
    manifests = render("--set", "image.repository=registry.example.test/beep", "--set", "image.tag=1.2.3")
    images = {c["image"] for _, spec in pod_specs(manifests) for c in spec["containers"]}
    assert images == {"registry.example.test/beep:1.2.3"}


# ---------------------------------------------------------------------------------------------
# configuration and secrets


def test_shared_config_reaches_every_subgraph(default_manifests: list[Manifest]) -> None:
    config_maps = of_kind(default_manifests, "ConfigMap")
    config = config_maps[f"{RELEASE}-config"]["data"]
    assert config["BEEP_MODE"] == "full"
    for key in ("BEEP_JWKS_URL", "BEEP_ISSUER_URL", "BEEP_JWT_ISSUER", "BEEP_LOGICAL_SHARDS"):
        assert config[key], key
    deployments = workloads(default_manifests)
    for name in SUBGRAPHS:
        container = only_container(deployments[f"{RELEASE}-{name}"])
        refs = [e["configMapRef"]["name"] for e in container["envFrom"]]
        assert refs == [f"{RELEASE}-config"]
        annotations = deployments[f"{RELEASE}-{name}"]["spec"]["template"]["metadata"]["annotations"]
        assert "checksum/config" in annotations, "pods would not roll when the config changes"


def test_connection_settings_get_credentials_only_from_the_existing_secret(
    default_manifests: list[Manifest],
) -> None:
    assert not of_kind(default_manifests, "Secret"), "the chart must not create Secrets"
    for name, spec in pod_specs(default_manifests):
        (container,) = spec["containers"]
        if container["name"] == "router":
            continue
        env = container["env"]
        names = [e["name"] for e in env]
        for key in ("BEEP_DIRECTORY_URL", "BEEP_SHARD_DATABASES", "BEEP_REDIS_URL"):
            assert key in names, f"{name} lacks {key}"
        from_secret = {
            e["name"]: e["valueFrom"]["secretKeyRef"] for e in env if "secretKeyRef" in e.get("valueFrom", {})
        }
        assert {ref["name"] for ref in from_secret.values()} == {"beep-secrets"}
        # Kubernetes expands $(VAR) only to variables declared earlier in the list.
        for index, entry in enumerate(env):
            for ref in re.findall(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", entry.get("value", "")):
                assert ref in names[:index], f"{name}: {entry['name']} uses $({ref}) before it is defined"
                assert ref in from_secret
    rendered = yaml.safe_dump_all(default_manifests)
    assert not re.search(r"://[^:/@\s]+:[^$@\s][^@\s]*@", rendered), "a literal password is in the manifests"


def test_existing_secret_name_is_configurable() -> None:
    manifests = render("--set", "secrets.existingSecret=prod-beep-credentials")
    refs = {
        e["valueFrom"]["secretKeyRef"]["name"]
        for _, spec in pod_specs(manifests)
        for c in spec["containers"]
        for e in c.get("env", [])
        if "secretKeyRef" in e.get("valueFrom", {})
    }
    assert refs == {"prod-beep-credentials"}


def test_an_empty_existing_secret_name_is_rejected() -> None:
    result = helm("template", RELEASE, str(CHART), "--set", "secrets.existingSecret=")
    assert result.returncode != 0
    assert "secrets.existingSecret" in result.stderr


# ---------------------------------------------------------------------------------------------
# migrations


def test_migration_job_is_a_pre_install_and_pre_upgrade_hook(default_manifests: list[Manifest]) -> None:
    (job,) = of_kind(default_manifests, "Job").values()
    annotations = job["metadata"]["annotations"]
    assert set(annotations["helm.sh/hook"].split(",")) == {"pre-install", "pre-upgrade"}
    assert "before-hook-creation" in annotations["helm.sh/hook-delete-policy"]
    spec = job["spec"]["template"]["spec"]
    assert spec["restartPolicy"] == "Never"
    (container,) = spec["containers"]
    assert container["command"] == ["beep", "db", "upgrade"]
    # A pre-install hook runs before the release's other resources exist: it must not need the
    # chart's ConfigMap (or anything else the chart creates) to start.
    assert "envFrom" not in container
    created = {(m["kind"], m["metadata"]["name"]) for m in default_manifests if m is not job}
    for volume in spec.get("volumes", []):
        for kind, ref in (("ConfigMap", volume.get("configMap")), ("Secret", volume.get("secret"))):
            assert not ref or (kind, ref.get("name")) not in created
    env = {e["name"]: e.get("value") for e in container["env"]}
    config = of_kind(default_manifests, "ConfigMap")[f"{RELEASE}-config"]["data"]
    assert {k: env.get(k) for k in config} == config, "the job must see the subgraphs' settings"


def test_migration_job_can_be_disabled() -> None:
    assert not of_kind(render("--set", "migrations.enabled=false"), "Job")


def test_turn_is_off_by_default_and_when_on_only_the_call_hosts_get_its_secret(
    default_manifests: list[Manifest],
) -> None:
    assert f"{RELEASE}-turn" not in workloads(default_manifests)
    manifests = render(
        "--set",
        "turn.enabled=true",
        "--set",
        "turn.realm=chat.example.test",
        "--set",
        "turn.urls={turn:turn.example.test:3478?transport=udp}",
    )
    deployments = workloads(manifests)
    turn = only_container(deployments[f"{RELEASE}-turn"])
    assert "--use-auth-secret" in turn["args"] and "--static-auth-secret=$(TURN_SECRET)" in turn["args"]
    assert "--denied-peer-ip=10.0.0.0-10.255.255.255" in turn["args"]  # relays never reach private hosts
    (secret_env,) = turn["env"]
    assert secret_env["valueFrom"]["secretKeyRef"] == {"name": "beep-secrets", "key": "turn-secret"}
    holders = {
        name
        for name, d in deployments.items()
        if any(e["name"] == "BEEP_VOICE_TURN_SECRET" for e in only_container(d).get("env", []))
    }
    assert holders == {f"{RELEASE}-channels"}
    (config,) = of_kind(manifests, "ConfigMap").values()
    assert config["data"]["BEEP_VOICE_TURN_URLS"] == "turn:turn.example.test:3478?transport=udp"


def test_one_call_host_needs_no_voice_nodes(default_manifests: list[Manifest]) -> None:
    channels = workloads(default_manifests)[f"{RELEASE}-channels"]
    assert not {"BEEP_VOICE_NODES", "BEEP_VOICE_NODE_URL", "BEEP_VOICE_INTERNAL_SECRET"} & set(
        env_of(only_container(channels))
    )


@pytest.mark.parametrize("release", [RELEASE, "chat-prod"])
def test_several_call_hosts_know_each_other_by_stable_names(release: str) -> None:
    """With 3 channels replicas every pod lists the 3 pods' URLs (rendezvous hashing over them picks a
    call's host), names itself among them, and gets the internal secret; nobody else does."""
    manifests = render("--set", "subgraphs.channels.replicas=3", release=release)
    statefulset = of_kind(manifests, "StatefulSet")[f"{release}-channels"]
    headless = of_kind(manifests, "Service")[statefulset["spec"]["serviceName"]]
    assert headless["spec"]["clusterIP"] == "None" and headless["spec"]["publishNotReadyAddresses"]
    assert (
        headless["spec"]["selector"].items() <= statefulset["spec"]["template"]["metadata"]["labels"].items()
    )
    (port,) = headless["spec"]["ports"]
    env = env_of(only_container(statefulset))
    names = list(env)
    # Kubernetes expands $(POD_NAME) only from variables declared before.
    assert names.index("POD_NAME") < names.index("BEEP_VOICE_NODE_URL")
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    service, pod_port = headless["metadata"]["name"], port["port"]
    nodes = env["BEEP_VOICE_NODES"]["value"].split(",")
    assert nodes == [f"http://{release}-channels-{i}.{service}:{pod_port}" for i in range(3)]
    for i in range(3):  # each pod, its name expanded, is one of the nodes
        url = env["BEEP_VOICE_NODE_URL"]["value"].replace("$(POD_NAME)", f"{release}-channels-{i}")
        assert url == nodes[i]
    secret = env["BEEP_VOICE_INTERNAL_SECRET"]["valueFrom"]["secretKeyRef"]
    assert secret == {"name": "beep-secrets", "key": "voice-internal-secret"}
    holders = {
        name
        for name, w in workloads(manifests).items()
        if "BEEP_VOICE_INTERNAL_SECRET" in env_of(only_container(w))
    }
    assert holders == {f"{release}-channels"}


def test_the_announced_voice_address_reaches_only_the_call_hosts(default_manifests: list[Manifest]) -> None:
    voice = ("BEEP_VOICE_ANNOUNCED_ADDRESS", "BEEP_VOICE_HOST_ADDRESSES")
    for name, deployment in workloads(default_manifests).items():
        assert not set(voice) & set(env_of(only_container(deployment))), name
    manifests = render(
        "--set", "voice.announcedAddress=203.0.113.50", "--set", "voice.hostAddresses={10.0.0.5,fd00::5}"
    )
    holders = {}
    for name, deployment in workloads(manifests).items():
        env = env_of(only_container(deployment))
        if set(voice) & set(env):
            holders[name] = {key: env[key]["value"] for key in voice}
    assert holders == {
        f"{RELEASE}-channels": {
            "BEEP_VOICE_ANNOUNCED_ADDRESS": "203.0.113.50",
            "BEEP_VOICE_HOST_ADDRESSES": "10.0.0.5,fd00::5",
        }
    }


def test_search_backend_settings_and_the_reserved_shared_core() -> None:
    config = of_kind(render(), "ConfigMap")[f"{RELEASE}-config"]["data"]
    assert (config["BEEP_SEARCH_BACKEND"], config["BEEP_SEARCH_SOLR_URL"]) == ("sql", "")
    solr = "http://beep-solr:8983/solr"
    manifests = render("--set", "search.backend=solr", "--set", f"search.solrUrl={solr}")
    config = of_kind(manifests, "ConfigMap")[f"{RELEASE}-config"]["data"]
    assert (config["BEEP_SEARCH_BACKEND"], config["BEEP_SEARCH_SOLR_URL"]) == ("solr", solr)
    refused = helm("template", RELEASE, str(CHART), "--set", "search.sharedCoreBelowMessages=100")
    assert refused.returncode != 0 and "not implemented yet" in refused.stderr


def test_files_go_to_s3_with_shared_signing_keys_for_the_subgraphs_and_the_worker_only(
    default_manifests: list[Manifest],
) -> None:
    """Pods share no disk (and their root is read-only): the chart stores files in S3, and every pod
    signs media URLs with the same keys, from the existing Secret."""
    holders = set()
    for name, workload in workloads(default_manifests).items():
        env = env_of(only_container(workload))
        if "BEEP_MEDIA_STORAGE" not in env:
            assert not {k for k in env if k.startswith(("BEEP_MEDIA_", "BEEP_S3_"))}, name
            continue
        holders.add(name)
        assert env["BEEP_MEDIA_STORAGE"]["value"] == "s3"
        assert (env["BEEP_S3_BUCKET"]["value"], env["BEEP_S3_REGION"]["value"]) == ("beep-media", "us-east-1")
        assert env["BEEP_MEDIA_SIGNING_KEYS"]["valueFrom"]["secretKeyRef"] == {
            "name": "beep-secrets",
            "key": "media-signing-keys",
        }
        assert "BEEP_S3_ACCESS_KEY_ID" not in env  # botocore's chain (e.g. the pods' IAM role)
    assert holders == {f"{RELEASE}-{s}" for s in SUBGRAPHS} | {f"{RELEASE}-worker"}
    (job,) = of_kind(default_manifests, "Job").values()
    assert "BEEP_MEDIA_SIGNING_KEYS" not in env_of(job["spec"]["template"]["spec"]["containers"][0])


def test_media_values_reach_the_pods_and_half_a_credential_is_refused() -> None:
    manifests = render(
        *("--set", "media.publicUrl=https://chat.example.com/media"),
        *("--set", "media.s3.endpointUrl=https://s3.example.com", "--set", "media.s3.prefix=beep/"),
        *("--set", "media.s3.accessKeyIdKey=s3-id", "--set", "media.s3.secretAccessKeyKey=s3-secret"),
    )
    env = env_of(only_container(workloads(manifests)[f"{RELEASE}-messages"]))
    assert env["BEEP_MEDIA_PUBLIC_URL"]["value"] == "https://chat.example.com/media"
    assert (env["BEEP_S3_ENDPOINT_URL"]["value"], env["BEEP_S3_PREFIX"]["value"]) == (
        "https://s3.example.com",
        "beep/",
    )
    assert env["BEEP_S3_ACCESS_KEY_ID"]["valueFrom"]["secretKeyRef"]["key"] == "s3-id"
    assert env["BEEP_S3_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"]["key"] == "s3-secret"
    refusals = {
        "go together": ("--set", "media.s3.accessKeyIdKey=s3-id"),
        "every pod must sign": ("--set", "media.signingKeysKey="),
        "configured under `media`": ("--set", "config.extra.BEEP_MEDIA_STORAGE=local"),
        "the bucket": ("--set", "media.s3.bucket="),
    }
    for reason, values in refusals.items():
        refused = helm("template", RELEASE, str(CHART), *values)
        assert refused.returncode != 0 and reason in refused.stderr, (reason, refused.stderr)


def test_webhook_and_file_urls_are_built_on_the_routers_public_url(default_manifests: list[Manifest]) -> None:
    config = of_kind(default_manifests, "ConfigMap")[f"{RELEASE}-config"]["data"]
    assert config["BEEP_PUBLIC_URL"] == f"http://{RELEASE}-router:4000"  # in-cluster, by default
    public = "https://chat.example.com"
    configured = render("--set", f"router.publicUrl={public}")
    assert of_kind(configured, "ConfigMap")[f"{RELEASE}-config"]["data"]["BEEP_PUBLIC_URL"] == public
    refused = helm("template", RELEASE, str(CHART), "--set", "config.extra.BEEP_PUBLIC_URL=https://x.example")
    assert refused.returncode != 0 and "set router.publicUrl" in refused.stderr, refused.stderr


def test_cors_answers_the_routers_own_origin_unless_origins_are_listed(
    default_manifests: list[Manifest],
) -> None:
    # By default the router knows its public URL (its CORS allow-list) and lists no other origin
    router = env_of(only_container(workloads(default_manifests)[f"{RELEASE}-router"]))
    assert router["BEEP_PUBLIC_URL"]["value"] == f"http://{RELEASE}-router:4000"
    assert "BEEP_ROUTER_CORS_ORIGINS" not in router
    # router.corsOrigins is the allow-list
    listed = "https://app.example.com,https://admin.example.com"
    escaped = listed.replace(",", "\\,")  # helm --set splits values at unescaped commas
    configured = render(
        "--set", "router.publicUrl=https://chat.example.com", "--set", f"router.corsOrigins={escaped}"
    )
    router = env_of(only_container(workloads(configured)[f"{RELEASE}-router"]))
    assert router["BEEP_PUBLIC_URL"]["value"] == "https://chat.example.com"
    assert router["BEEP_ROUTER_CORS_ORIGINS"]["value"] == listed


# ---------------------------------------------------------------------------------------------
# the fan-out tier: one internal secret for the router and the subgraphs; the router autoscales


def test_the_router_and_every_subgraph_share_the_internal_secret(default_manifests: list[Manifest]) -> None:
    refs = {}
    for name, spec in pod_specs(default_manifests):
        if spec["containers"][0]["name"] == "migrate" or name.startswith("Job/"):
            continue
        env = {e["name"]: e for e in spec["containers"][0]["env"]}
        assert "BEEP_INTERNAL_SECRET" in env, f"{name} lacks BEEP_INTERNAL_SECRET"
        refs[name] = env["BEEP_INTERNAL_SECRET"]["valueFrom"]["secretKeyRef"]
    assert f"Deployment/{RELEASE}-router" in refs
    assert {(r["name"], r["key"]) for r in refs.values()} == {("beep-secrets", "internal-secret")}


def test_the_router_and_every_subgraph_share_the_log_token_key(default_manifests: list[Manifest]) -> None:
    """One key for every process's log tokens (docs/logging.md), or one person's tokens differ by pod."""
    refs = {}
    for name, spec in pod_specs(default_manifests):
        env = {e["name"]: e for e in spec["containers"][0]["env"]}
        assert "BEEP_LOG_TOKEN_KEY" in env, f"{name} lacks BEEP_LOG_TOKEN_KEY"
        refs[name] = env["BEEP_LOG_TOKEN_KEY"]["valueFrom"]["secretKeyRef"]
    assert f"Deployment/{RELEASE}-router" in refs and f"Deployment/{RELEASE}-worker" in refs
    assert {(r["name"], r["key"]) for r in refs.values()} == {("beep-secrets", "log-token-key")}


def test_the_router_can_autoscale_on_cpu() -> None:
    assert not of_kind(render(), "HorizontalPodAutoscaler")
    manifests = render(
        "--set", "router.autoscaling.enabled=true", "--set", "router.autoscaling.maxReplicas=6"
    )
    (hpa,) = of_kind(manifests, "HorizontalPodAutoscaler").values()
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": f"{RELEASE}-router",
    }
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 6)
    assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    # The autoscaler owns the count: the Deployment does not pin one.
    assert "replicas" not in workloads(manifests)[f"{RELEASE}-router"]["spec"]


# ---------------------------------------------------------------------------------------------
# high-availability PostgreSQL (CloudNativePG)


def test_no_database_cluster_unless_asked(default_manifests: list[Manifest]) -> None:
    assert not of_kind(default_manifests, "Cluster")


def test_cloudnativepg_cluster_replicates_synchronously_and_beep_follows_its_primary() -> None:
    manifests = render("--set", "postgresql.cloudnativepg.enabled=true")
    cluster = of_kind(manifests, "Cluster")[f"{RELEASE}-db"]
    assert cluster["apiVersion"] == "postgresql.cnpg.io/v1"
    spec = cluster["spec"]
    assert spec["instances"] == 4  # one primary, three replicas
    assert spec["postgresql"]["synchronous"] == {"method": "any", "number": 1, "dataDurability": "required"}
    assert spec["affinity"]["podAntiAffinityType"] == "required"  # replicas on distinct nodes
    assert spec["bootstrap"]["initdb"]["secret"]["name"] == "beep-db-owner"
    rw = f"@{RELEASE}-db-rw:5432/beep"
    for name, pod in pod_specs(manifests):
        (container,) = pod["containers"]
        if container["name"] == "router":
            continue
        env = {e["name"]: e.get("value", "") for e in container["env"]}
        assert env["BEEP_DIRECTORY_URL"].endswith(rw), name
        assert env["BEEP_SHARD_DATABASES"] == f"0-63={env['BEEP_DIRECTORY_URL']}", name
    job = of_kind(manifests, "Job")[f"{RELEASE}-db-migrate"]
    # The cluster is part of the release, so the first migration can only run after the install.
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "post-install,pre-upgrade"
    assert job["spec"]["backoffLimit"] >= 10


def test_a_cluster_without_a_replica_is_refused() -> None:
    result = helm(
        "template",
        RELEASE,
        str(CHART),
        "--set",
        "postgresql.cloudnativepg.enabled=true",
        "--set",
        "postgresql.cloudnativepg.instances=1",
    )
    assert result.returncode != 0 and "at least 2" in result.stderr


# ---------------------------------------------------------------------------------------------
# the subgraphs are internal on the network too (NetworkPolicy, Istio mutual TLS)


def test_no_network_or_mesh_policy_unless_asked(default_manifests: list[Manifest]) -> None:
    assert not of_kind(default_manifests, "NetworkPolicy")
    assert not of_kind(default_manifests, "PeerAuthentication")


def test_network_policies_admit_only_the_releases_pods_to_each_subgraph() -> None:
    scraper = '{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}'
    manifests = render(
        "--set", "networkPolicy.enabled=true", "--set-json", f"networkPolicy.scrapers=[{scraper}]"
    )
    policies = of_kind(manifests, "NetworkPolicy")
    assert set(policies) == {f"{RELEASE}-{name}" for name in SUBGRAPHS}  # the router stays open
    for name, policy in policies.items():
        spec = policy["spec"]
        subgraph = name.removeprefix(f"{RELEASE}-")
        assert spec["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == subgraph
        assert spec["policyTypes"] == ["Ingress"]
        tcp, *rest = spec["ingress"]
        own = {"app.kubernetes.io/name": "beep", "app.kubernetes.io/instance": RELEASE}
        assert tcp["from"][0] == {"podSelector": {"matchLabels": own}}
        assert tcp["from"][1]["namespaceSelector"]["matchLabels"] == {
            "kubernetes.io/metadata.name": "monitoring"
        }
        assert [p["protocol"] for p in tcp["ports"]] == ["TCP"]
        # Only the call hosts take media from anywhere, and only over UDP.
        assert bool(rest) == (subgraph == "channels")
        for rule in rest:
            assert "from" not in rule and {p["protocol"] for p in rule["ports"]} == {"UDP"}


def test_istio_mutual_tls_is_strict_on_every_subgraph() -> None:
    manifests = render("--set", "mesh.istio.enabled=true")
    policies = of_kind(manifests, "PeerAuthentication")
    assert set(policies) == {f"{RELEASE}-{name}" for name in SUBGRAPHS}
    for policy in policies.values():
        assert policy["apiVersion"] == "security.istio.io/v1"
        assert policy["spec"]["mtls"] == {"mode": "STRICT"}
