"""`ipam.json` in the state directory: round trip, and every bad value a ConfigError naming
the file and the field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from swimnet.agent.daemon.ipam_state import IPAM_FILE, IpamFile
from swimnet.agent.daemon.state_store import StateDir
from swimnet.agent.domain.ports import SavedIpam
from swimnet.errors import ConfigError


def _file(tmp_path: Path) -> IpamFile:
    state = StateDir(str(tmp_path))
    state.open()
    return IpamFile(state)


def test_round_trip_and_left_flag(tmp_path: Path) -> None:
    f = _file(tmp_path)
    assert f.load_ipam() == ({}, False)
    saved = SavedIpam("10.1.0.0/24", "10.1.0.1", b"\x81\xa1v\x01", None, ("10.1.0.7",))
    f.save_ipam("n", saved)
    f.save_ipam("m", SavedIpam("10.2.0.0/24", None))
    f.save_ipam_left(True)
    f.save_ipam("m", None)
    again = IpamFile(f.state)
    assert again.load_ipam() == ({"n": saved}, True)


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        ({"left": "yes"}, "left"),
        ({"networks": []}, "networks"),
        ({"networks": {"bad name!": {}}}, "networks.bad name!"),
        ({"networks": {"n": {"subnet": "10.1.0.1/24"}}}, "networks.n.subnet"),
        ({"networks": {"n": {"subnet": "10.1.0.0/24", "gateway": "x"}}}, "networks.n.gateway"),
        ({"networks": {"n": {"subnet": "10.1.0.0/24", "record": "@@"}}}, "networks.n.record"),
        (
            {"networks": {"n": {"subnet": "10.1.0.0/24", "reserved": ["10.1.0.300"]}}},
            "networks.n.reserved[0]",
        ),
        ({"networks": {"n": {"subnet": "10.1.0.0/24", "extra": 1}}}, "networks.n.extra"),
    ],
)
def test_bad_values_name_the_file_and_field(tmp_path: Path, doc: dict[str, object], field: str) -> None:
    (tmp_path / IPAM_FILE).write_text(json.dumps({"version": 1, **doc}))
    with pytest.raises(ConfigError) as caught:
        _file(tmp_path).load_ipam()
    text = str(caught.value)
    assert IPAM_FILE in text and field in text, text
