"""One value, one verdict: the overlay records (construction and decoding), the datapath
model and the agent's checks accept a value with the same normal form, or all refuse it,
each with its own error type naming the field (InvalidValue, DecodeError, ConfigError, a
INVALID OperationError)."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any

import attrs
import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from swimnet import values
from swimnet.agent import checks
from swimnet.agent.daemon.settings import check_node_name
from swimnet.agent.docker.protocol import NetworkRef, ProtocolError
from swimnet.agent.errors import ErrorKind, OperationError, invalid
from swimnet.datapath import names
from swimnet.datapath.model import LocalEndpoint, NetworkSpec, RemoteEndpoint
from swimnet.errors import ConfigError, DecodeError
from swimnet.overlay import EndpointRecord, NetworkRecord, ServiceRecord

NET = ipaddress.IPv4Network("10.1.0.0/24")
MAC = "02:42:0a:01:00:02"
REFUSED = "refused"


@attrs.frozen
class Path:
    """One layer's way to take a value: the normal form it keeps, or its own error."""

    label: str
    take: Callable[[Any], object]
    error: type[Exception]
    """The layer's error type; its `field` (or message) must name the field."""
    only: type | None = None
    """Values of this type only (a decoding path: the field's msgpack type; an option: str)."""

    def takes(self, value: object) -> bool:
        return self.only is None or type(value) is self.only


@attrs.frozen
class Kind:
    field: str
    paths: tuple[Path, ...]
    aliases: tuple[str, ...] = ()
    """Other names a layer gives the field (e.g. options.vxlan_port for port)."""


def _named(exc: Exception, names: tuple[str, ...]) -> bool:
    if isinstance(exc, OperationError):
        return exc.kind is ErrorKind.INVALID and exc.field in names
    if isinstance(exc, (ConfigError, values.InvalidValue)):
        return exc.field in names
    return any(f"{name}:" in str(exc) for name in names)


def verdict(kind: Kind, path: Path, value: object) -> object:
    try:
        return path.take(value)
    except path.error as exc:
        assert _named(exc, (kind.field, *kind.aliases)), (path.label, value, exc)
        return REFUSED


def verdicts(kind: Kind, value: object) -> dict[str, object]:
    return {p.label: verdict(kind, p, value) for p in kind.paths if p.takes(value)}


def assert_one_verdict(kind: Kind, value: object) -> object:
    got = verdicts(kind, value)
    assert len(set(got.values())) == 1, (kind.field, value, got)
    return next(iter(got.values()))


# -- the three paths of each kind of value --------------------------------------------------------


def _doc(base: dict[str, Any], **fields: object) -> bytes:
    data: bytes = msgpack.packb({"v": 1, **base, **fields}, use_bin_type=True)
    return data


ENDPOINT_DOC = {"name": "e", "ip": "10.1.0.2/24", "mac": MAC, "vtep": "192.0.2.1"}
NETWORK_DOC = {"name": "n", "subnet": "10.1.0.0/24", "vni": None, "gateway": None, "mtu": 1450}
NETWORK_DOC |= {"options": {}, "created": 0}
SERVICE_DOC = {"name": "s", "vip": "10.1.0.100", "mode": "vip", "ports": [], "backends": []}


def _decoding(cls: Any, base: dict[str, Any], field: str, wire: type) -> Path:
    """A peer's document with `field` set to the value, decoded."""
    return Path(
        "overlay decode", lambda v: getattr(cls.decode(_doc(base, **{field: v})), field), DecodeError, wire
    )


def _endpoint(**kw: object) -> EndpointRecord:
    return EndpointRecord(**{**ENDPOINT_DOC, **kw})  # type: ignore[arg-type]


def _remote(**kw: object) -> RemoteEndpoint:
    base = {"network": "n", "endpoint_id": "e", "ip": "10.1.0.2/24", "mac": MAC, "vtep": "192.0.2.1"}
    return RemoteEndpoint(**{**base, **kw})  # type: ignore[arg-type]


