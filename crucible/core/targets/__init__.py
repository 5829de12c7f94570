"""Target safety: which hosts, networks and ports runs may call, and the client that enforces it.

Wiring, once organisations exist: build one client per worker process with
:func:`~crucible.core.targets.stack.client_from_settings` (the installation's policy), and
around each run's HTTP work write ``with using_policy(policy): ...`` with the run's
organisation's :class:`TargetPolicy`. A bare :func:`guarded_client` has no policy of its own:
a request outside such a block is refused, so a forgotten call site fails closed.

CrucibleError
└── TargetRefused   the policy refuses a target; ``rule`` names the rule
"""

from crucible.core.targets.addresses import Kind
from crucible.core.targets.policy import (
    TARGET_REFUSED,
    CheckedTarget,
    PolicyMode,
    Resolver,
    StackEndpoint,
    TargetPolicy,
    TargetRefused,
    refusal_in,
    system_resolver,
)
from crucible.core.targets.transport import (
    CachingResolver,
    GuardedTransport,
    TargetClient,
    guarded_client,
    using_policy,
)

__all__ = [
    "TARGET_REFUSED",
    "CachingResolver",
    "CheckedTarget",
    "GuardedTransport",
    "Kind",
    "PolicyMode",
    "Resolver",
    "StackEndpoint",
    "TargetClient",
    "TargetPolicy",
    "TargetRefused",
    "guarded_client",
    "refusal_in",
    "system_resolver",
    "using_policy",
]
