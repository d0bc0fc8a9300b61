"""The agent's domain used directly, without HTTP: typed arguments, error kinds with the
field at fault, rollback when a later step fails, and the import boundaries of the roles."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Mapping

import pytest
import trio
from fake_driver import FakeDriver

from swimnet.agent.domain.cluster import Cluster, open_agent_node
from swimnet.agent.domain.endpoints import Endpoints
from swimnet.agent.domain.networks import Networks
from swimnet.agent.domain.overlay import OverlayAgent
from swimnet.agent.domain.ports import SavedIpam
from swimnet.agent.domain.services import Services
from swimnet.agent.errors import ErrorKind, OperationError
from swimnet.config import Config
from swimnet.overlay import PEERS_TABLE, LocalEndpointSpec, NetworkRecord
from swimnet.tables.config import TablesConfig


class Store:
    """An endpoint and IPAM store that fails on demand (like a full disk; the IPAM part
    with its own switch)."""

    def __init__(self) -> None:
        self.saved: dict[str, LocalEndpointSpec] = {}
        self.networks: dict[str, NetworkRecord] = {}
        self.ipam: dict[str, SavedIpam] = {}
        self.left = False
        self.fail = False
        self.fail_ipam = False

    def _check(self) -> None:
        if self.fail:
            raise OSError(28, "No space left on device")

    def add_endpoint(self, spec: LocalEndpointSpec, network: NetworkRecord) -> None:
        self._check()
        self.saved[spec.endpoint_id] = spec
        self.networks[spec.network] = network

    def remove_endpoint(self, endpoint_id: str) -> None:
        self._check()
        spec = self.saved.pop(endpoint_id)
        if not any(s.network == spec.network for s in self.saved.values()):
            self.networks.pop(spec.network, None)

    def save_networks(self, records: Mapping[str, NetworkRecord]) -> None:
        self._check()
        self.networks.update(records)

    def load_ipam(self) -> tuple[dict[str, SavedIpam], bool]:
        return dict(self.ipam), self.left

    def save_ipam(self, network: str, saved: SavedIpam | None) -> None:
        if self.fail_ipam:
            raise OSError(28, "No space left on device")
        if saved is None:
            self.ipam.pop(network, None)
        else:
            self.ipam[network] = saved

    def save_ipam_left(self, left: bool) -> None:
        self.left = left


@pytest.fixture
async def agent() -> AsyncIterator[tuple[OverlayAgent, Store, FakeDriver]]:
    config = Config.local(name="d", bind="127.0.0.1:0")
    async with open_agent_node(config, incarnation=1, tables_config=TablesConfig()) as node:
        store, driver = Store(), FakeDriver("d", "127.0.0.1")
        overlay = OverlayAgent(Cluster(node), store, ipam_store=store, driver=driver, sync_timeout=0.2)
        await overlay.start(alone=True, bootstrap=True)
        yield overlay, store, driver


async def expect(kind: ErrorKind, field: str | None, call: Awaitable[object]) -> OperationError:
    with pytest.raises(OperationError) as caught:
        await call
    assert (caught.value.kind, caught.value.field) == (kind, field), caught.value
    return caught.value


async def test_operations_take_typed_arguments_and_raise_kinds_with_fields(
    agent: tuple[OverlayAgent, Store, FakeDriver],
) -> None:
    overlay, _, _ = agent
    networks, endpoints, services = Networks(overlay), Endpoints(overlay), Services(overlay)
    await expect(ErrorKind.INVALID, "subnet", networks.create("n", "10.0.0.1/24"))
    await expect(ErrorKind.INVALID, "gateway", networks.create("n", "10.0.0.0/24", gateway="10.9.0.1"))
    info = await networks.create("n", "10.0.0.0/24", vni=5000, gateway="10.0.0.1")
    assert (info.vni, info.record.gateway, info.owner, info.held) == (5000, "10.0.0.1", "d", False)
    await expect(ErrorKind.CONFLICT, "name", networks.create("n", "10.1.0.0/24"))
    await expect(ErrorKind.CONFLICT, "vni", networks.create("m", "10.1.0.0/24", vni=5000))
    await expect(ErrorKind.NOT_FOUND, "network", endpoints.create("nope", "e", "10.0.0.2"))
    await expect(ErrorKind.INVALID, "netns", endpoints.create("n", "e", "10.0.0.2", netns="a", pid=1))
    await expect(ErrorKind.INVALID, "ip", endpoints.create("n", "e", "10.7.0.2"))
    await expect(ErrorKind.CONFLICT, "ip", endpoints.create("n", "e", "10.0.0.1"))
    ep = await endpoints.create("n", "e", "10.0.0.2", mac="02:AA:00:00:00:02")
    assert ep.published and ep.spec.mac == "02:aa:00:00:00:02" and ep.spec.ip == "10.0.0.2/24"
    await expect(ErrorKind.INVALID, "mode", services.create("n", "s", mode="weird"))
    await expect(ErrorKind.INVALID, "vip", services.create("n", "s", mode="dnsrr", vip="10.0.0.9"))
    await expect(ErrorKind.CONFLICT, "vip", services.create("n", "s", vip="10.0.0.2"))
    await expect(ErrorKind.INVALID, "backends", services.create("n", "s", vip="10.0.0.9", backends=["x"]))
    service = await services.create("n", "s", vip="10.0.0.9", ports=[("tcp", 80, 8080)], backends=["e"])
    assert service.record.backends == (ep.spec.endpoint_id,)
    await expect(ErrorKind.CONFLICT, "name", networks.remove("n"))
    assert Networks(overlay).inspect("n").endpoints is not None


async def test_a_failed_save_undoes_the_attach_and_publishes_nothing(
    agent: tuple[OverlayAgent, Store, FakeDriver],
) -> None:
    overlay, store, driver = agent
    await Networks(overlay).create("n", "10.0.0.0/24")
    store.fail = True
    error = await expect(ErrorKind.FAILED, None, Endpoints(overlay).create("n", "e", "10.0.0.2", netns="c1"))
    assert "cannot save state" in error.message
    assert [c[0] for c in driver.calls if c[0] != "update"] == ["attach", "detach"]
    assert overlay.local == {} and driver.attached == {} and "n" not in overlay.cache
    assert not overlay.view.is_joined("n")  # the scope joined for the request was released


async def test_a_failed_save_on_remove_reattaches_and_keeps_the_endpoint(
    agent: tuple[OverlayAgent, Store, FakeDriver],
) -> None:
    overlay, store, driver = agent
    await Networks(overlay).create("n", "10.0.0.0/24")
    ep = await Endpoints(overlay).create("n", "e", "10.0.0.2", netns="c1")
    endpoint_id = ep.spec.endpoint_id
    store.fail = True
    await expect(ErrorKind.FAILED, None, Endpoints(overlay).remove("e"))
    assert endpoint_id in overlay.local and endpoint_id in driver.attached
    assert overlay.view.visible("n", PEERS_TABLE, endpoint_id) is not None
    store.fail = False
    removed = await Endpoints(overlay).remove(endpoint_id)
    assert removed.endpoint_id == endpoint_id and overlay.local == {} and driver.attached == {}
    with trio.fail_after(5):
        while overlay.view.visible("n", PEERS_TABLE, endpoint_id) is not None:
            await trio.sleep(0.01)


def test_the_roles_import_no_kernel_library() -> None:
    """Every agent module imports without pyroute2 or the Linux datapath (the daemon builds
    the driver lazily), and the CLI's modules without the daemon's run loop."""
    code = (
        "import pkgutil, importlib, sys, swimnet.agent as a\n"
        "from swimnet.agent.cli import main\n"
        "assert 'swimnet.agent.daemon.run' not in sys.modules, 'cli imports the daemon'\n"
        "for m in pkgutil.walk_packages(a.__path__, 'swimnet.agent.'):\n"
        "    importlib.import_module(m.name)\n"
        "bad = sorted(n for n in sys.modules if n.startswith(('pyroute2', 'swimnet.datapath')))\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
