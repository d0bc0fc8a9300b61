"""IPAM without a central allocator: unique endpoint and VIP addresses from claims that every
member agreed to, over the replicated tables.

The state. For each network, every member M publishes one record, the entry
`record_key(network, M)` of table `IPAM_TABLE` ("ipam_blocks") in the IPAM scope: its
claims (a set of aligned blocks of the subnet, or one address), each with a stamp and a
"confirmed" flag, and its votes (yes / no) on the other members' claims still pending.
Allocations stay where they are: the endpoint and service entries of the network. Every
decision here is a pure function of an `IpamView` (the tables read through the public
reader, the caller's own allocations, `now`, an injected `random.Random`) that returns the
member's new record to write.

The rules (`allocator`, `knowledge`):
1. a member hands out only addresses of its own confirmed claims, skipping every address
   an allocation holds (hidden ones of failed members included), the network, broadcast
   and gateway addresses, and the others' single claims inside its blocks;
2. a claim is confirmed by its owner once every voter said yes: every member attached to
   the IPAM scope in the owner's view, failed ones included (a hidden record's votes still
   count; a failed member that had not voted blocks), members known to have left and
   members membership never reported excepted (`view_from_tables`), and, for an
   address inside another member's block, that block's owner (it alone knows whether the
   address is free);
3. a voter says no to a claim that conflicts with one it defends: its own claims, the
   others' confirmed ones (visible, hidden, or remembered after a restart) and the pending
   ones it already said yes to; among pending claims first seen together, the lowest
   (stamp, owner) gets the yes. A yes is sticky: kept while the claim is pending, and no
   conflicting claim gets a yes while the first one lives;
4. a claimer withdraws a pending claim on any no, or on seeing a conflicting confirmed or
   older claim; a withdrawn claim was never used;
5. a claim ends only by its owner's decision (release: none of its allocations is there),
   or with the owner's record: it left (when the tables drop its hidden record, after the
   left grace, 30 s; it stops voting at once; a member that saw it fail instead, and so
   keeps its record and entries hidden, learns the leave from a record attesting it,
   `Record.gone`, and then counts neither its claims nor its allocations), or the tables
   reaped it (failed for
   `reap_interval`, 30 min): a failed member's blocks and allocations stay reserved until
   then, and are released together;
6. the agent persists its record before publishing it, and the others' claims it knows
   (`remember`); after a restart the record is re-published (`restore`: stamps are never
   reused, `Record.high`; after a graceful leave its claims are voted on again, the others
   having dropped them), remembered claims are defended as confirmed until their owner's
   record says otherwise, `reap_interval` passes, or the owner is known to have left (a
   member that saw the leave attests it in its record, `Record.gone`: a member restarted
   after others left learns it from their records, not from membership, which only
   reports leaves it witnessed), and the member claims nothing before its first sync with
   a peer (`IpamView.synced`).

Why no two members hand out one address. Two claims that conflict are never both confirmed
while both live. Take C by A confirmed at t1 and D by B confirmed at t2, and a member M that
was a voter of both (M may be A or B: a claimer defends its own claims). M said yes to
both, yet when it judged the second it still defended the first: its own claim, one it
had said yes to (sticky), or one it knew confirmed (it keeps what it knows while the owner's
record lives, across restarts by rule 6). Rule 3 forbids that yes. Such an M exists unless
the two views of the scope share no member at all: members enter a view when it learns of
them from the members it syncs with, and leave it only by leaving gracefully (they never
vote again; their claims stay reserved while the tables keep their hidden record, the
left grace) or by being reaped, or while membership never reported them (an attachment
learnt by sync from a member that left meanwhile), so disjoint views mean two clusters
that never met, or the two sides of a partition older than reap_interval (see below). A
single address inside a block is the block owner's call (rule 2): it refuses an address
it handed out, and never hands out one it agreed to give. So an address is handed out by
one member at most, and by that member once while allocated (it sees its own
allocations).

Under a partition each side sees the other side's members failed, yet they stay voters:
- safe: nothing new is confirmed on either side (every claim needs the other side's yes);
- served at once: addresses of the blocks each member already holds. A member keeps as many
  free addresses as it uses (two blocks at least) and, as it hands addresses out, claims
  more when less than a quarter of that is free, so a partition goes unnoticed until a
  member's spare runs out;
- waits: a member's first address in a network, a block claim once its spare is gone, an
  address pinned outside its own blocks. They wait until the heal (then one vote round,
  about 0.4 s on a LAN: gossip every 200 ms, the agent's 50 ms refresh), or until the
  tables reap the other side (reap_interval, 30 min). A crashed member blocks new claims
  the same way until it returns or is reaped. The caller bounds the wait and fails with
  the names `Waiting.waiting_for` gives ("ip: allocation in network N waits for n3, n4").
Uniqueness over availability, as Swarm's IPAM (central, on a manager quorum) would refuse;
with no fixed membership to take a majority of, we ask every member we know of.

Why the IPAM scope is the cluster (the agent's CLUSTER_SCOPE, every agent holds it) and
not the network's own scope: network scopes are joined on demand, so two agents creating
a network's first endpoints at the same instant would each see itself alone and confirm
alone. Every agent that may allocate must be a voter before it allocates. The price:
every agent votes on every network's claims (one small record per agent and network) and
a failed agent holds back new claims in every network (not allocations from held blocks).

Outside the guarantee (as for the tables themselves, which hold what a member knows in
memory): a partition longer than reap_interval (each side reaps the other and may reuse
its addresses; the agent's conflict report shows duplicates after the heal); a member that
learnt the cluster, while the rest was out of reach, only from members that have since
lost what they knew (decommissioned, or reinstalled without their state directory): it may
confirm a claim against one it never heard of; agents that formed a cluster apart (they
share no network definition: the agent only allocates in networks it learnt from the
cluster); an agent that loses its state directory yet keeps its endpoints; a record that
does not decode (a newer format) stalls new claims.

The agent's calls (its domain layer; `node` is the agent's node, `rng` its
random.Random, `scope` CLUSTER_SCOPE; records are written with `node.table(scope,
IPAM_TABLE).put(record_key(network, me), write)` after persisting `write`; one member's
decisions run one at a time, each one's writes and allocation applied before the next;
`mine` is the offsets of its local endpoints, published or not, and of the VIPs of the
services it owns; `address_of` decodes an overlay_peer or services entry into (address,
label)):

    pool = Pool(record.subnet, record.gateway)
    view = view_from_tables(node.tables, scope=scope, network=net, me=me, pool=pool,
                            used=uses_from_entries(node.tables.entries(net), pool, address_of),
                            freed=freed_from_entries(node.tables.entries(net), pool, address_of),
                            mine=own_endpoint_and_vip_offsets, synced=synced_since_start,
                            memory=restored_memory, departed=left_members, now=now)
    # endpoint create NET NAME (no --ip); with --ip: want=IPv4Address(ip)
    while True:
        d = allocate(view, rng, want, field="ip")   # NoFreeAddress, AddressTaken,
        write(d.write)                               # AddressReserved: 409 with the field
        if isinstance(d, Granted):
            break                                    # d.address: persist, attach, publish
        wait for a table change (at most the rest of the timeout; never holding what the
        refresh loop needs: it casts this member's votes); on timeout: write(release(view,
        rng, want).write) if pinned, then fail naming d.waiting_for; rebuild the view
    # endpoint rm: delete the endpoint entry, then write(release(view, rng, address).write)
    # every table change (the refresh loop), for every network: write(maintain(view, rng).write),
    # persist remember(view).encode() when it changed; while waits_on_others(view), re-put
    # the record unchanged every REPUBLISH_AFTER seconds (a gossip message may miss a member)
    # restart: put restore(saved_record, me, pool.size, left=it_stopped_with_a_graceful_leave)
    # (after a leave, adopt() each local endpoint and VIP address), memory =
    # Memory.decode(saved_memory, now, pool.size), synced=False until the first sync of the
    # scope with a peer; while needs_sync(view), call node.sync_network(scope) every few
    # seconds
    # adopting an orphaned service: adopt(view, rng, IPv4Address(vip)) until Granted, so its
    # VIP is claimed again (its block went with the member that left; until then only the
    # services entry protects it: a member that claims that block in the second between the
    # leave and the adoption may hand the VIP out, the agent's conflict report shows it)
"""

