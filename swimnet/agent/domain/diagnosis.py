"""What an operator looks at: the members with their RTTs, a network's raw tables, and what
the datapath programmed.

Rules: read-only; `tables` answers only for a network this agent holds (NOT_FOUND names the
agents that do hold it), `fdb` only with a datapath (CONFLICT without one) and for a known
network (NOT_FOUND); a datapath that fails to answer is FAILED. Members are listed alive
first, then by name; this agent's own row has no RTT.
"""

from __future__ import annotations

from swimnet.agent.domain.cluster import TablesDump
from swimnet.agent.domain.overlay import OverlayAgent
from swimnet.agent.domain.values import MemberInfo
from swimnet.agent.errors import conflict, failed, not_found
from swimnet.errors import DatapathError
from swimnet.wire.messages import State


class Diagnosis:
    def __init__(self, agent: OverlayAgent) -> None:
        self.agent = agent

    def members(self) -> list[MemberInfo]:
        cluster = self.agent.cluster
        members = sorted(cluster.members(), key=lambda m: (m.state is not State.ALIVE, m.name))
        out = []
        for m in members:
            local = m.name == cluster.name
            out.append(MemberInfo(m, None if local else cluster.rtt_estimate(m.name), local))
        return out

    def tables(self, network: str) -> TablesDump:
        """Every stored entry of a network (tombstones and hidden entries included), its
        attachments and its digest, like NetworkDB's diagnostic server."""
        cluster = self.agent.cluster
        if not self.agent.view.is_joined(network):
            agents = cluster.agents(network)
            where = f"; agents that do: {', '.join(agents)}" if agents else ""
            raise not_found(
                f"this agent does not hold network {network!r} (no local endpoint or service here){where}",
                "network",
            )
        return cluster.dump(network)

    async def fdb(self, network: str) -> list[dict[str, str]]:
        """The kernel's entries for a network: (mac, vtep, ip) rows."""
        driver = self.agent.driver
        if driver is None:
            raise conflict("datapath disabled: this agent runs with --no-datapath")
        if self.agent.view.network(network) is None:
            raise not_found(f"network {network!r} not found", "network")
        try:
            return await driver.fdb(network)
        except DatapathError as exc:
            raise failed(f"datapath: {exc}") from None
