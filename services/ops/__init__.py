"""Operator tools run from a shell: `python -m services.ops …` (dead letters for now)."""
