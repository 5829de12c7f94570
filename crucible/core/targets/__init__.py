"""Target safety: which hosts, networks and ports runs may call, and the client that enforces it.

Wiring, once organisations exist: build one :func:`guarded_client` per worker process, and
around each run's HTTP work write ``with using_policy(policy): ...`` with the run's
organisation's :class:`TargetPolicy`. A request outside such a block (and with no policy
given to the client) is refused, so a forgotten call site fails closed.

CrucibleError
└── TargetRefused   the policy refuses a target; ``rule`` names the rule
"""

from crucible.core.targets.addresses import Kind
from crucible.core.targets.policy import (
    CheckedTarget,
    PolicyMode,
    Resolver,
    StackEndpoint,
    TargetPolicy,
    TargetRefused,
    system_resolver,
)
from crucible.core.targets.transport import CachingResolver, GuardedTransport, guarded_client, using_policy

__all__ = [
    "CachingResolver",
    "CheckedTarget",
    "GuardedTransport",
    "Kind",
    "PolicyMode",
    "Resolver",
    "StackEndpoint",
    "TargetPolicy",
    "TargetRefused",
    "guarded_client",
    "system_resolver",
    "using_policy",
]
