"""`make run`: start the whole stack under honcho, configure the demo, print where things are.

The Procfile is the single list of processes (docker-compose.yml mirrors it; a test keeps them in
agreement). Settings in the environment pass through; an API token is made when none is set.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    env = dict(os.environ)
    venv_bin = str(Path(sys.executable).parent)
    env["PATH"] = f"{venv_bin}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("PYTHONUNBUFFERED", "1")
    env.setdefault("CONNECTOR_ENV", "sandbox")  # the stack runs on the sandboxes' credentials (the defaults)
    # The sandbox's license has no per-minute limit; a real tenant's limit comes from the environment.
    env.setdefault("ACUMATICA_REQUESTS_PER_MINUTE", "6000")
    generated = "API_TOKEN" not in env
    token = env.setdefault("API_TOKEN", secrets.token_urlsafe(24))
    port = env.get("INGRESS_PORT", "8000")

    if env.get("KEEP_SYNC_STATE") != "1":  # the sandboxes start empty, so does the sync state (deploy/state.py)
        subprocess.run([sys.executable, "-m", "deploy.state"], cwd=ROOT, env=env, check=True)
    proc = subprocess.Popen([f"{venv_bin}/honcho", "start", "-f", str(ROOT / "Procfile")], cwd=ROOT, env=env)
    signal.signal(signal.SIGINT, lambda *_: proc.send_signal(signal.SIGINT))
    signal.signal(signal.SIGTERM, lambda *_: proc.send_signal(signal.SIGTERM))

    demo = subprocess.run([sys.executable, "-m", "deploy.demo"], cwd=ROOT, env=env, check=False)
    banner = [
        "",
        "=" * 72,
        f"  Ops console:              http://127.0.0.1:{port}/console (sign in with the API token below)",
        f"  Connector API and docs:   http://127.0.0.1:{port}/docs",
        f"  Queues, jobs, config:     http://127.0.0.1:{port}/api/v1/queues (bearer token below)",
        f"  API token{' (generated)' if generated else ''}:    {token}",
        "  Acumatica sandbox:        http://127.0.0.1:8101  (admin at /_sandbox/)",
        "  Rithum sandbox:           http://127.0.0.1:8102  (admin at /_sandbox/), FTP on 2121",
        "  Consumer/scheduler /metrics and /healthz: ports 9101-9103 (see the Procfile)",
        f"  Demo set-up:              {'done' if demo.returncode == 0 else 'FAILED, see the log above'}",
        "  Stop with Ctrl-C.",
        "=" * 72,
        "",
    ]
    print("\n".join(banner), flush=True)
    return proc.wait()


if __name__ == "__main__":
    sys.exit(main())
