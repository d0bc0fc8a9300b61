"""The Docker plugin's calls over in-process agents (fake datapath, fake dockerd): the whole
network and endpoint life on two hosts, adoption and its refusal, every call refusing bad
bodies and unknown ids without changing anything, the reconcile, a restarted plugin."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

import attrs
import trio
from plugin_fixtures import Host, address_of, docker_id, docker_network, docker_run, two_hosts, unused
from test_agent_inprocess import eventually

from swimnet.agent.docker import state as st
from swimnet.agent.docker.endpoint_calls import handoff_name
from swimnet.agent.docker.follow import follow_network_creations
from swimnet.agent.docker.reconcile import reconcile
from swimnet.overlay import mac_from_ip

GATEWAY_OPTION = {"RequestAddressType": "com.docker.network.gateway"}


async def test_handshake_and_capabilities(tmp_path: Path) -> None:
    async with two_hosts(tmp_path) as (a, _, _):
        assert await a.ok("Plugin.Activate") == {"Implements": ["NetworkDriver", "IpamDriver"]}
        assert (await a.ok("NetworkDriver.GetCapabilities"))["Scope"] == "local"
        assert await a.ok("IpamDriver.GetCapabilities") == {
            "RequiresMACAddress": False,
            "RequiresRequestReplay": False,
        }
        spaces = await a.ok("IpamDriver.GetDefaultAddressSpaces")
        assert spaces == {"LocalDefaultAddressSpace": "swimnet", "GlobalDefaultAddressSpace": "swimnet"}


async def test_a_network_spans_two_hosts_and_endpoints_come_and_go(tmp_path: Path) -> None:
    async with two_hosts(tmp_path) as (a, b, drivers):
        net_a, pool_a = await docker_network(a, "pets")
        # nothing exists cluster-wide until the network is used (Docker never gives its name)
        assert a.runtime.overlay.view.network("pets") is None
        ep_a, joined = await docker_run(a, net_a, pool_a, "web")
        record = a.runtime.overlay.view.network("pets")
        assert record is not None and (record.subnet, record.gateway) == ("10.9.0.0/24", "10.9.0.1")
        assert joined == {
            "InterfaceName": {"SrcName": handoff_name(ep_a), "DstPrefix": "eth"},
            "Gateway": "10.9.0.1",
        }
        web = address_of(a, ep_a)
        spec = drivers.by_name["a"].attached[a.plugin.state.endpoints[ep_a].swimnet_id or ""]
        assert (spec.name, spec.ip, spec.mac) == ("web", f"{web}/24", mac_from_ip(web))
        assert (spec.netns, spec.handoff) == ("/run/docker/netns/web", handoff_name(ep_a))
        info = await a.ok("NetworkDriver.EndpointOperInfo", {"NetworkID": net_a, "EndpointID": ep_a})
        assert info["Value"]["swimnet_network"] == "pets" and info["Value"]["ip"] == f"{web}/24"
        ref = {"NetworkID": net_a, "EndpointID": ep_a, "Options": {}}
        assert await a.ok("NetworkDriver.ProgramExternalConnectivity", ref) == {}

        # host B: the same command adopts the network; its address is not A's
        await eventually(lambda: b.runtime.overlay.view.network("pets") is not None, "pets on b")
        net_b, pool_b = await docker_network(b, "pets")
        await eventually(
            lambda: (
                any(r.name == "web" for _, r, _ in b.runtime.overlay.view.endpoints("pets"))
                if b.runtime.overlay.view.is_joined("pets")
                else True
            ),
            "b sees web if it holds pets",
        )
        ep_b, _ = await docker_run(b, net_b, pool_b, "db")
        assert address_of(b, ep_b) not in (web, "10.9.0.1")  # the cluster's IPAM: no duplicate
        assert len(a.runtime.overlay.view.networks()) == 1
        # --ip pins an address; one in use is refused
        taken = await b.refused("IpamDriver.RequestAddress", {"PoolID": pool_b, "Address": web})
        assert web in taken
        free = unused(a, b)
        ep_pinned, _ = await docker_run(b, net_b, pool_b, "cache", ip=free)
        assert address_of(b, ep_pinned) == free

        # docker rm on A: Leave removes the endpoint cluster-wide, then the rest of Docker's calls
        await a.ok("NetworkDriver.Leave", {"NetworkID": net_a, "EndpointID": ep_a})
        await eventually(
            lambda: all(r.name != "web" for _, r, _ in b.runtime.overlay.view.endpoints("pets")),
            "web gone on b",
        )
        await a.ok("NetworkDriver.DeleteEndpoint", {"NetworkID": net_a, "EndpointID": ep_a})
        await a.ok("IpamDriver.ReleaseAddress", {"PoolID": pool_a, "Address": f"{web}/24"})
        # docker network rm on A: the swimnet network stays for B
        await a.ok("NetworkDriver.DeleteNetwork", {"NetworkID": net_a})
        await a.ok("IpamDriver.ReleaseAddress", {"PoolID": pool_a, "Address": "10.9.0.1/24"})
        await a.ok("IpamDriver.ReleasePool", {"PoolID": pool_a})
        assert a.plugin.state == st.PluginState()
        assert a.runtime.overlay.view.network("pets") is not None


async def test_a_conflicting_subnet_is_refused_with_both_subnets_named(tmp_path: Path) -> None:
    async with two_hosts(tmp_path) as (a, b, _):
        net_a, pool_a = await docker_network(a, "pets")
        await docker_run(a, net_a, pool_a, "web")
        await eventually(lambda: b.runtime.overlay.view.network("pets") is not None, "pets on b")
        net_b, pool_b = await docker_network(b, "pets", subnet="10.8.0.0/24")
        before = copy.deepcopy(b.plugin.state)
        refused = await b.refused("IpamDriver.RequestAddress", {"PoolID": pool_b, "Address": ""})
        assert "10.9.0.0/24" in refused and "10.8.0.0/24" in refused
        assert "--subnet 10.9.0.0/24" in refused
        assert b.plugin.state == before and b.plugin.state.networks[net_b].name is None
        # a pool without a subnet picks one nobody uses
        other = await a.ok("IpamDriver.RequestPool", {"Pool": ""})
        assert other["Pool"] == "10.224.0.0/24"
        again = await a.refused("IpamDriver.RequestPool", {"Pool": "10.9.0.0/24"})
        assert "already used" in again


def _hostile(net: str, ep: str, pool: str, used: str, free: str) -> dict[str, list[Any]]:
    """Per call: bodies it must refuse (bad JSON, bad types, unknown ids); `used` is the
    joined endpoint's address, `free` one nobody was given."""
    unknown = docker_id()
    common: list[Any] = [b"{not json", b"\xff\xfe", b"[1, 2]", b'"text"', b"null", {"NetworkID": 7}]
    return {
        "NetworkDriver.CreateNetwork": [
            *common,
            {"NetworkID": net, "IPv4Data": [{"Pool": "10.9.0.0/24", "AddressSpace": "swimnet"}]},
            {"NetworkID": unknown, "IPv4Data": "x"},
            {"NetworkID": unknown, "IPv4Data": [{"Pool": "10.7.0.0/24", "AddressSpace": "swimnet"}]},
            {"NetworkID": unknown, "IPv4Data": [{"Pool": "10.9.0.0/24", "AddressSpace": "default"}]},
            {"NetworkID": unknown, "IPv4Data": [], "IPv6Data": [{"Pool": "fd00::/64"}]},
            {"NetworkID": "../../etc", "IPv4Data": []},
            {"NetworkID": unknown, "Options": {"com.docker.network.generic": {"k": 1}}},
        ],
        "NetworkDriver.DeleteNetwork": [*common, {"NetworkID": unknown}, {}],
        "NetworkDriver.CreateEndpoint": [
            *common,
            {"NetworkID": unknown, "EndpointID": unknown, "Interface": {"Address": "10.9.0.9/24"}},
            {"NetworkID": net, "EndpointID": ep, "Interface": {"Address": f"{used}/24"}},
            {"NetworkID": net, "EndpointID": unknown, "Interface": {"Address": f"{free}/24"}},
            {"NetworkID": net, "EndpointID": unknown, "Interface": {"Address": "10.1.0.2/24"}},
            {"NetworkID": net, "EndpointID": unknown, "Interface": {}},
            {"NetworkID": net, "EndpointID": unknown, "Interface": {"Address": 5}},
            {"NetworkID": net, "EndpointID": unknown, "Interface": {"AddressIPv6": "fd00::2/64"}},
            {"NetworkID": net, "EndpointID": unknown, "Interface": "x"},
        ],
        "NetworkDriver.EndpointOperInfo": [*common, {"NetworkID": net, "EndpointID": unknown}],
        "NetworkDriver.DeleteEndpoint": [*common, {"NetworkID": unknown, "EndpointID": ep}],
        "NetworkDriver.Join": [
            *common,
            {"NetworkID": net, "EndpointID": unknown, "SandboxKey": "/run/docker/netns/x"},
            {"NetworkID": net, "EndpointID": ep, "SandboxKey": "/run/docker/netns/x"},  # joined already
            {"NetworkID": net, "EndpointID": ep, "SandboxKey": "relative"},
            {"NetworkID": net, "EndpointID": ep, "SandboxKey": ["/x"]},
        ],
        "NetworkDriver.Leave": [*common, {"NetworkID": net, "EndpointID": unknown}, {"NetworkID": net}],
        "NetworkDriver.DiscoverNew": [*common[:5], {"DiscoveryType": "one"}, {"DiscoveryData": 3}],
        "NetworkDriver.DiscoverDelete": [*common[:5], {"DiscoveryType": 1.5}],
        "NetworkDriver.ProgramExternalConnectivity": [*common, {"NetworkID": net, "EndpointID": unknown}],
        "NetworkDriver.RevokeExternalConnectivity": [*common, {"NetworkID": unknown, "EndpointID": ep}],
        "IpamDriver.RequestPool": [
            *common[:5],
            {"Pool": "10.9.0.0/24"},  # this host's pool already
            {"Pool": "10.9.0.1/24"},
            {"Pool": "not-a-cidr"},
            {"Pool": "fd00::/64", "V6": True},
            {"Pool": "10.5.0.0/24", "V6": "yes"},
            {"Pool": "10.5.0.0/16", "SubPool": "10.5.1.0/24"},
            {"Pool": "10.5.0.0/24", "AddressSpace": "other"},
            {"Pool": "10.5.0.0/24", "Options": {"x": "y"}},
            {"Pool": "10.5.0.0/24", "Options": []},
        ],
        "IpamDriver.ReleasePool": [*common[:5], {"PoolID": "swimnet/10.7.0.0/24"}, {"PoolID": pool}, {}],
        "IpamDriver.RequestAddress": [
            *common[:5],
            {"PoolID": "swimnet/10.7.0.0/24"},
            {"PoolID": pool, "Address": "10.1.0.5"},
            {"PoolID": pool, "Address": "10.9.0.255"},
            {"PoolID": pool, "Address": used},  # in use
            {"PoolID": pool, "Address": "bogus"},
            {"PoolID": pool, "Address": "10.9.0.7", "Options": GATEWAY_OPTION},  # the pool has one
            {"PoolID": pool, "Options": {"RequestAddressType": 3}},
        ],
        "IpamDriver.ReleaseAddress": [
            *common[:5],
            {"PoolID": pool, "Address": free},
            {"PoolID": "swimnet/10.7.0.0/24", "Address": used},
            {"PoolID": pool},
        ],
    }


