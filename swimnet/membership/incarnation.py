"""Incarnation numbers: which claims are plausible, and how far a refutation may go.

An incarnation only ever grows one step at a time: a member bumps its own when it refutes an
accusation or changes its metadata, and a restart comes back one above the persisted value.
A claim far above what we know is therefore not news but forgery (or corruption), and it is
dangerous: a refutation must beat the claim, so one forged `Suspect(2**32 - 1, us)` would
push us past the wire's bound (`MAX_INCARNATION`, uint32), where no peer can decode us.

Rules:
- a claim about ourselves (alive, suspect or dead) above our own incarnation plus
  `SELF_WINDOW` is refused, counted (`drop_implausible_self_claim`) and not refuted;
- a claim about another known member above the incarnation we hold for it plus
  `PEER_WINDOW` is refused and counted (`drop_implausible_incarnation`), so a forged number
  stops at the first node that knows better instead of spreading through the cluster.
  `PEER_WINDOW` is four times `SELF_WINDOW`: a refutation (at most `SELF_WINDOW` + 1 above
  what we held) is still accepted by peers lagging a few thousand steps behind us;
- a refutation never goes past `MAX_INCARNATION`: `refutation()` returns None, the claim
  stands, and the member starts a new life (`NEW_LIFE`, see `Swim`), as a restart that
  forgot its incarnation does; peers accept it once they have reaped the old one.

The windows are far above what real members do (an incarnation moves by one per refutation,
and a member refutes at most about once per probe round) and far below the wire's bound: an
attacker able to send unauthenticated packets needs about 2**32 / SELF_WINDOW accepted claims
to exhaust a member's numbers (use encryption against that). A node restarted without its
incarnation must come back within SELF_WINDOW of its previous life, or wait until peers reap
that life (the agent persists the incarnation; `open_node(incarnation=...)` takes it).
"""

from __future__ import annotations

from swimnet.errors import LocalProtocolError
from swimnet.wire.limits import MAX_INCARNATION

SELF_WINDOW = 1024
PEER_WINDOW = 4 * SELF_WINDOW
NEW_LIFE = 1
"""The incarnation a member takes when it can no longer refute (its numbers are exhausted)."""


def plausible_self_claim(claimed: int, own: int) -> bool:
    return claimed <= own + SELF_WINDOW


def plausible_peer_claim(claimed: int, known: int) -> bool:
    return claimed <= known + PEER_WINDOW


def refutation(own: int, accused: int) -> int | None:
    """The incarnation that refutes an accusation at `accused`; None past the wire's bound."""
    new = max(own, accused) + 1
    return new if new <= MAX_INCARNATION else None


def check_own(incarnation: int) -> int:
    """A local incarnation (constructor argument, metadata bump): LocalProtocolError if it
    cannot be sent."""
    if type(incarnation) is not int or not 0 <= incarnation <= MAX_INCARNATION:
        raise LocalProtocolError(f"incarnation must be an integer in 0..{MAX_INCARNATION}")
    return incarnation
