"""Outside CONNECTOR_ENV=sandbox no service starts on a sandbox credential, and each says what to set."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from shared.settings import Settings, refuse_sandbox_credentials, sandbox_credentials
from tests.support.processes import ROOT

REAL = {
    "webhook_secret": "s3cret-webhook",
    "acumatica_password": "real-password",
    "rithum_shared_secret": "real-shared-secret",
    "rithum_refresh_token": "real-refresh-token",
    "rithum_ftp_url": "ftp://merchant:real-ftp-password@ftp.example.com:21",
}


def test_every_sandbox_default_is_named() -> None:
    assert sandbox_credentials(Settings()) == [
        "WEBHOOK_SECRET",
        "ACUMATICA_PASSWORD",
        "RITHUM_SHARED_SECRET",
        "RITHUM_REFRESH_TOKEN",
        "RITHUM_FTP_URL (its password)",
    ]
    assert sandbox_credentials(Settings(**REAL)) == []


@pytest.mark.parametrize(
    ("amqp_url", "refused"),
    [
        ("amqp://guest:guest@127.0.0.1:5672/", False),
        ("amqp://guest:guest@localhost/", False),
        ("amqp://guest:guest@rabbit.internal:5672/", True),
        ("amqp://connector:guest@10.0.0.5/", True),
        ("amqp://connector:long-random@rabbit.internal/", False),
    ],
)
def test_the_guest_account_only_on_a_local_broker(amqp_url: str, refused: bool) -> None:
    found = sandbox_credentials(Settings(**REAL, amqp_url=amqp_url))
    assert found == (["AMQP_URL (the guest account, on a broker that is not local)"] if refused else [])


def test_sandbox_mode_allows_the_defaults_and_production_refuses_them() -> None:
    refuse_sandbox_credentials(Settings(connector_env="sandbox"))
    refuse_sandbox_credentials(Settings(**REAL))
    with pytest.raises(SystemExit, match="set WEBHOOK_SECRET, ACUMATICA_PASSWORD"):
        refuse_sandbox_credentials(Settings())


@pytest.mark.parametrize(
    "args", [["services.ingress"], ["services.scheduler"], ["services.consumers", "product"]], ids=lambda a: a[0]
)
def test_each_service_refuses_to_start_on_sandbox_credentials(args: list[str]) -> None:
    env = {k: v for k, v in os.environ.items() if k not in {"CONNECTOR_ENV", *(name.upper() for name in REAL)}}
    env |= {"CONNECTOR_ENV": "production", "ACUMATICA_PASSWORD": REAL["acumatica_password"]}
    done = subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 1, done.stderr
    message = done.stderr.strip().splitlines()[-1]
    assert message.startswith("refusing to start with sandbox credentials (CONNECTOR_ENV='production')")
    assert "WEBHOOK_SECRET" in message and "RITHUM_FTP_URL" in message and "ACUMATICA_PASSWORD" not in message