async def test_every_call_refuses_bad_bodies_and_unknown_ids_and_changes_nothing(tmp_path: Path) -> None:
    async with two_hosts(tmp_path) as (a, _, drivers):
        net, pool = await docker_network(a, "pets")
        ep, _ = await docker_run(a, net, pool, "web")
        state_file = os.path.join(a.runtime.state_dir, st.FILE_NAME)
        hostile = _hostile(net, ep, pool, address_of(a, ep), unused(a))
        assert set(hostile) == set(a.plugin.calls) - {
            "Plugin.Activate",
            "NetworkDriver.GetCapabilities",
            "IpamDriver.GetCapabilities",
            "IpamDriver.GetDefaultAddressSpaces",
        }
        refused = a.runtime.overlay.stats["docker_refused"]
        for call, bodies in hostile.items():
            for body in bodies:
                before = (copy.deepcopy(a.plugin.state), Path(state_file).read_bytes())
                views = (a.runtime.overlay.view.networks(), dict(drivers.by_name["a"].attached))
                await a.refused(call, body)
                assert (a.plugin.state, Path(state_file).read_bytes()) == before, (call, body)
                assert (a.runtime.overlay.view.networks(), dict(drivers.by_name["a"].attached)) == views
        assert a.runtime.overlay.stats["docker_refused"] == refused + sum(map(len, hostile.values()))


