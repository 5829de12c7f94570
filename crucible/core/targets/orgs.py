"""Each organisation's target policy: its own lists in ``org_target_policies``, else the installation's.

An organisation's row replaces the lists of the settings (``CRUCIBLE_TARGET_HOSTS``,
``_NETWORKS``, ``_PORTS``, ``_DEFAULTS``); an organisation without one has those. The mode
and the stack's own endpoints always come from the settings: an organisation cannot
switch production into dev mode, nor list its way past the stack unless it names an
endpoint exactly (see :mod:`crucible.core.targets.policy`).

Workers read policies through :meth:`OrgTargetPolicies.policy_for`, which keeps each for
``ttl_s`` seconds, so a change applies to runs within that time.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from crucible.core.tables import OrgTargetPolicyRow
from crucible.core.targets.policy import CheckedTarget, TargetPolicy
from crucible.core.targets.recent import Recent
from crucible.core.targets.stack import policy_from_settings, settings_mode, stack_endpoints

if TYPE_CHECKING:
    from crucible.core.config import Settings

#: How long a worker keeps an organisation's policy before reading it again.
DEFAULT_POLICY_TTL_S = 30.0

POLICIES = OrgTargetPolicyRow.__table__  # type: ignore[attr-defined]
_ROW = text("SELECT hosts, networks, ports, include_defaults FROM org_target_policies WHERE org_id = :org_id")


@dataclass(frozen=True)
class OrgLists:
    """What an organisation lists, as stored: comma-separated, like the settings."""

    hosts: str = ""
    networks: str = ""
    ports: str = ""
    include_defaults: bool = True


def _joined(values: Iterable[str | int]) -> str:
    return ",".join(str(v).strip() for v in values if str(v).strip())


class OrgTargetPolicies:
    """Reads and writes organisations' target policies; caches what it reads for ``ttl_s``."""

    def __init__(
        self, engine: AsyncEngine, settings: Settings, *, ttl_s: float = DEFAULT_POLICY_TTL_S
    ) -> None:
        self.engine = engine
        self.settings = settings
        self._installation = policy_from_settings(settings)
        self._cache: Recent[str, TargetPolicy] = Recent(ttl_s)

    async def set_policy(
        self,
        org_id: str,
        *,
        hosts: Iterable[str] = (),
        networks: Iterable[str] = (),
        ports: Iterable[int | str] = (),
        include_defaults: bool = True,
    ) -> TargetPolicy:
        """Give ``org_id`` its own lists, in place of the installation's; the policy they make.

        Raises ``ValueError`` naming the first entry that is not a host, network or port.
        """
        lists = OrgLists(_joined(hosts), _joined(networks), _joined(ports), include_defaults)
        policy = self._build(lists)  # refuses a wrong entry before anything is stored
        values = {
            "org_id": org_id,
            "hosts": lists.hosts,
            "networks": lists.networks,
            "ports": lists.ports,
            "include_defaults": include_defaults,
            "updated_at": datetime.now(UTC),
        }
        async with self.engine.begin() as conn:
            await conn.execute(
                insert(POLICIES)
                .values(**values)
                .on_conflict_do_update(index_elements=["org_id"], set_=values)
            )
        self._cache.forget(org_id)
        return policy

    async def clear_policy(self, org_id: str) -> None:
        """Give ``org_id`` the installation's lists again."""
        async with self.engine.begin() as conn:
            await conn.execute(POLICIES.delete().where(POLICIES.c.org_id == org_id))
        self._cache.forget(org_id)

    async def lists_of(self, org_id: str) -> OrgLists | None:
        """What ``org_id`` lists itself; None: it has the installation's lists."""
        async with self.engine.connect() as conn:
            row = (await conn.execute(_ROW, {"org_id": org_id})).first()
        return None if row is None else OrgLists(row[0], row[1], row[2], bool(row[3]))

    async def policy_for(self, org_id: str) -> TargetPolicy:
        """The policy ``org_id``'s runs are judged by, read at most every ``ttl_s`` seconds."""
        policy = self._cache.get(org_id)
        if policy is None:
            lists = await self.lists_of(org_id)
            policy = self._installation if lists is None else self._build(lists)
            self._cache.put(org_id, policy)
        return policy

    async def check(self, org_id: str, url: str) -> CheckedTarget:
        """Check ``url`` against ``org_id``'s policy without sending anything.

        Raises:
            TargetRefused: the policy refuses it; ``str()`` names the origin, the reason and ``rule``.
        """
        return await (await self.policy_for(org_id)).check_url(url)

    def _build(self, lists: OrgLists) -> TargetPolicy:
        return TargetPolicy.build(
            mode=settings_mode(self.settings),
            hosts=lists.hosts.split(","),
            networks=lists.networks.split(","),
            ports=lists.ports.split(","),
            include_defaults=lists.include_defaults,
            stack=stack_endpoints(self.settings),
        )