def _local(**kw: object) -> LocalEndpoint:
    base = {"network": "n", "endpoint_id": "e", "name": "c", "ip": "10.1.0.2/24", "mac": MAC, "netns": "c"}
    return LocalEndpoint(**{**base, **kw})  # type: ignore[arg-type]


def _spec(**kw: object) -> NetworkSpec:
    base = {"name": "n", "vni": 4097, "subnet": "10.1.0.0/24"}
    return NetworkSpec(**{**base, **kw})  # type: ignore[arg-type]


def _options(port: str) -> dict[str, str]:
    return NetworkRecord("n", str(NET), options={"vxlan_port": port}).options


def _agent_ip(value: str) -> str:
    """The agent's check of an endpoint IP in the subnet the value names (NET if none).

    A bare address is the API's shorthand for "with the subnet's prefix", which the agent
    adds before it publishes; records hold the full form only, so bare values are compared
    by the full form's rule here."""
    if "/" not in value:
        raise invalid("ip: no prefix length", "ip")
    try:
        net = ipaddress.ip_interface(value).network
    except ValueError:
        net = NET
    return str(checks.host_in(value, net if isinstance(net, ipaddress.IPv4Network) else NET, "ip"))


def _agent_netns(value: str | int) -> str | int:
    """The API's two fields (netns, pid) for the datapath's one."""
    return checks.netns(value) if isinstance(value, str) else checks.pid(value, "netns")