async def test_the_reconcile_removes_what_docker_forgot_and_keeps_the_rest(tmp_path: Path) -> None:
    async with two_hosts(tmp_path) as (a, b, _):
        net, pool = await docker_network(a, "pets")
        kept, _ = await docker_run(a, net, pool, "web")
        gone, _ = await docker_run(a, net, pool, "old")
        gone_swimnet = a.plugin.state.endpoints[gone].swimnet_id
        gone_ip = address_of(a, gone)
        a.dockerd.detach(net, gone)  # removed while the agent was away: no Leave came

        # dockerd unreachable: nothing is removed
        a.dockerd.down = True
        a.clock.now += 3600
        assert (await reconcile(a.plugin, a.clock.now)).skipped is not None
        assert gone in a.plugin.state.endpoints
        a.dockerd.down = False
        # within the grace: kept; after it: removed cluster-wide, address given back
        outcome = await reconcile(a.plugin, a.plugin.state.endpoints[gone].created + 1)
        assert outcome.removed_endpoints == ()
        outcome = await reconcile(a.plugin, a.clock.now)
        assert outcome.removed_endpoints == (gone,)
        assert set(a.plugin.state.endpoints) == {kept}
        assert gone_ip not in a.plugin.state.pools[pool].addresses
        assert a.runtime.overlay.local.get(gone_swimnet or "") is None
        await eventually(
            lambda: (
                all(r.name != "old" for _, r, _ in b.runtime.overlay.view.endpoints("pets"))
                if b.runtime.overlay.view.is_joined("pets")
                else True
            ),
            "old gone on b",
        )
        # a swimnet endpoint the plugin made but never recorded (a crash in between) goes too
        ops = a.plugin.ops
        orphan = await ops.endpoints.create(
            "pets", "orphan", unused(a), netns="/run/docker/netns/o", handoff="vh0123456789ab"
        )
        outcome = await reconcile(a.plugin, a.clock.now)
        assert outcome.orphans == (orphan.spec.endpoint_id,)
        # a network dockerd no longer knows, without endpoints, is forgotten with its pool
        net2, pool2 = await docker_network(a, "spare", subnet="10.10.0.0/24")
        del a.dockerd.networks[net2]
        outcome = await reconcile(a.plugin, a.clock.now + 3600)
        assert outcome.forgotten_networks == (net2,) and pool2 not in a.plugin.state.pools
        assert kept in a.plugin.state.endpoints