from swimnet.ipam.allocator import (
    REPUBLISH_AFTER,
    Granted,
    Maintenance,
    Waiting,
    adopt,
    allocate,
    maintain,
    needs_sync,
    overlapping_claims,
    release,
    remember,
    restore,
    waits_on_others,
)
from swimnet.ipam.errors import AddressReserved, AddressTaken, IpamError, NoFreeAddress
from swimnet.ipam.pool import Pool, block_size
from swimnet.ipam.record import Claim, Memory, Record
from swimnet.ipam.view import (
    IPAM_TABLE,
    Holder,
    IpamView,
    Use,
    decode_records,
    freed_from_entries,
    raw_records,
    record_key,
    uses_from_entries,
    view_from_tables,
)

__all__ = [
    "IPAM_TABLE",
    "REPUBLISH_AFTER",
    "AddressReserved",
    "AddressTaken",
    "Claim",
    "Granted",
    "Holder",
    "IpamError",
    "IpamView",
    "Maintenance",
    "Memory",
    "NoFreeAddress",
    "Pool",
    "Record",
    "Use",
    "Waiting",
    "adopt",
    "allocate",
    "block_size",
    "decode_records",
    "freed_from_entries",
    "maintain",
    "needs_sync",
    "overlapping_claims",
    "raw_records",
    "record_key",
    "release",
    "remember",
    "restore",
    "uses_from_entries",
    "view_from_tables",
    "waits_on_others",
]
