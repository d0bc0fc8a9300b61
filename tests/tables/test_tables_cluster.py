"""NetworkDB's scenarios on a pure in-test cluster (tables_harness): gossip and sync only."""

from __future__ import annotations

from tables_harness import Cluster

from swimnet.tables import ChangeKind, TablesConfig, TableState
from swimnet.wire.codec import pack_packet


def names(n: int) -> list[str]:
    return [f"node{i:02d}" for i in range(n)]


def test_bulk_sync_of_entries_written_before_a_join() -> None:
    c = Cluster(names(2))
    c.join("node00", "net")
    for i in range(1000):
        c.put("node00", "net", f"key{i}", b"value%d" % i)
    c.join("node01", "net")  # join-time sync with every peer of the network
    assert c["node01"].items("net", "t") == c["node00"].items("net", "t")
    assert len(c["node01"].items("net", "t")) == 1000
    created = [ch for ch in c.changes["node01"] if ch.kind is ChangeKind.CREATED]
    assert len(created) == 1000 and {ch.owner for ch in created} == {"node00"}


def test_crud_on_five_nodes() -> None:
    c = Cluster(names(5))
    for n in c.nodes:
        c.join(n, "net")
    for n in c.nodes:
        c.put(n, "net", f"{n}-key", b"v1")
    c.gossip_until_quiet()
    expected = {f"{n}-key": b"v1" for n in c.nodes}
    assert all(node.items("net", "t") == expected for node in c.nodes.values())
    for n in c.nodes:
        c.put(n, "net", f"{n}-key", b"v2")
    c.gossip_until_quiet()
    assert all(node.items("net", "t") == {k: b"v2" for k in expected} for node in c.nodes.values())
    for n in c.nodes:
        c.delete(n, "net", f"{n}-key")
    c.gossip_until_quiet()
    for node in c.nodes.values():
        assert node.items("net", "t") == {}
        assert all(e.deleted for e in node.entries("net")) and len(node.entries("net")) == 5  # pending gc


def test_garbage_collection_after_the_reap_interval() -> None:
    c = Cluster(names(3), TablesConfig(reap_interval=30.0))
    c.join("node00", "net")
    c.join("node01", "net")
    for i in range(5):
        c.put("node00", "net", f"k{i}", b"v")
    c.gossip_until_quiet()
    for i in range(5):
        c.delete("node00", "net", f"k{i}")
    c.gossip_until_quiet()
    c.advance(10.0)
    c.join("node02", "net")  # late joiner gets the tombstones with their residual reap time
    assert [len(n.entries("net")) for n in c.nodes.values()] == [5, 5, 5]
    assert c["node02"].items("net", "t") == {}
    c.advance(20.0)
    assert [len(n.entries("net")) for n in c.nodes.values()] == [0, 0, 0]
    c.advance(15.0)
    c.full_sync()
    assert [len(n.entries("net")) for n in c.nodes.values()] == [0, 0, 0]


def test_twenty_nodes_create_the_same_key_at_once() -> None:
    c = Cluster(names(20))
    for n in c.nodes:
        c.join(n, "net")
    for n in c.nodes:
        c.put(n, "net", "contested", n.encode())
    c.gossip_until_quiet()
    c.full_sync()
    winners = {node.get("net", "t", "contested") for node in c.nodes.values()}
    assert winners == {b"node19"}  # equal Lamport times: the greatest owner name
    for n in c.nodes:
        c.delete(n, "net", "contested")
    c.gossip_until_quiet()
    c.full_sync()
    assert {node.get("net", "t", "contested") for node in c.nodes.values()} == {None}
    assert len({tuple(node.entries("net")) for node in c.nodes.values()}) == 1


def test_failed_node_entries_hidden_then_restored() -> None:
    c = Cluster(names(3), TablesConfig(reap_interval=60.0))
    for n in c.nodes:
        c.join(n, "net")
    c.put("node02", "net", "ep", b"10.0.0.2")
    c.gossip_until_quiet()
    c.down.add("node02")
    c.everyone("member_failed", "node02")
    assert c["node00"].get("net", "t", "ep") is None
    assert c["node00"].network_peers("net") == ["node01"]
    c.full_sync()  # hidden entries are not synced as live, and not dropped by a sync
    assert c["node01"].get("net", "t", "ep") is None and len(c["node01"].entries("net")) == 1
    c.advance(30.0)
    c.down.discard("node02")
    c.everyone("member_alive", "node02")
    assert all(n.get("net", "t", "ep") == b"10.0.0.2" for n in c.nodes.values())
    # failed again, past the reap time: gone, and back only through the owner itself
    c.down.add("node02")
    c.everyone("member_failed", "node02")
    c.advance(61.0)
    assert c["node00"].entries("net") == [] and c["node00"].network_peers("net") == ["node01"]
    c.down.discard("node02")
    c.everyone("member_alive", "node02")
    c.full_sync()
    assert all(n.get("net", "t", "ep") == b"10.0.0.2" for n in c.nodes.values())


