from tests.chaos_proxy.support import control, echo_port

__all__ = ["control", "echo_port"]
