"""Membership events, derived from state changes, in the order they happened."""

from __future__ import annotations

import attrs

from swimnet.membership.member import Member


@attrs.frozen
class MemberJoined:
    """A member became alive: new, or back from dead/left."""

    member: Member


@attrs.frozen
class MemberUpdated:
    """An alive member changed its meta or address, or refuted a suspicion."""

    member: Member


@attrs.frozen
class MemberSuspected:
    member: Member


@attrs.frozen
class MemberFailed:
    """Declared dead by the cluster without having left."""

    member: Member


@attrs.frozen
class MemberLeft:
    """Left on purpose (graceful leave)."""

    member: Member


MemberEvent = MemberJoined | MemberUpdated | MemberSuspected | MemberFailed | MemberLeft