IV = values.InvalidValue
KINDS: dict[str, Kind] = {
    "mac": Kind(
        "mac",
        (
            Path("overlay", lambda v: _endpoint(mac=v).mac, IV),
            _decoding(EndpointRecord, ENDPOINT_DOC, "mac", str),
            Path("datapath remote", lambda v: _remote(mac=v).mac, ConfigError),
            Path("datapath local", lambda v: _local(mac=v).mac, ConfigError),
            Path("agent", checks.mac, OperationError),
        ),
    ),
    "ifname": Kind(  # the overlay records carry no interface name
        "ifname",
        (
            Path("datapath", lambda v: _local(ifname=v).ifname, ConfigError),
            Path("agent", checks.ifname, OperationError),
        ),
    ),
    "ip": Kind(
        "ip",
        (
            Path("overlay", lambda v: _endpoint(ip=v).ip, IV),
            _decoding(EndpointRecord, ENDPOINT_DOC, "ip", str),
            Path("datapath remote", lambda v: _remote(ip=v).ip, ConfigError),
            Path("datapath local", lambda v: _local(ip=v).ip, ConfigError),
            Path("agent", _agent_ip, OperationError),
        ),
    ),
    "gateway": Kind(
        "gateway",
        (
            Path("overlay", lambda v: NetworkRecord("n", str(NET), gateway=v).gateway, IV),
            _decoding(NetworkRecord, NETWORK_DOC, "gateway", str),
            Path("datapath", lambda v: _spec(gateway=v).gateway, ConfigError),
            Path("agent", lambda v: str(checks.host_in(v, NET, "gateway").ip), OperationError),
        ),
    ),
    "vtep": Kind(  # the agent's VTEP is its advertise address, not a request value
        "vtep",
        (
            Path("overlay", lambda v: _endpoint(vtep=v).vtep, IV),
            _decoding(EndpointRecord, ENDPOINT_DOC, "vtep", str),
            Path("datapath", lambda v: _remote(vtep=v).vtep, ConfigError),
        ),
    ),
    "subnet": Kind(
        "subnet",
        (
            Path("overlay", lambda v: NetworkRecord("n", v).subnet, IV),
            _decoding(NetworkRecord, NETWORK_DOC, "subnet", str),
            Path("datapath", lambda v: _spec(subnet=v).subnet, ConfigError),
            Path("agent", lambda v: str(checks.subnet(v)), OperationError),
        ),
    ),
    "name": Kind(
        "name",
        (
            Path("overlay network", lambda v: NetworkRecord(v, str(NET)).name, IV),
            Path("overlay endpoint", lambda v: _endpoint(name=v).name, IV),
            Path("overlay service", lambda v: ServiceRecord(v, "10.1.0.100").name, IV),
            _decoding(NetworkRecord, NETWORK_DOC, "name", str),
            Path("datapath network", lambda v: _spec(name=v).name, ConfigError),
            Path("datapath endpoint", lambda v: _local(name=v).name, ConfigError),
            Path("agent", checks.name, OperationError),
        ),
    ),
    "endpoint_id": Kind(
        "endpoint_id",
        (
            Path("datapath remote", lambda v: _remote(endpoint_id=v).endpoint_id, ConfigError),
            Path("datapath local", lambda v: _local(endpoint_id=v).endpoint_id, ConfigError),
            Path("agent", lambda v: checks.name(v, "endpoint_id"), OperationError),
        ),
    ),
    "ports": Kind(
        "ports",
        (
            Path(
                "overlay", lambda v: ServiceRecord("s", "10.1.0.100", ports=(("tcp", v, v),)).ports[0][1], IV
            ),
            Path(
                "overlay decode",
                lambda v: ServiceRecord.decode(_doc(SERVICE_DOC, ports=[["tcp", v, v]])).ports[0][1],
                DecodeError,
                int,
            ),
            Path("agent", lambda v: checks.port_mapping("tcp", v, v)[1], OperationError),
        ),
    ),
    "port": Kind(  # a network's VXLAN port: option text in the record, a number in the datapath
        "port",
        (
            Path("overlay", lambda v: int(_options(v)["vxlan_port"]), IV, str),
            Path("datapath", lambda v: _spec(port=v).port, ConfigError),
            Path(
                "agent",
                lambda v: int(checks.network_options({"vxlan_port": v})["vxlan_port"]),
                OperationError,
                str,
            ),
        ),
        aliases=("options.vxlan_port",),
    ),
    "netns": Kind(  # the overlay records carry no namespace
        "netns",
        (
            Path("datapath", lambda v: _local(netns=v).netns, ConfigError),
            Path("agent", _agent_netns, OperationError),
        ),
    ),
    "vni": Kind(
        "vni",
        (
            Path("overlay", lambda v: NetworkRecord("n", str(NET), vni=v).vni, IV),
            _decoding(NetworkRecord, NETWORK_DOC, "vni", int),
            Path("datapath", lambda v: _spec(vni=v).vni, ConfigError),
            Path("agent", checks.vni, OperationError),
        ),
    ),
    "mtu": Kind(
        "mtu",
        (
            Path("overlay", lambda v: NetworkRecord("n", str(NET), mtu=v).mtu, IV),
            _decoding(NetworkRecord, NETWORK_DOC, "mtu", int),
            Path("datapath", lambda v: _spec(mtu=v).mtu, ConfigError),
            Path("agent", checks.mtu, OperationError),
        ),
    ),
    "NetworkID": Kind(  # a Docker id: swimnet.values' verdict, and the plugin protocol's
        "NetworkID",
        (
            Path("values", lambda v: values.docker_id(v, "NetworkID"), IV, str),
            Path(
                "docker protocol",
                lambda v: NetworkRef.decode({"NetworkID": v}).network_id,
                ProtocolError,
                str,
            ),
        ),
    ),
    "node_tag": Kind(  # the datapath's node tag is the agent's node name
        "node_tag",
        (
            Path("datapath", names.check_tag, ConfigError),
            Path("agent settings", lambda v: check_node_name(v, "command line", "node_tag"), ConfigError),
        ),
    ),
}

# -- adversarial values: (kind, value, the normal form or REFUSED) --------------------------------

