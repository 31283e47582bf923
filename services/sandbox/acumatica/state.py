"""Everything one sandbox process holds, wired together (one tenant, in memory)."""

from __future__ import annotations

from .actions import Actions
from .auth import Auth
from .config import Knobs
from .guard import Cores, MinuteBudget, Stats
from .push import Push
from .render import Renderer
from .store import Store
from .upsert import Writer

USERS = {"admin": "admin"}
TENANT = "Company"
# OAuth client registered on Connected Applications; the connector's OAuth settings use these.
OAUTH_CLIENTS = {"sandbox-client": "sandbox-client-secret"}


class Sandbox:
    def __init__(self) -> None:
        self.knobs = Knobs()
        self.store = Store()
        self.writer = Writer(self.store)
        self.renderer = Renderer(self.store)
        self.stats = Stats()
        self.cores = Cores(lambda: self.knobs.concurrent_requests)
        self.budget = MinuteBudget()
        self.auth = Auth(
            users=USERS,
            tenant=TENANT,
            clients=OAUTH_CLIENTS,
            ttl=lambda: self.knobs.session_ttl,
            max_sessions=lambda: self.knobs.max_sessions,
        )
        self.push = Push(TENANT, lambda: self.knobs)
        self.store.listeners.append(self.push.on_changes)
        self.actions = Actions(self.store, lambda: self.knobs)

    def set_knobs(self, knobs: Knobs) -> None:
        self.knobs = knobs
        self.cores.wake()  # more cores may now serve queued requests

    def reset(self) -> None:
        """Back to an empty tenant with default limits: data, sessions, pushes, operations, stats."""
        self.store.clear()
        self.set_knobs(Knobs())
        self.budget = MinuteBudget()
        self.auth.reset()
        self.push.reset()
        self.actions.reset()
        self.stats.reset()