async def test_a_restarted_plugin_knows_dockers_ids_again(tmp_path: Path) -> None:
    async with two_hosts(tmp_path) as (a, _, _):
        net, pool = await docker_network(a, "pets")
        ep, _ = await docker_run(a, net, pool, "web")
        again = a.plugin_for()
        assert again.state == a.plugin.state
        restarted = Host(a.runtime, again, a.dockerd, a.clock)
        await restarted.ok("NetworkDriver.Leave", {"NetworkID": net, "EndpointID": ep})
        await restarted.ok("NetworkDriver.DeleteEndpoint", {"NetworkID": net, "EndpointID": ep})
        # a corrupt state file is a start error, never an empty state
        path = os.path.join(a.runtime.state_dir, st.FILE_NAME)
        doc = json.loads(Path(path).read_text())
        doc["pools"][pool]["addresses"] = "all"
        with open(path, "w") as handle:
            json.dump(doc, handle)
        try:
            a.plugin_for()
        except Exception as exc:
            assert "corrupt" in str(exc) and "pools." in str(exc)
        else:
            raise AssertionError("a corrupt state file was accepted")
        assert attrs.has(st.Pool)


def test_a_state_file_of_the_wrong_shape_is_refused(tmp_path: Path) -> None:
    bad = {
        "not json": "{",
        "no version": "{}",
        "pools not an object": '{"version": 1, "pools": []}',
        "unknown pool field": '{"version": 1, "pools": {"p": {"subnet": "10.9.0.0/24", "x": 1}}}',
        "addresses not a list": '{"version": 1, "pools": {"p": {"subnet": "10.9.0.0/24", "addresses": "a"}}}',
        "created not a number": '{"version": 1, "endpoints": {"e": {"network_id": "n", "ip": "i", '
        '"mac": "m", "created": "now"}}}',
        "sandbox not a string": '{"version": 1, "endpoints": {"e": {"network_id": "n", "ip": "i", '
        '"mac": "m", "created": 1, "sandbox": 5}}}',
    }
    for what, text in bad.items():
        (tmp_path / st.FILE_NAME).write_text(text)
        try:
            st.load(str(tmp_path))
        except Exception as exc:
            assert st.FILE_NAME in str(exc), (what, exc)
        else:
            raise AssertionError(f"{what}: accepted")
    state = st.PluginState(pools={"p": st.Pool("10.9.0.0/24", "10.9.0.1", ["10.9.0.5"], "n")})
    st.save(str(tmp_path), state)
    assert st.load(str(tmp_path)) == state


async def test_a_created_network_is_bound_at_once_from_dockerds_events(tmp_path: Path) -> None:
    async with two_hosts(tmp_path) as (a, b, _), trio.open_nursery() as nursery:
        # a network created while nothing followed the events is bound on subscription
        early, _ = await docker_network(a, "early", subnet="10.7.0.0/24")
        assert a.plugin.state.networks[early].name is None
        nursery.start_soon(follow_network_creations, a.plugin)
        nursery.start_soon(follow_network_creations, b.plugin)
        await eventually(lambda: a.plugin.state.networks[early].name == "early", "early bound")
        # docker network create: the swimnet network exists cluster-wide before any container
        await docker_network(a, "pets")
        await eventually(lambda: b.runtime.overlay.view.network("pets") is not None, "pets on b")
        # the same name with another subnet: refused, counted, left unbound
        refused = b.runtime.overlay.stats["docker_bind_refused"]
        conflicting, _ = await docker_network(b, "pets", subnet="10.8.0.0/24")
        await eventually(lambda: b.runtime.overlay.stats["docker_bind_refused"] == refused + 1, "refused")
        assert b.plugin.state.networks[conflicting].name is None
        nursery.cancel_scope.cancel()