CASES: list[tuple[str, object, object]] = [
    ("mac", "02:42:0a:01:00:02", "02:42:0a:01:00:02"),
    ("mac", "02:42:0A:01:00:02", "02:42:0a:01:00:02"),
    ("mac", "00:00:00:00:00:00", REFUSED),
    ("mac", "01:00:5e:00:00:01", REFUSED),
    ("mac", "ff:ff:ff:ff:ff:ff", REFUSED),
    ("mac", "03:42:0a:01:00:02", REFUSED),
    ("mac", "02-42-0a-01-00-02", REFUSED),
    ("mac", "02:42-0a:01:00:02", REFUSED),
    ("mac", "0242.0a01.0002", REFUSED),
    ("mac", "2:42:a:1:0:2", REFUSED),
    ("mac", "02:42:0a:01:00:02:", REFUSED),
    ("mac", " 02:42:0a:01:00:02", REFUSED),
    ("mac", "02:42:0a:01:00:0٢", REFUSED),
    ("mac", "", REFUSED),
    ("ifname", "eth0", "eth0"),
    ("ifname", "a" * 15, "a" * 15),
    ("ifname", "a" * 16, REFUSED),
    ("ifname", "", REFUSED),
    ("ifname", "a/b", REFUSED),
    ("ifname", "a:b", REFUSED),
    ("ifname", "a b", REFUSED),
    ("ifname", "a\tb", REFUSED),
    ("ifname", "eth%d", REFUSED),
    ("ifname", ".", REFUSED),
    ("ifname", "..", REFUSED),
    ("ifname", "ethé", REFUSED),
    ("ifname", "éééééééé", REFUSED),
    ("ifname", "a\0", REFUSED),
    ("ip", "10.1.0.2/24", "10.1.0.2/24"),
    ("ip", "10.1.0.2/255.255.255.0", "10.1.0.2/24"),
    ("ip", "10.1.0.0/24", REFUSED),
    ("ip", "10.1.0.255/24", REFUSED),
    ("ip", "10.1.0.2/33", REFUSED),
    ("ip", "10.1.0.2/-1", REFUSED),
    ("ip", "10.1.0.2/31", REFUSED),
    ("ip", "10.1.0.2/32", REFUSED),
    ("ip", "10.1.0.2/4", REFUSED),
    ("ip", "010.1.0.2/24", REFUSED),
    ("ip", "10.1.0.02/24", REFUSED),
    ("ip", "127.0.0.2/24", REFUSED),
    ("ip", "224.0.0.5/24", REFUSED),
    ("ip", "fd00::2/64", REFUSED),
    ("ip", "10.1.0.2/24 ", REFUSED),
    ("ip", "", REFUSED),
    ("gateway", "10.1.0.1", "10.1.0.1"),
    ("gateway", "10.1.0.254/24", "10.1.0.254"),
    ("gateway", "10.1.0.0", REFUSED),
    ("gateway", "10.1.0.255", REFUSED),
    ("gateway", "10.2.0.1", REFUSED),
    ("gateway", "10.1.0.1/16", REFUSED),
    ("gateway", "010.1.0.1", REFUSED),
    ("gateway", "10.1.0.1/33", REFUSED),
    ("gateway", "fd00::1", REFUSED),
    ("vtep", "192.0.2.1", "192.0.2.1"),
    ("vtep", "127.0.0.1", "127.0.0.1"),
    ("vtep", "0.0.0.0", REFUSED),
    ("vtep", "255.255.255.255", REFUSED),
    ("vtep", "239.1.1.1", REFUSED),
    ("vtep", "192.0.2.01", REFUSED),
    ("vtep", "192.0.2.1/24", REFUSED),
    ("vtep", "::1", REFUSED),
    ("vtep", "host-a", REFUSED),
    ("subnet", "10.1.0.0/24", "10.1.0.0/24"),
    ("subnet", "10.1.0.0/255.255.255.0", "10.1.0.0/24"),
    ("subnet", "10.0.0.0/8", "10.0.0.0/8"),
    ("subnet", "10.1.0.1/24", REFUSED),
    ("subnet", "10.1.0.0/31", REFUSED),
    ("subnet", "10.1.0.0/33", REFUSED),
    ("subnet", "0.0.0.0/0", REFUSED),
    ("subnet", "127.0.0.0/8", REFUSED),
    ("subnet", "224.0.0.0/24", REFUSED),
    ("subnet", "010.1.0.0/24", REFUSED),
    ("subnet", "fd00::/64", REFUSED),
    ("subnet", "10.1.0.0", REFUSED),
    ("subnet", "", REFUSED),
    ("name", "web", "web"),
    ("name", "Web-1.a_b", "Web-1.a_b"),
    ("name", "a" * 64, "a" * 64),
    ("name", "a" * 65, REFUSED),
    ("name", "_x", REFUSED),
    ("name", "-x", REFUSED),
    ("name", ".x", REFUSED),
    ("name", "a b", REFUSED),
    ("name", "a/b", REFUSED),
    ("name", "café", REFUSED),
    ("name", "web\n", REFUSED),
    ("name", "", REFUSED),
    ("endpoint_id", "0123456789ab", "0123456789ab"),
    ("endpoint_id", "_x", REFUSED),
    ("endpoint_id", "a" * 65, REFUSED),
    ("ports", 80, 80),
    ("ports", 65535, 65535),
    ("ports", 0, REFUSED),
    ("ports", 65536, REFUSED),
    ("ports", -1, REFUSED),
    ("ports", "80x", REFUSED),
    ("ports", True, REFUSED),
    ("port", 4789, 4789),
    ("port", "4789", 4789),
    ("port", 0, REFUSED),
    ("port", 65536, REFUSED),
    ("port", "80x", REFUSED),
    ("port", "0", REFUSED),
    ("port", "65536", REFUSED),
    ("port", " 80", REFUSED),
    ("port", "+80", REFUSED),
    ("port", "٨٠", REFUSED),
    ("port", "", REFUSED),
    ("netns", "c1", "c1"),
    ("netns", "/var/run/netns/c1", "/var/run/netns/c1"),
    ("netns", 1234, 1234),
    ("netns", "rel/path", REFUSED),
    ("netns", "", REFUSED),
    ("netns", "/", REFUSED),
    ("netns", ".", REFUSED),
    ("netns", "..", REFUSED),
    ("netns", "a b", REFUSED),
    ("netns", "/a\0b", REFUSED),
    ("netns", 0, REFUSED),
    ("netns", -5, REFUSED),
    ("netns", True, REFUSED),
    ("vni", 4097, 4097),
    ("vni", 0, REFUSED),
    ("vni", 2**24, REFUSED),
    ("vni", True, REFUSED),
    ("mtu", 1450, 1450),
    ("mtu", 575, REFUSED),
    ("mtu", 9001, REFUSED),
    ("NetworkID", "0123456789abcdef" * 4, "0123456789abcdef" * 4),
    ("NetworkID", "swimnet/10.1.0.0/24", "swimnet/10.1.0.0/24"),
    ("NetworkID", "a:b_c.d-e", "a:b_c.d-e"),
    ("NetworkID", "a" * 128, "a" * 128),
    ("NetworkID", "a" * 129, REFUSED),
    ("NetworkID", "", REFUSED),
    ("NetworkID", "a b", REFUSED),
    ("NetworkID", "a\nb", REFUSED),
    ("NetworkID", "café", REFUSED),
    ("NetworkID", "a%b", REFUSED),
    ("node_tag", "host-a", "host-a"),
    ("node_tag", "a" * 63, "a" * 63),
    ("node_tag", "a" * 64, REFUSED),
    ("node_tag", "_a", REFUSED),
    ("node_tag", "a/b", REFUSED),
    ("node_tag", "", REFUSED),
]


