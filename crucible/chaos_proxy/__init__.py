"""A standalone fault-injecting proxy process with a Toxiproxy-like JSON control API.

It runs outside the worker, so a worker crash does not take a fault away silently: the
fault stays until a rollback activity removes it. Start it with
``python -m crucible.chaos_proxy --host 127.0.0.1 --port 8474``.
"""

from crucible.chaos_proxy.app import create_app
from crucible.chaos_proxy.registry import ProxyRegistry

__all__ = ["ProxyRegistry", "create_app"]
