"""IPAM without a central allocator (placeholder docstring, completed below)."""

from swimnet.ipam.allocator import (
    Granted,
    Maintenance,
    Waiting,
    allocate,
    maintain,
    overlapping_claims,
    release,
    remember,
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
    raw_records,
    record_key,
    uses_from_entries,
    view_from_tables,
)

__all__ = [
    "IPAM_TABLE",
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
    "allocate",
    "block_size",
    "decode_records",
    "maintain",
    "overlapping_claims",
    "raw_records",
    "record_key",
    "release",
    "remember",
    "uses_from_entries",
    "view_from_tables",
]
