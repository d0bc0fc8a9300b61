"""An in-memory datapath driver that records how the daemon calls it.

Like the real driver, `attach` refuses an endpoint whose network no snapshot has named yet
(the daemon must send the network first) and an endpoint without a netns or pid;
`fail_attach` makes every attach fail with a DatapathError. `fdb` answers from the latest
snapshot's remote endpoints. `published` (set by the test) is called during `attach` to
record whether the endpoint was already visible in the tables at that moment.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Callable

import trio

from swimnet.errors import DatapathError, SwimnetError
from swimnet.overlay import LocalEndpointSpec, OverlaySnapshot


class FakeDriver:
    def __init__(
        self, node_tag: str, vtep: str, underlay_mtu: int = 1500, reconcile_interval: float = 30.0
    ) -> None:
        self.node_tag = node_tag
        self.vtep = vtep
        self.underlay_mtu = underlay_mtu
        self.stats: Counter[str] = Counter()
        """Like the real driver's counters (exported by /metrics)."""
        self.calls: list[tuple[str, str]] = []
        self.snapshots: list[OverlaySnapshot] = []
        self.known_networks: set[str] = set()
        self.attached: dict[str, LocalEndpointSpec] = {}
        self.published_at_attach: list[bool] = []
        self.published: Callable[[LocalEndpointSpec], bool] | None = None
        self.fail_attach: str | None = None
        self.running = False
        self.closed = False

    @property
    def last(self) -> OverlaySnapshot:
        return self.snapshots[-1]

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        self.running = True
        task_status.started()
        try:
            await trio.sleep_forever()
        finally:
            self.running = False

    def update(self, snapshot: OverlaySnapshot) -> None:
        self.calls.append(("update", ",".join(sorted(snapshot.networks))))
        self.snapshots.append(snapshot)
        self.known_networks.update(snapshot.networks)

    async def attach(self, endpoint: LocalEndpointSpec) -> None:
        await trio.lowlevel.checkpoint()
        self.calls.append(("attach", endpoint.endpoint_id))
        if self.published is not None:
            self.published_at_attach.append(self.published(endpoint))
        if self.fail_attach is not None:
            raise DatapathError(self.fail_attach)
        if not endpoint.netns and not endpoint.pid:
            raise DatapathError("the endpoint names no container")
        if endpoint.network not in self.known_networks:
            raise DatapathError(f"network {endpoint.network!r} is unknown to the datapath")
        self.attached[endpoint.endpoint_id] = endpoint

    async def detach(self, endpoint: LocalEndpointSpec) -> None:
        await trio.lowlevel.checkpoint()
        self.calls.append(("detach", endpoint.endpoint_id))
        self.attached.pop(endpoint.endpoint_id, None)

    async def fdb(self, network: str) -> list[dict[str, str]]:
        await trio.lowlevel.checkpoint()
        if not self.snapshots:
            return []
        return [
            {"mac": record.mac, "vtep": record.vtep, "ip": record.address}
            for net, _, record in self.last.remote
            if net == network
        ]

    async def close(self) -> None:
        self.closed = True


class FakeResolverPool:
    """Stands in for the daemon's DNS resolver pool: records the overlay's calls; a netns in
    `fail` makes `attach` fail like a resolver that cannot start."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, ...]] = []
        self.fail: set[str] = set()
        self.scopes: dict[str, list[str]] = {}

    async def attach(self, netns: str, endpoint_id: str, network: str) -> object:
        await trio.lowlevel.checkpoint()
        self.calls.append(("attach", netns, endpoint_id, network))
        if netns in self.fail:
            raise ResolverStartError(f"cannot serve DNS in {netns}")
        self.scopes.setdefault(netns, []).append(network)
        return None

    async def detach(self, endpoint_id: str) -> None:
        await trio.lowlevel.checkpoint()
        self.calls.append(("detach", endpoint_id))

    def networks_of(self, netns: str) -> tuple[str, ...]:
        return tuple(dict.fromkeys(self.scopes.get(netns, ())))

    @contextlib.asynccontextmanager
    async def open(self, overlay: object) -> AsyncIterator[FakeResolverPool]:
        yield self


class ResolverStartError(SwimnetError):
    pass
