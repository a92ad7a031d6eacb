"""The chart's backup CronJob: `beep backup create` on a schedule, its key from a Secret as a file."""

from __future__ import annotations

import subprocess

import pytest

from tests.deploy.chart import CHART, HELM, env_of, of_kind, render

pytestmark = pytest.mark.deploy


def test_no_backup_job_unless_enabled() -> None:
    assert not of_kind(render(), "CronJob")


def test_backup_job_runs_beep_backup_with_the_key_as_a_file_and_the_database_settings() -> None:
    manifests = render("--set", "backup.enabled=true", "--set", "backup.keep=7")
    (job,) = of_kind(manifests, "CronJob").values()
    spec = job["spec"]
    assert spec["concurrencyPolicy"] == "Forbid"
    pod = spec["jobTemplate"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["command"] == [
        "beep",
        "backup",
        "create",
        "--to",
        "s3://beep-backups/beep",
        "--keep",
        "7",
        "--key-file",
        "/var/run/beep-backup/key",
    ]
    env = env_of(container)
    assert {"BEEP_DIRECTORY_URL", "BEEP_SHARD_DATABASES", "BEEP_DATABASE_PASSWORD", "BEEP_S3_BUCKET"} <= set(
        env
    )
    assert "BEEP_BACKUP_KEY" not in env  # the key is a read-only file, never an environment variable
    key_volume = next(v for v in pod["volumes"] if v["name"] == "key")
    assert key_volume["secret"]["secretName"] == "beep-backup-key"
    assert key_volume["secret"]["defaultMode"] == 0o400
    mount = next(m for m in container["volumeMounts"] if m["name"] == "key")
    assert mount["readOnly"] is True and mount["mountPath"] == "/var/run/beep-backup"


def test_backup_to_its_own_store_and_to_a_volume() -> None:
    own = render(
        "--set",
        "backup.enabled=true",
        "--set",
        "backup.s3.endpointUrl=https://offsite.example.test",
        "--set",
        "backup.s3.accessKeyIdKey=bid",
        "--set",
        "backup.s3.secretAccessKeyKey=bsecret",
    )
    (job,) = of_kind(own, "CronJob").values()
    env = env_of(job["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0])
    assert env["BEEP_BACKUP_S3_ENDPOINT_URL"]["value"] == "https://offsite.example.test"
    assert env["BEEP_BACKUP_S3_ACCESS_KEY_ID"]["valueFrom"]["secretKeyRef"]["key"] == "bid"

    volume = render(
        "--set",
        "backup.enabled=true",
        "--set",
        "backup.to=/backups/beep",
        "--set",
        "backup.persistentVolumeClaim=beep-backups",
    )
    (job,) = of_kind(volume, "CronJob").values()
    pod = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert {"name": "backups", "persistentVolumeClaim": {"claimName": "beep-backups"}} in pod["volumes"]


@pytest.mark.parametrize(
    "values",
    [
        ("--set", "backup.to=/backups/x"),  # a directory without a volume
        ("--set", "backup.to=/var/x", "--set", "backup.persistentVolumeClaim=c"),  # outside the mount
        ("--set", "backup.to=ftp://x"),
        ("--set", "backup.s3.accessKeyIdKey=only-one"),
    ],
)
def test_unusable_backup_settings_are_refused(values: tuple[str, ...]) -> None:
    done = subprocess.run(
        [str(HELM), "template", "beep", str(CHART), "--set", "backup.enabled=true", *values],
        capture_output=True,
        text=True,
    )
    assert done.returncode != 0 and "backup" in done.stderr, done.stderr
