"""The library API of issue 5 and 4 on real sockets: node.table(), node.watch(), node.keys."""

from __future__ import annotations

import os

import trio
from runtime_harness import converged, start_cluster, wait_for

from swimnet import Keyring
from swimnet.tables import ChangeKind


async def test_table_handle_and_watch_with_snapshot_then_changes() -> None:
    async with trio.open_nursery() as nursery:
        a, b, c = await start_cluster(nursery, 3, prefix="t")
        await wait_for(lambda: converged([a.node, b.node, c.node]), what="membership")
        for h in (a, b):
            await h.node.join_network("ovnet")
        await a.node.table("ovnet", "overlay_peer").put("ep-a", b"A")
        await wait_for(lambda: b.node.table("ovnet", "overlay_peer").get("ep-a") == b"A", what="replication")
        assert c.node.tables.items("ovnet", "overlay_peer") == {}  # not a member of ovnet

        async with b.node.watch("ovnet", "overlay_peer") as events:
            first = await events.__anext__()
            assert (first.kind, first.key, first.value) == (ChangeKind.CREATED, "ep-a", b"A")
            await a.node.table("ovnet", "overlay_peer").put("ep-a", b"A2")
            await a.node.table("ovnet", "other").put("x", b"ignored by this watch")
            # (a delete right behind the update could supersede it in flight: wait for it)
            await wait_for(lambda: b.node.table("ovnet", "overlay_peer").get("ep-a") == b"A2")
            await a.node.table("ovnet", "overlay_peer").delete("ep-a")
            seen = []
            with trio.fail_after(20):
                async for change in events:
                    seen.append((change.kind, change.key, change.value))
                    if change.kind is ChangeKind.DELETED:
                        break
            assert seen == [(ChangeKind.UPDATED, "ep-a", b"A2"), (ChangeKind.DELETED, "ep-a", b"A2")]
        assert b.node.table("ovnet", "overlay_peer").items() == {}
        for h in (a, b, c):
            await h.stop()


async def test_cluster_wide_key_rotation_with_encryption_on() -> None:
    old, new = os.urandom(32), os.urandom(32)
    async with trio.open_nursery() as nursery:
        handles = [
            await nursery.start(_run_encrypted, f"k{i}", Keyring([old])) for i in range(4)
        ]
        for h in handles[1:]:
            assert await h.node.join([handles[0].seed]) == 1
        nodes = [h.node for h in handles]
        await wait_for(lambda: converged(nodes), what="encrypted cluster")
        keys = nodes[2].keys
        for result in (
            await keys.install(new),
            await keys.use(Keyring.id_of(new)),
            await keys.remove(Keyring.id_of(old)),
        ):
            assert result.ok and len(result.acked) == 3, result
        assert all(n.keyring is not None and n.keyring.keys() == (new,) for n in nodes)
        listing = keys.list()
        assert listing.primary == Keyring.id_of(new) and listing.ids == (Keyring.id_of(new),)
        refused = sum(v for n in nodes for k, v in n.stats.items() if k.startswith("drop_auth"))
        assert refused == 0
        assert converged(nodes)
        for h in handles:
            await h.stop()


async def _run_encrypted(name: str, ring: Keyring, *, task_status: trio.TaskStatus[object]) -> None:
    from runtime_harness import fast_config, run_node

    await run_node(fast_config(name, keyring=ring, label="test"), task_status=task_status)
