"""Network attachments: which node is in which network, replicated to every cluster member.

Rules:
- an attachment (node, network) has a network-clock Lamport time and a leaving flag; the
  version ordered (ltime, leaving) greater wins, so at equal time leaving wins;
- a leaving attachment is a tombstone: kept until `reap_at` so a late, older join cannot
  undo it, then forgotten;
- `attach_hash(network)` is the sum mod 2**64 of 64-bit hashes of the network's attachments
  (node, ltime, leaving), maintained in O(1) per change; sync compares it before shipping
  attachment lists.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import attrs

_MASK = 2**64 - 1


@attrs.frozen
class Attachment:
    ltime: int
    leaving: bool
    reap_at: float | None = None

    def order(self) -> tuple[int, bool]:
        return (self.ltime, self.leaving)


def _hash(node: str, a: Attachment) -> int:
    raw = node.encode()
    data = len(raw).to_bytes(4, "big") + raw + a.ltime.to_bytes(8, "big") + bytes([a.leaving])
    return int.from_bytes(hashlib.blake2b(data, digest_size=8, person=b"swimnet-attach").digest(), "big")


class AttachmentTable:
    def __init__(self) -> None:
        self._by_network: dict[str, dict[str, Attachment]] = {}
        self._hashes: dict[str, int] = {}

    def get(self, network: str, node: str) -> Attachment | None:
        return self._by_network.get(network, {}).get(node)

    def set(self, network: str, node: str, attachment: Attachment) -> None:
        nodes = self._by_network.setdefault(network, {})
        old = nodes.get(node)
        h = self._hashes.get(network, 0)
        if old is not None:
            h -= _hash(node, old)
        nodes[node] = attachment
        self._hashes[network] = (h + _hash(node, attachment)) & _MASK

    def remove(self, network: str, node: str) -> None:
        nodes = self._by_network.get(network, {})
        old = nodes.pop(node, None)
        if old is None:
            return
        if nodes:
            self._hashes[network] = (self._hashes[network] - _hash(node, old)) & _MASK
        else:
            del self._by_network[network]
            del self._hashes[network]

    def attach_hash(self, network: str) -> int:
        return self._hashes.get(network, 0)

    def of_network(self, network: str) -> dict[str, Attachment]:
        """node -> attachment (do not mutate)."""
        return self._by_network.get(network, {})

    def active(self, network: str, node: str) -> bool:
        a = self.get(network, node)
        return a is not None and not a.leaving

    def networks_of(self, node: str) -> list[str]:
        return [n for n, nodes in self._by_network.items() if node in nodes]

    def items(self) -> Iterator[tuple[str, str, Attachment]]:
        """(network, node, attachment) for every attachment, in a stable order."""
        for network in sorted(self._by_network):
            nodes = self._by_network[network]
            for node in sorted(nodes):
                yield network, node, nodes[node]
