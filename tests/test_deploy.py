"""The Procfile (`make run`) and docker-compose.yml describe the same processes."""

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
INFRA = {"rabbitmq", "postgres", "migrate"}


def procfile() -> dict[str, str]:
    entries = {}
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, command = line.partition(":")
            entries[name.strip()] = command.strip()
    return entries


def compose() -> dict[str, dict]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]


def test_same_services_and_commands() -> None:
    services = {name: spec for name, spec in compose().items() if name not in INFRA}
    assert set(services) == set(procfile())
    for name, command in procfile().items():
        assert services[name]["command"] == command, name


def test_app_services_share_one_image_and_wait_for_migrations() -> None:
    services = compose()
    images = {spec["image"] for name, spec in services.items() if name not in {"rabbitmq", "postgres"}}
    assert len(images) == 1
    for name in procfile():
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert services["migrate"]["command"] == "python -m shared.db.migrate"


def test_dockerfile_installs_the_project() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert "pip install ." in text and "COPY services" in text and "COPY shared" in text


def compose_env() -> dict[str, str]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())["x-app"]["environment"]


def _option(command: str, name: str) -> int | None:
    words = command.split()
    return int(words[words.index(name) + 1]) if name in words else None


def test_every_consumer_and_the_scheduler_has_a_metrics_port_of_its_own() -> None:
    """`make run` starts them on one host: each serves /metrics and /healthz on its own port, which
    docker-compose publishes, and none takes a port another process of the stack listens on."""
    ports = {name: _option(command, "--metrics-port") for name, command in procfile().items()}
    metrics = {name: port for name, port in ports.items() if name == "scheduler" or name.startswith("consumer-")}
    assert None not in metrics.values(), metrics
    assert len(set(metrics.values())) == len(metrics)
    fixed = {8000} | {p for c in procfile().values() for o in ("--port", "--ftp-port") if (p := _option(c, o))}
    assert not fixed & set(metrics.values())
    services = compose()
    for name, port in metrics.items():
        assert f"{port}:{port}" in services[name]["ports"], name
    assert compose_env()["METRICS_HOST"] == "0.0.0.0"  # published ports reach the server inside the container
