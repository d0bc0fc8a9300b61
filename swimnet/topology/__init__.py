"""Network coordinates (serf's Vivaldi) and topology-aware peer selection; pure.

Rules: no I/O, no clock reads, no module-level `random`: randomness is an injected
`random.Random`. All times are float seconds.

- `coordinate`: the `Coordinate` value and its geometry;
- `vivaldi`: `CoordinateClient`, which learns this node's coordinate from RTT samples;
- `codec`: the compact wire forms (a list of numbers; float32 bytes) and the probe ack payload;
- `book`: the latest coordinate each member published, versioned (an older one never
  replaces a newer one);
- `tracker`: our coordinate, the book, and when estimates are trusted (`PeerCoordinates`);
- `selection`: choosing gossip targets and indirect-probe helpers, biased toward near peers.
"""

from swimnet.topology.codec import coordinate_from_wire, coordinate_to_wire
from swimnet.topology.coordinate import (
    COORDINATE_LIMIT,
    MAX_DIMENSIONALITY,
    Coordinate,
    DimensionalityError,
)
from swimnet.topology.selection import choose_excluding, choose_helpers, choose_peers
from swimnet.topology.tracker import PeerCoordinates
from swimnet.topology.vivaldi import (
    REJECT_REASONS,
    CoordinateClient,
    RejectedSample,
    RejectReason,
    VivaldiConfig,
)

__all__ = [
    "COORDINATE_LIMIT",
    "MAX_DIMENSIONALITY",
    "REJECT_REASONS",
    "Coordinate",
    "CoordinateClient",
    "DimensionalityError",
    "PeerCoordinates",
    "RejectReason",
    "RejectedSample",
    "VivaldiConfig",
    "choose_excluding",
    "choose_helpers",
    "choose_peers",
    "coordinate_from_wire",
    "coordinate_to_wire",
]
