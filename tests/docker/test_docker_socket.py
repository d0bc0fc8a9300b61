"""The plugin's socket as `run --docker-plugin` serves it: off by default, 0600, Docker's
routes (404 for a call the protocol lacks, 405 for another method, 413 over the bound),
the flag and the config key."""

from __future__ import annotations

import functools
import json
import os
import stat
from pathlib import Path

import attrs
import trio
from test_agent_inprocess import Drivers, post, raw_http, settings_for

from swimnet.agent.daemon.run import run_agent
from swimnet.agent.daemon.settings import DEFAULT_DOCKER_PLUGIN, AgentSettings, load_settings
from swimnet.agent.docker.protocol import MAX_BODY

GATEWAY = {"RequestAddressType": "com.docker.network.gateway"}
POOL = {"AddressSpace": "swimnet", "Pool": "10.9.0.0/24", "Gateway": "10.9.0.1/24"}


def test_off_by_default_and_set_by_flag_or_config(tmp_path: Path) -> None:
    assert AgentSettings().docker_plugin is None
    assert load_settings(None, {}).docker_plugin is None
    flagged = load_settings(None, {"docker_plugin": str(tmp_path / "p.sock"), "docker_api": "/d.sock"})
    assert (flagged.docker_plugin, flagged.docker_api) == (str(tmp_path / "p.sock"), "/d.sock")
    config = tmp_path / "agent.toml"
    config.write_text('docker_plugin = "plugins/swimnet.sock"\n')
    assert load_settings(str(config), {}).docker_plugin == str(tmp_path / "plugins" / "swimnet.sock")
    config.write_text('docker_plugin = "off"\n')
    assert load_settings(str(config), {}).docker_plugin is None
    from swimnet.agent.cli.main import build_parser

    args = build_parser().parse_args(["run", "--docker-plugin"])
    assert args.docker_plugin == DEFAULT_DOCKER_PLUGIN
    assert build_parser().parse_args(["run"]).docker_plugin is None


async def test_the_socket_is_private_and_routes_docker_calls(tmp_path: Path) -> None:
    path = str(tmp_path / "plugins" / "swimnet.sock")
    settings = attrs.evolve(
        settings_for(tmp_path, "a"), docker_plugin=path, docker_api=str(tmp_path / "no-dockerd.sock")
    )
    drivers = Drivers()
    async with trio.open_nursery() as nursery:
        await nursery.start(
            functools.partial(
                run_agent, settings, driver_factory=drivers, resolver_pool=drivers.pool, handle_signals=False
            )
        )
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600

        def ask(request: bytes) -> tuple[int, dict[str, object]]:
            return raw_http(path, request)

        status, body = await trio.to_thread.run_sync(ask, post("/Plugin.Activate", b""))
        assert (status, body) == (200, {"Implements": ["NetworkDriver", "IpamDriver"]})
        status, body = await trio.to_thread.run_sync(ask, post("/NetworkDriver.Nothing", b"{}"))
        assert status == 404 and "Err" in body
        status, body = await trio.to_thread.run_sync(ask, post("/Plugin.Activate", b"", method="GET"))
        assert status == 405
        status, _ = await trio.to_thread.run_sync(ask, post("/IpamDriver.RequestPool", b"x" * (MAX_BODY + 1)))
        assert status == 413
        # a network: then dockerd, unreachable, is needed for its name and the refusal says so
        calls = [
            ("/IpamDriver.RequestPool", {"Pool": "10.9.0.0/24"}),
            ("/IpamDriver.RequestAddress", {"PoolID": "swimnet/10.9.0.0/24", "Options": GATEWAY}),
            ("/NetworkDriver.CreateNetwork", {"NetworkID": "n1", "IPv4Data": [POOL]}),
        ]
        for target, doc in calls:
            status, body = await trio.to_thread.run_sync(ask, post(target, json.dumps(doc).encode()))
            assert status == 200 and "Err" not in body and "Error" not in body, (target, body)
        request = post("/IpamDriver.RequestAddress", b'{"PoolID": "swimnet/10.9.0.0/24"}')
        status, body = await trio.to_thread.run_sync(ask, request)
        assert status == 200 and "no-dockerd.sock" in str(body["Error"])
        nursery.cancel_scope.cancel()
    assert not os.path.exists(path)
