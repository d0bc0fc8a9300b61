"""What an allocation refuses: typed errors that name the field at fault.

Rules: every error is raised before anything changed (no table write is owed); `field` is
the argument at fault ("ip" for endpoints, "vip" for services: the caller says which),
`network` the network; the message starts with the field's name, like the agent's
`OperationError` messages, so a front end shows it unchanged (the agent maps all three to
CONFLICT / 409).
"""

from __future__ import annotations

from swimnet.errors import SwimnetError


class IpamError(SwimnetError):
    """An address request refused; `field` and `network` say which."""

    def __init__(self, message: str, *, field: str, network: str) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.network = network


class NoFreeAddress(IpamError):
    """Every usable address of the network is in use or reserved (hidden owners' included)."""

    def __init__(self, *, field: str, network: str) -> None:
        super().__init__(f"{field}: network {network} has no free address", field=field, network=network)


class AddressTaken(IpamError):
    """A pinned address is held by an endpoint, a VIP or another member's claim; `holder`
    says which (e.g. "endpoint web (3f2a...) on n1", "claimed by n2")."""

    def __init__(self, address: str, holder: str, *, field: str, network: str) -> None:
        message = f"{field}: {address} is taken in network {network}: {holder}"
        super().__init__(message, field=field, network=network)
        self.address = address
        self.holder = holder


class AddressReserved(IpamError):
    """A pinned address that is never handed out; `why`: "the gateway", "the network address",
    "the broadcast address" or "outside the subnet 10.1.0.0/24"."""

    def __init__(self, address: str, why: str, *, field: str, network: str) -> None:
        super().__init__(f"{field}: {address} is {why} of network {network}", field=field, network=network)
        self.address = address
        self.why = why
