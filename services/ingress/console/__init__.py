"""The ops console at /console, served by the ingress process (see README "Ops console")."""

from services.ingress.console.routes import install, router

__all__ = ["install", "router"]
