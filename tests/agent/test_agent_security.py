"""Encryption, keys and the control socket's protection, with agent processes."""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import stat
from pathlib import Path

import pytest
from agent_harness import Agent, Cluster, cli, wait_for

from swimnet.io.keyfile import generate_key
from swimnet.security.keyring import Keyring


def key_file(path: Path, *keys: bytes) -> str:
    path.write_text("".join(base64.b64encode(k).decode() + "\n" for k in keys))
    path.chmod(0o600)
    return str(path)


def test_an_agent_with_another_key_cannot_join(cluster: Cluster, tmp_path: Path) -> None:
    good, bad = generate_key(), generate_key()
    a = cluster.add("a", extra=["--keyring", key_file(tmp_path / "good", good)])
    b = cluster.add("b", extra=["--keyring", key_file(tmp_path / "good2", good)])
    cluster.converge()
    x = cluster.add("x", extra=["--keyring", key_file(tmp_path / "bad", bad)])
    wait_for(lambda: x.status()["join_error"], what="x reports its failed join")
    status = x.status()
    assert not status["joined"] and "no seed answered" in status["join_error"]
    assert set(x.states()) == {"x"}
    assert "x" not in a.states() and "x" not in b.states()
    drops = {k: v for k, v in a.status()["stats"].items() if k.startswith("drop_auth_")}
    assert sum(drops.values()) > 0, a.status()["stats"]
    assert a.status()["keyring"] == {"primary": Keyring.id_of(good), "keys": 1}


def test_keys_rotate_cluster_wide_and_sighup_reloads_the_file(cluster: Cluster, tmp_path: Path) -> None:
    k1, k2 = generate_key(), generate_key()
    a_file = key_file(tmp_path / "a.keys", k1)
    b_file = key_file(tmp_path / "b.keys", k1)
    a = cluster.add("a", extra=["--keyring", a_file])
    b = cluster.add("b", extra=["--keyring", b_file])
    cluster.converge()
    assert a.json("keys", "list") == {"primary": Keyring.id_of(k1), "keys": [Keyring.id_of(k1)], "version": 0}
    installed = a.json("keys", "install", base64.b64encode(k2).decode())
    assert installed["ok"] and installed["acked"] == ["b"] and installed["key_id"] == Keyring.id_of(k2)
    used = a.json("keys", "use", Keyring.id_of(k2))
    assert used["ok"] and used["acked"] == ["b"]
    assert b.json("keys", "list")["primary"] == Keyring.id_of(k2)
    code, _, err = a.cli("keys", "remove", Keyring.id_of(k2))
    assert code == 1 and "cannot remove the primary key" in err
    assert a.json("keys", "remove", Keyring.id_of(k1))["ok"]
    # both agents wrote the new ring back to their key files
    for path in (a_file, b_file):
        wait_for(lambda path=path: Path(path).read_text().count("\n") == 3, what=f"{path} rewritten")
        assert Path(path).read_text().splitlines()[-1] == base64.b64encode(k2).decode()
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    # SIGHUP: the file is the truth for this agent's ring
    k3 = generate_key()
    key_file(Path(a_file), k3, k2)
    a.signal(signal.SIGHUP)
    wait_for(lambda: a.json("keys", "list")["primary"] == Keyring.id_of(k3), what="reloaded primary")
    assert a.json("keys", "list")["keys"] == [Keyring.id_of(k3), Keyring.id_of(k2)]
    assert a.running and any(e.get("event") == "keyring_reloaded" for e in a.log_events())


def test_control_socket_is_private(tmp_path: Path, cluster: Cluster) -> None:
    a = cluster.add("a")
    mode = os.stat(a.socket).st_mode
    assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600
    assert os.stat(a.socket).st_uid == os.getuid()
    if os.getuid() != 0:
        pytest.skip("connecting as another user needs root")
    import pwd

    nobody = pwd.getpwnam("nobody")
    pid = os.fork()
    if pid == 0:  # child: become nobody and try the socket
        code = 2
        try:
            os.setgid(nobody.pw_gid)
            os.setuid(nobody.pw_uid)
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(a.socket)
                code = 0
            except PermissionError:
                code = 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 1, "nobody could connect to the control socket"


def test_cli_exit_code_3_when_the_agent_is_unreachable(tmp_path: Path) -> None:
    missing = str(tmp_path / "nothing.sock")
    code, _, err = cli("members", "--socket", missing)
    assert code == 3 and missing in err and "no such socket" in err
    plain = tmp_path / "stale.sock"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(plain))
    s.close()  # a socket file nobody listens on
    code, _, err = cli("status", "--socket", str(plain), "--json")
    assert code == 3 and "refused" in err


def test_a_stale_socket_is_replaced_and_a_live_one_is_refused(cluster: Cluster) -> None:
    a = cluster.add("a")
    twin = Agent(cluster.base, "twin", "127.0.0.9")
    twin.socket = a.socket  # the same control socket as a running agent
    cluster.agents.append(twin)
    twin.start(wait=False)
    assert twin.wait_exit() == 1
    assert "another agent is already listening" in twin.log()
    assert json.loads(cli("status", "--json", "--socket", a.socket)[1])["name"] == "a"
