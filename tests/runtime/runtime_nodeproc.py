"""One swimnet node in its own OS process, for the multi-process test. Prints JSON lines.

    python tests/runtime/runtime_nodeproc.py NAME [SEED]

Binds 127.0.0.1:0 (fast test timings), joins SEED ("host:port") if given, then prints
`{"name": ..., "address": "127.0.0.1:PORT", "members": {name: state}}` at start and after
every membership change. Exits when its stdin closes (the parent went away) or after
--lifetime seconds, so a crashed test run leaves no process behind.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys

import trio

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))

from runtime_harness import fast_config

from swimnet.config import format_address
from swimnet.runtime import Node, open_node


def report(node: Node) -> None:
    line = {
        "name": node.name,
        "address": format_address(node.address),
        "members": {m.name: m.state.label for m in node.members()},
    }
    sys.stdout.write(json.dumps(line, sort_keys=True) + "\n")
    sys.stdout.flush()


async def exit_when_stdin_closes(cancel: trio.CancelScope) -> None:
    async with trio.lowlevel.FdStream(os.dup(sys.stdin.fileno())) as stdin:
        while await stdin.receive_some(4096):
            pass
    cancel.cancel()


async def main(name: str, seed: str | None, lifetime: float) -> None:
    with trio.move_on_after(lifetime) as scope:
        async with (
            open_node(fast_config(name)) as node,
            node.subscribe() as events,
            trio.open_nursery() as nursery,
        ):
            nursery.start_soon(exit_when_stdin_closes, scope)
            if seed:
                await node.join([seed])
            report(node)
            async for _ in events:
                while len(events):  # report once per burst
                    events.receive_nowait()
                report(node)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("name")
    parser.add_argument("seed", nargs="?")
    parser.add_argument("--lifetime", type=float, default=120.0)
    args = parser.parse_args()
    trio.run(main, args.name, args.seed, args.lifetime)