@pytest.mark.parametrize(("kind", "value", "expected"), CASES)
def test_adversarial_values_get_one_verdict_everywhere(kind: str, value: object, expected: object) -> None:
    assert assert_one_verdict(KINDS[kind], value) == expected


def test_every_path_is_exercised_by_the_cases() -> None:
    for name, kind in KINDS.items():
        values_of = [v for k, v, _ in CASES if k == name]
        for path in kind.paths:
            used = [v for v in values_of if path.takes(v)]
            got = {verdict(kind, path, v) for v in used}
            assert REFUSED in got and len(got) > 1, (name, path.label)


def test_a_peer_record_the_overlay_accepts_is_one_the_datapath_takes() -> None:
    record = EndpointRecord.decode(_doc(ENDPOINT_DOC, mac="02:AA:00:00:00:01", ip="10.1.0.9/255.255.255.0"))
    remote = RemoteEndpoint("n", "e", record.ip, record.mac, record.vtep)
    assert (remote.ip, remote.mac) == (record.ip, record.mac) == ("10.1.0.9/24", "02:aa:00:00:00:01")


# -- random values ---------------------------------------------------------------------------------


def _near(alphabet: str, max_size: int) -> st.SearchStrategy[str]:
    return st.one_of(st.text(max_size=max_size), st.text(alphabet, max_size=max_size))


