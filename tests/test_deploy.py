"""The docker compose example for replicas (deploy/) is valid and means what docs/scale-out.md
says: docker does not run here, so the file is checked as data. Every CRATE_MIRROR_* variable
must be a setting the mirror accepts, with the values given; volumes, dependencies and the load
balancer's config must name things that exist."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from mirror.config import load_settings

ROOT = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file())
COMPOSE = ROOT / "deploy" / "docker-compose.replicas.yml"
REPLICAS = ("replica-a", "replica-b")


def _compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


def test_the_services_are_there_and_depend_on_what_exists() -> None:
    services = _compose()["services"]
    assert {"minio", "bucket", "lb", *REPLICAS} <= set(services)
    for name, service in services.items():
        assert "image" in service or "build" in service, name
        depends = service.get("depends_on", [])
        for dep in depends if isinstance(depends, list) else dict(depends):
            assert dep in services, f"{name} depends on unknown {dep}"


def test_each_replica_is_a_valid_mirror_configuration() -> None:
    """The environment, read exactly as `serve` reads it, gives a replica on the bucket with
    its own id and the shared audit directory; the two differ only in their id."""
    services = _compose()["services"]
    settings = {}
    for name in REPLICAS:
        env = {k: str(v) for k, v in services[name]["environment"].items()}
        assert env["AWS_SECRET_ACCESS_KEY"]  # credentials from the usual AWS variables
        mirror_env = {k: v for k, v in env.items() if k.startswith("CRATE_MIRROR_")}
        settings[name] = load_settings(None, env=mirror_env)
    a, b = (settings[n] for n in REPLICAS)
    assert a.replica_id == "replica-a" and b.replica_id == "replica-b"
    assert a.s3_bucket == b.s3_bucket == "crate-mirror"
    assert a.s3_endpoint == "http://minio:9000" and a.s3_record_key == b.s3_record_key
    assert a.audit_root == b.audit_root and a.audit_directory != b.audit_directory
    assert a.public_url == b.public_url  # cargo is sent to the load balancer, not a replica


def test_volumes_are_declared_and_the_audit_volume_is_shared() -> None:
    data = _compose()
    declared = set(data["volumes"])
    mounts: dict[str, list[str]] = {}
    for name, service in data["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if not source.startswith("."):
                assert source in declared, f"{name} mounts undeclared volume {source}"
            mounts.setdefault(name, []).append(volume)
    audit = [m for m in mounts["replica-a"] if m.endswith("/var/lib/crate-mirror-audit")]
    assert audit and audit == [
        m for m in mounts["replica-b"] if m.endswith("/var/lib/crate-mirror-audit")
    ]
    assert mounts["replica-a"][0] != mounts["replica-b"][0]  # each its own cache


def test_the_load_balancer_config_exists_and_names_both_replicas() -> None:
    lb = _compose()["services"]["lb"]
    config = next(v.split(":")[0] for v in lb["volumes"] if v.startswith("./"))
    text = (COMPOSE.parent / config).read_text()
    servers = re.findall(r"^\s*server\s+([\w-]+):8080", text, re.MULTILINE)
    assert sorted(servers) == sorted(REPLICAS)
    assert "proxy_next_upstream" in text and "http_503" in text