def test_left_node_entries_are_gone() -> None:
    c = Cluster(names(3))
    for n in c.nodes:
        c.join(n, "net")
    c.put("node02", "net", "ep", b"x")
    c.put("node00", "net", "other", b"y")
    c.gossip_until_quiet()
    c.down.add("node02")
    c.everyone("member_left", "node02")
    c.full_sync()
    for n in ("node00", "node01"):
        assert c[n].items("net", "t") == {"other": b"y"}  # hidden at once
    c.advance(c.config.left_grace_interval)  # dropped after the grace (a leave can be forged)
    for n in ("node00", "node01"):
        assert c[n].items("net", "t") == {"other": b"y"}
        assert c[n].attachments.networks_of("node02") == []
        assert {e.owner for e in c[n].entries("net")} == {"node00"}


def test_non_members_never_store_a_networks_entries() -> None:
    c = Cluster(names(4))
    for n in ("node00", "node01", "node02"):
        c.join(n, "net")
    c.join("node03", "elsewhere")
    for i in range(20):
        c.put(f"node0{i % 3}", "net", f"k{i}", b"v")
    outsider = c["node03"]
    # even when handed the network's traffic directly
    for name in ("node00", "node01"):
        payloads = c[name].gossip_payloads("net", 1400, 2)
        c.deliver("node03", pack_packet(payloads))
    c.gossip_until_quiet()
    c.full_sync()
    request = c["node00"].start_sync("node03", c.now, ["net"])
    assert request is not None
    reply, _ = outsider.handle_sync_request(request, c.now)
    assert all(not s.entries and not s.hashes and not s.summaries for s in reply.sections)
    assert outsider.entries("net") == [] and outsider.items("net", "t") == {}
    assert outsider.stats["table_not_joined"] > 0 and outsider.stats["sync_not_joined"] > 0
    assert len(c["node01"].items("net", "t")) == 20


def test_leaving_a_network_and_coming_back() -> None:
    c = Cluster(names(3))
    for n in c.nodes:
        c.join(n, "net")
    c.put("node00", "net", "a", b"1")
    c.put("node01", "net", "b", b"2")
    c.gossip_until_quiet()
    c.leave("node00", "net")
    c.gossip_until_quiet()
    assert c["node01"].items("net", "t") == {"b": b"2"}
    assert c["node00"].items("net", "t") == {}
    c.join("node00", "net")
    assert c["node00"].items("net", "t") == {"b": b"2"}
    c.full_sync()
    assert all(n.items("net", "t") == {"b": b"2"} for n in c.nodes.values())


def test_restarted_node_deletes_its_previous_lifes_entries() -> None:
    c = Cluster(names(3))
    for n in c.nodes:
        c.join(n, "net")
    c.put("node02", "net", "stale", b"old")
    c.put("node02", "net", "kept", b"old")
    c.gossip_until_quiet()
    c.nodes["node02"] = TableState("node02")  # no state survives a restart
    c.join("node02", "net")
    c.put("node02", "net", "kept", b"new")
    c.gossip_until_quiet()
    c.full_sync()
    assert all(n.items("net", "t") == {"kept": b"new"} for n in c.nodes.values())
    assert c["node02"].stats["refuted_entry"] == 2


def test_sync_is_split_into_rounds_under_a_small_frame_cap() -> None:
    c = Cluster(names(2), TablesConfig(sync_chunk_bytes=16 * 1024))
    c.join("node00", "net")
    for i in range(2000):
        c.put("node00", "net", f"key{i}", b"x" * 40)
    c["node01"].join_network("net", c.now)
    c.push_pull("node00", "node01")
    stats = c.sync("node01", "node00", ["net"])
    assert stats.rounds > 5 and stats.reply_bytes / stats.rounds < 20 * 1024
    assert len(c["node01"].items("net", "t")) == 2000
    # and the other way round (pushes from the initiator are split too)
    c.join("node01", "other")
    for i in range(2000):
        c.put("node01", "other", f"key{i}", b"y" * 40)
    c["node00"].join_network("other", c.now)
    c.push_pull("node00", "node01")
    stats = c.sync("node01", "node00", ["other"])
    assert len(c["node00"].items("other", "t")) == 2000
    assert stats.request_bytes / stats.rounds < 20 * 1024


def test_round_limit_stops_a_conversation() -> None:
    c = Cluster(names(2), TablesConfig(sync_chunk_bytes=4 * 1024, sync_max_rounds=2))
    c.join("node00", "net")
    for i in range(500):
        c.put("node00", "net", f"key{i}", b"x" * 40)
    c["node01"].join_network("net", c.now)
    c.push_pull("node00", "node01")
    stats = c.sync("node01", "node00", ["net"])
    assert stats.rounds == 2 and c["node01"].stats["sync_round_limit"] == 1
    assert 0 < len(c["node01"].items("net", "t")) < 500
    c.full_sync()
    assert len(c["node01"].items("net", "t")) == 500
