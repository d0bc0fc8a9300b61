"""A network's address pool: the subnet as offsets, the addresses never handed out, blocks.

Rules:
- an address is named by its offset from the subnet's network address (0 .. size-1);
- offset 0 (network), size-1 (broadcast) and the gateway (when set) are reserved: they are
  never handed out and never counted as free;
- the pool is cut into aligned blocks of `block` addresses, the unit members claim; the
  block size is a pure function of the subnet size (every member computes the same one):
  size/64 rounded to a power of two, at least 4 and at most 256 (a /24 has 64 blocks of 4,
  a /22 64 blocks of 16, a /16 256 blocks of 256), never more than the subnet.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

import attrs

BLOCKS_TARGET = 64
BLOCK_MIN = 4
BLOCK_MAX = 256


def block_size(size: int) -> int:
    """The block size for a subnet of `size` addresses (a power of two)."""
    return min(size, max(BLOCK_MIN, min(BLOCK_MAX, size // BLOCKS_TARGET)))


def _network(value: str | ipaddress.IPv4Network) -> ipaddress.IPv4Network:
    net = value if isinstance(value, ipaddress.IPv4Network) else ipaddress.IPv4Network(value, strict=True)
    if net.num_addresses < 4:
        raise ValueError(f"{net}: an IPAM pool needs a /30 or larger subnet")
    return net


def _gateway(value: str | ipaddress.IPv4Address | None) -> ipaddress.IPv4Address | None:
    if value is None or isinstance(value, ipaddress.IPv4Address):
        return value
    return ipaddress.IPv4Address(value)


@attrs.frozen
class Pool:
    """The addresses of one network's subnet, as the allocator sees them."""

    subnet: ipaddress.IPv4Network = attrs.field(converter=_network)
    gateway: ipaddress.IPv4Address | None = attrs.field(default=None, converter=_gateway)
    size: int = attrs.field(init=False)
    block: int = attrs.field(init=False)
    reserved: frozenset[int] = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        size = self.subnet.num_addresses
        object.__setattr__(self, "size", size)
        object.__setattr__(self, "block", block_size(size))
        reserved = {0, size - 1}
        if self.gateway is not None:
            if self.gateway not in self.subnet:
                raise ValueError(f"gateway {self.gateway} is outside {self.subnet}")
            reserved.add(self.offset(self.gateway))
        object.__setattr__(self, "reserved", frozenset(reserved))

    @property
    def blocks(self) -> int:
        """How many blocks the pool has."""
        return self.size // self.block

    def offset(self, address: ipaddress.IPv4Address) -> int:
        """The offset of an address of the subnet (ValueError outside it)."""
        if address not in self.subnet:
            raise ValueError(f"{address} is outside {self.subnet}")
        return int(address) - int(self.subnet.network_address)

    def address(self, offset: int) -> ipaddress.IPv4Address:
        return self.subnet.network_address + offset

    def usable(self, offset: int) -> bool:
        """Whether an offset may ever be handed out."""
        return 0 <= offset < self.size and offset not in self.reserved

    def reserved_reason(self, offset: int) -> str | None:
        """Why an offset is never handed out (None: it may be)."""
        if offset == 0:
            return "the network address"
        if offset == self.size - 1:
            return "the broadcast address"
        if offset in self.reserved:
            return "the gateway"
        return None

    def block_of(self, offset: int) -> int:
        return offset // self.block

    def block_offsets(self, index: int) -> range:
        return range(index * self.block, (index + 1) * self.block)

    def usable_in_block(self, index: int) -> Iterator[int]:
        return (o for o in self.block_offsets(index) if o not in self.reserved)

    @property
    def usable_count(self) -> int:
        return self.size - len(self.reserved)
