"""Two hosts, each with its own dockerd and swimnet agent (Docker plugin on), on the
datapath tests' namespace lab (tests/datapath/datapath_lab.py); the hosts are
`examples.pets.docker.DockerHost`s (see there: private mount namespaces, the dockerd flags,
the busybox-static image).

Rules: `docker_lab()` removes everything it made on success, failure and Ctrl-C: each host's
containers, dockerd, agent and mount namespace (`DockerHost.close`), the short temporary
directory, then the namespace lab removes the host namespaces; a cleanup problem fails the
test (after a failure, the failure is what is reported).
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from datapath_lab import Lab, lab

from examples.pets.docker import IMAGE, PORT, DockerHost, write_image
from swimnet.datapath.netns import path_of

FAST = """\
metrics = "off"
profile = "local"
docker_grace = 3.0
reconcile_interval = 2.0
[tuning]
probe_interval = 0.2
probe_timeout = 0.1
gossip_interval = 0.05
suspicion_mult = 2
push_pull_interval = 1.0
rejoin_interval = 1.0
join_sync_delays = [0.2, 0.6]
leave_timeout = 1.0
tcp_timeout = 1.0
"""


class DockerLab:
    def __init__(self, lab_: Lab, base: Path, hosts: int) -> None:
        self.lab = lab_
        self.config = base / "agent.toml"
        self.config.write_text(FAST)
        self.image_tar = base / "busybox.tar"
        self.hosts = [
            DockerHost(i, lab_.hosts[i - 1], lab_.vteps[i - 1], path_of(lab_.hosts[i - 1]), base)
            for i in range(1, hosts + 1)
        ]

    def seed(self, index: int) -> str | None:
        return None if index == 1 else f"{self.hosts[0].vtep}:{PORT}"

    def start(self) -> None:
        write_image(self.image_tar)
        for host in self.hosts:
            host.hold()
            host.start_dockerd()
            host.docker("import", str(self.image_tar), IMAGE)
            host.start_agent(self.config, self.seed(host.index))

    def close(self) -> list[str]:
        problems = []
        for host in self.hosts:
            try:
                problems += host.close()
            except Exception as exc:  # go on with the others
                problems.append(f"h{host.index}: {exc!r}")
        return problems


@contextlib.contextmanager
def docker_lab(hosts: int = 2) -> Iterator[DockerLab]:
    base = Path(tempfile.mkdtemp(prefix="swd", dir="/tmp"))
    try:
        with lab(hosts) as lab_:
            the_lab = DockerLab(lab_, base, hosts)
            try:
                the_lab.start()
                yield the_lab
            except BaseException:
                the_lab.close()  # the failure (or Ctrl-C) is what to report
                raise
            problems = the_lab.close()
            assert not problems, problems
    finally:
        shutil.rmtree(base, ignore_errors=True)
