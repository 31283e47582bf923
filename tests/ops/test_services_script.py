"""`deploy/services.sh` (`make services`): read-only and quick when all is set up; never restarts needlessly."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "deploy" / "services.sh"
DEFAULT_NOFILE = 20000


def beam_pid() -> int:
    out = subprocess.run(["pgrep", "-u", "rabbitmq", "-f", r"beam\.smp.* -s rabbit boot"], capture_output=True)
    pids = out.stdout.split()
    if not pids:
        pytest.skip("no local RabbitMQ broker (make services starts one)")
    return int(pids[0])


def soft_nofile(pid: int) -> int:
    line = next(x for x in Path(f"/proc/{pid}/limits").read_text().splitlines() if x.startswith("Max open files"))
    return int(line.split()[3])


def run(*args: str, **env: str) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    done = subprocess.run([str(SCRIPT), *args], env={**os.environ, **env}, capture_output=True, text=True, timeout=300)
    return done, time.monotonic() - started


def test_dry_run_changes_nothing() -> None:
    pid = beam_pid()
    done, seconds = run("--dry-run")
    assert done.returncode in (0, 2), done.stderr
    if soft_nofile(pid) < DEFAULT_NOFILE:
        assert done.returncode == 2 and f"would restart RabbitMQ (pid {pid})" in done.stdout
    assert beam_pid() == pid and seconds < 5


def test_second_run_is_quick_and_restarts_nothing() -> None:
    pid = beam_pid()
    # A test must not restart a shared broker: if its limit is below the default, hold it to the limit it has
    # (`make services` before the tests raises it; test_dry_run_changes_nothing covers that branch).
    env = {"RABBITMQ_NOFILE": str(min(DEFAULT_NOFILE, soft_nofile(pid)))}
    assert run("--dry-run", **env)[0].returncode == 0, "services need setting up: run `make services` first"
    first, _ = run(**env)
    second, seconds = run(**env)
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    assert "ready" in second.stdout and "restart" not in second.stdout + second.stderr
    assert beam_pid() == pid
    assert seconds < 2, f"a run with nothing to do took {seconds:.1f} s"


STUBS = {
    # The broker is a `sleep` whose pid is in $STATE/pid; starting it runs the real `ulimit` of the script.
    "pgrep": 'p=$(cat "$STATE/pid" 2>/dev/null) && kill -0 "$p" 2>/dev/null && echo "$p"',
    "rabbitmqctl": 'case "$2" in stop) kill "$(cat "$STATE/pid")";; await_startup) exit 0;; *) exit 1;; esac',
    "runuser": 'shift 3; exec "$@"',  # drops `-u rabbitmq --`, keeps `sh -c 'ulimit -n N && exec rabbitmq-server …'`
    "rabbitmq-server": '[ -n "$FAKE_LOW" ] && ulimit -Sn 1024; sleep 300 >/dev/null 2>&1 & echo $! > "$STATE/pid"',
    "systemctl": "exit 1",
    "ss": '[ -n "$FAKE_CLIENTS" ] && echo "ESTAB 0 0 127.0.0.1:5672 127.0.0.1:40000"; exit 0',
    "curl": "exit 0",
    "pg_isready": "exit 0",
    "psql": "exit 0",
}


@pytest.fixture
def stubbed(tmp_path: Path) -> dict[str, str]:
    """An environment in which the script manages a fake broker started with the PAM default limit."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in STUBS.items():
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)
    # Not a child of this process, like a real broker, so that it does not linger as a zombie once stopped.
    low = subprocess.run(["sh", "-c", "ulimit -Sn 1024; sleep 300 >/dev/null 2>&1 & echo $!"], capture_output=True)
    (tmp_path / "pid").write_text(low.stdout.decode().strip())
    env = {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "STATE": str(tmp_path),
        "RABBITMQ_LIMITS_FILE": str(tmp_path / "limits.conf"),
    }
    yield env
    for pid in {low.stdout.decode().strip(), (tmp_path / "pid").read_text().strip()}:
        subprocess.run(["kill", pid], capture_output=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="the restart path runs as root")
def test_a_broker_below_the_limit_is_restarted_with_it(stubbed: dict[str, str], tmp_path: Path) -> None:
    old = int((tmp_path / "pid").read_text())
    done, _ = run(**stubbed)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"restart RabbitMQ (pid {old}): its open-files limit is 1024, below 20000" in done.stdout
    new = int((tmp_path / "pid").read_text())
    assert new != old and soft_nofile(new) >= DEFAULT_NOFILE
    assert "rabbitmq soft nofile 20000" in (tmp_path / "limits.conf").read_text()


@pytest.mark.skipif(os.geteuid() != 0, reason="the restart path runs as root")
def test_a_limit_still_low_after_the_restart_fails_loudly(stubbed: dict[str, str]) -> None:
    done, _ = run(**stubbed, FAKE_LOW="1")
    assert done.returncode == 1
    assert "open-files limit of 1024, below 20000, even after a restart" in done.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="the restart path runs as root")
def test_a_broker_with_clients_is_not_restarted_unless_asked(stubbed: dict[str, str], tmp_path: Path) -> None:
    old = (tmp_path / "pid").read_text()
    done, _ = run(**stubbed, FAKE_CLIENTS="1")
    assert done.returncode == 1 and "1 AMQP clients are connected" in done.stderr
    assert "RESTART_RABBITMQ=1 make services" in done.stderr and (tmp_path / "pid").read_text() == old
    done, _ = run(**stubbed, FAKE_CLIENTS="1", RESTART_RABBITMQ="1")
    assert done.returncode == 0 and (tmp_path / "pid").read_text() != old