def _mac_like() -> st.SearchStrategy[str]:
    """Mostly well-formed MACs (half of them unicast), some with odd pairs or separators."""
    good = st.text("0123456789abcdefABCDEF", min_size=2, max_size=2)
    pair = st.one_of(good, good, good, st.text("0123456789abcdefg", max_size=3))
    parts = st.one_of(st.lists(pair, min_size=6, max_size=6), st.lists(pair, min_size=5, max_size=7))
    odd = st.tuples(parts, st.sampled_from([":", "-", "."])).map(lambda t: t[1].join(t[0]))
    return st.one_of(st.lists(good, min_size=6, max_size=6).map(":".join), odd)


_OCTET = st.one_of(st.integers(0, 255).map(str), st.sampled_from(["00", "010", "256", "1e", "", " 1"]))
_FIRST = st.sampled_from([0, 1, 10, 100, 127, 172, 192, 223, 224, 239, 240, 255])
_ADDRESS = st.one_of(
    st.tuples(_FIRST, st.integers(0, 2**24 - 1)).map(lambda t: str(ipaddress.IPv4Address(t[0] << 24 | t[1]))),
    st.lists(_OCTET, min_size=3, max_size=5).map(".".join),
)
_PREFIX = st.one_of(st.integers(-1, 34).map(str), st.sampled_from(["024", "255.255.255.0", "0.0.0.255", "x"]))


def _aligned(t: tuple[int, int, int]) -> str:
    return str(ipaddress.IPv4Network((t[0] << 24 | t[1], t[2]), strict=False))


def _ipv4_like(prefix: bool) -> st.SearchStrategy[str]:
    if not prefix:
        return _ADDRESS
    return st.tuples(_ADDRESS, _PREFIX).map("/".join)


_IN_NET = st.integers(-1, 257).map(lambda n: f"10.1.0.{n}")
_SUBNETS = st.tuples(_FIRST, st.integers(0, 2**24 - 1), st.integers(8, 30) | st.integers(0, 32)).map(_aligned)
STRATEGIES: dict[str, st.SearchStrategy[Any]] = {
    "mac": st.one_of(_mac_like(), _near("0123456789abcdefABCDEF:-", 20)),
    "ifname": _near("abcXYZ019_-./: %\té", 18),
    "ip": st.one_of(st.tuples(_IN_NET, _PREFIX).map("/".join), _ipv4_like(True), _near("0123456789./", 20)),
    "gateway": st.one_of(
        _IN_NET, st.tuples(_IN_NET, _PREFIX).map("/".join), _ipv4_like(False), _near("0123456789./", 20)
    ),
    "vtep": st.one_of(_ipv4_like(False), _near("0123456789.:", 20)),
    "subnet": st.one_of(_SUBNETS, _SUBNETS, _ipv4_like(True), _near("0123456789./", 20)),
    "name": _near("abcXYZ019_-. /é", 70),
    "endpoint_id": _near("abc019_-.", 70),
    "ports": st.one_of(st.integers(-2, 70_000), _near("0123456789x +", 7)),
    "port": st.one_of(st.integers(-2, 70_000), _near("0123456789x +", 7)),
    "netns": st.one_of(st.integers(-2, 2**23), _near("abc019_-./ \0", 20)),
    "vni": st.integers(-2, 2**24 + 2),
    "mtu": st.integers(0, 70_000),
    "node_tag": _near("abcXYZ019_-. /", 70),
    "NetworkID": _near("abcXYZ019_-.:/ é%", 140),
}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_random_values_get_one_verdict_everywhere(kind: str) -> None:
    @given(STRATEGIES[kind])
    def check(value: object) -> None:
        assert_one_verdict(KINDS[kind], value)

    check()
