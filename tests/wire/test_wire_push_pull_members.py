"""Push-pull members encoded one by one (`encode_members`, cached by identity tuple,
incarnation and state) make exactly the frame `encode_stream(PushPull(...))` makes."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from wire_strategies import member_states

from swimnet.wire import MemberState, PushPull, State, decode_stream, encode_stream
from swimnet.wire.codec import encode_members, encode_push_pull


def _facts(
    members: list[MemberState],
) -> list[tuple[tuple[str, tuple[str, int], bytes, tuple[int, int, int]], int, int]]:
    # a fresh identity tuple per member: equal facts in distinct tuples must encode alike
    return [((m.name, m.addr, m.meta, m.vsn), m.incarnation, m.state) for m in members]


@settings(deadline=None, max_examples=60)
@given(st.lists(member_states, max_size=20), st.booleans(), st.binary(max_size=64))
def test_the_frame_is_byte_for_byte_that_of_the_message(
    members: list[MemberState], join: bool, user: bytes
) -> None:
    expected = encode_stream(PushPull(join, tuple(members), user))
    facts = _facts(members)
    assert encode_push_pull(join, encode_members(facts), user) == expected
    assert encode_push_pull(join, encode_members(facts), user) == expected  # cached this time
    assert encode_push_pull(join, encode_members(_facts(members)), user) == expected


def test_a_change_of_incarnation_or_state_of_the_same_identity_is_encoded_anew() -> None:
    ident = ("n1", ("10.0.0.1", 7946), b"m", (2, 2, 2))
    first = encode_members([(ident, 3, State.ALIVE)])[0]
    later = encode_members([(ident, 4, State.ALIVE), (ident, 4, State.SUSPECT), (ident, 3, State.ALIVE)])
    assert later[2] == first
    assert len({first, later[0], later[1]}) == 3
    decoded = decode_stream(encode_push_pull(False, later, b""))
    assert isinstance(decoded, PushPull)
    assert [(m.incarnation, m.state) for m in decoded.members] == [
        (4, State.ALIVE),
        (4, State.SUSPECT),
        (3, State.ALIVE),
    ]
