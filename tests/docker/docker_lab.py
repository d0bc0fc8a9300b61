"""Two hosts, each with its own dockerd and swimnet agent (Docker plugin on), on the
datapath tests' namespace lab (tests/datapath/datapath_lab.py).

Layout per host N (lab namespace p-hN, VTEP 192.0.2.1N):
- a private mount namespace, held by a `sleep` started with `unshare -m --propagation
  private`, where /run/docker/plugins is a bind mount of <dir>/hN/plugins: that dockerd
  discovers that agent's plugin only;
- dockerd in p-hN and that mount namespace: `--storage-driver vfs --iptables=false
  --bridge=none`, its own data-root, exec-root, pidfile and API socket under <dir>/hN
  (<dir> is a short temporary directory: containerd's socket paths must fit 108 bytes);
- the agent in p-hN and the same mount namespace (it opens dockerd's sandbox keys, and its
  own sandboxes are visible to dockerd there), `--docker-plugin --docker-api <dir>/hN/d.sock`;
- dockerd's upstream DNS is 127.0.0.12, where the plugin's resolver answers in each
  container (cluster names; Docker's embedded DNS at 127.0.0.11 forwards what it does not
  know there);
- an image `swimnet-busybox` imported from Debian's busybox-static (`docker import` of a
  tarball of /bin/busybox and its applet links).

Rules: everything is started through `DockerLab` and removed by `close()` on success,
failure and Ctrl-C (the context manager's finally): every container (`docker rm -f`), each
dockerd (SIGTERM, then SIGKILL after 30 s), each agent, then every process still in a
host's mount namespace (containerd, shims: found by the namespace's inode, killed by pid),
the holders (their mount namespaces, with the agents' sandbox mounts, die with them), the
temporary directory; then the namespace lab removes the host namespaces. `docker` runs in
the test process against each API socket, with a bound on every call.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from agent_lab import enter_netns
from datapath_lab import Lab, lab

from swimnet.agent.docker.plugin import DOCKER_DNS_ADDRESS
from swimnet.datapath.netns import path_of

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[2]
IMAGE = "swimnet-busybox"
BUSYBOX = "/bin/busybox"
APPLETS = ("sh", "ping", "nslookup", "sleep", "ip", "cat", "wget", "httpd", "mkdir", "ls", "ps")
PORT = 7946
CLONE_NEWNS = 0x00020000
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


def problem() -> str | None:
    """None when the Docker lab can run, else why not."""
    if os.geteuid() != 0:
        return "needs root"
    for tool in ("dockerd", "docker", "unshare", "ip"):
        if shutil.which(tool) is None:
            return f"needs {tool} (Debian: docker.io, util-linux, iproute2)"
    if not os.path.exists(BUSYBOX):
        return f"needs {BUSYBOX} (Debian: busybox-static)"
    return None


def _enter(net: str, mnt: str) -> None:
    """In the child between fork and exec: the host's mount and network namespaces."""
    enter_netns(mnt, CLONE_NEWNS)
    enter_netns(net)


class DockerError(AssertionError):
    pass


class DockerHost:
    def __init__(self, lab_: Lab, index: int, base: Path) -> None:
        self.index = index
        self.name = lab_.hosts[index - 1]
        self.vtep = lab_.vteps[index - 1]
        self.netns = path_of(self.name)
        self.dir = base / f"h{index}"
        self.plugins = self.dir / "plugins"
        self.api = self.dir / "d.sock"
        self.pidfile = self.dir / "d.pid"
        self.plugins.mkdir(parents=True)
        self.holder: subprocess.Popen[bytes] | None = None
        self.dockerd: subprocess.Popen[bytes] | None = None
        self.agent: subprocess.Popen[bytes] | None = None
        self.mnt = ""

    # -- processes ------------------------------------------------------------------------

    def hold(self) -> None:
        os.makedirs("/run/docker/plugins", exist_ok=True)
        script = f"mount --bind {self.plugins} /run/docker/plugins && exec sleep 100000"
        self.holder = subprocess.Popen(["unshare", "-m", "--propagation", "private", "sh", "-c", script])
        self.mnt = f"/proc/{self.holder.pid}/ns/mnt"
        mine = os.stat("/proc/self/ns/mnt").st_ino
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:  # until unshare ran and the bind mount is made
            with contextlib.suppress(OSError):
                inside = Path(f"/proc/{self.holder.pid}/root/run/docker/plugins/.h{self.index}")
                if os.stat(self.mnt).st_ino != mine and self._marked(inside):
                    return
            time.sleep(0.05)
        raise DockerError(f"h{self.index}: the mount namespace holder did not start")

    def _marked(self, inside: Path) -> bool:
        (self.plugins / f".h{self.index}").touch()
        return inside.exists()

    def _spawn(self, argv: list[str], log: str) -> subprocess.Popen[bytes]:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
        with open(self.dir / log, "ab") as out:
            return subprocess.Popen(
                argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                preexec_fn=lambda: _enter(self.netns, self.mnt),
            )

    def start_dockerd(self, dns: str | None = None) -> None:
        argv = [
            "dockerd",
            "--storage-driver", "vfs", "--iptables=false", "--ip-masq=false", "--bridge=none",
            "--data-root", str(self.dir / "data"), "--exec-root", str(self.dir / "exec"),
            "--pidfile", str(self.pidfile), "-H", f"unix://{self.api}",
        ]  # fmt: skip
        if dns:
            argv += ["--dns", dns]
        self.dockerd = self._spawn(argv, "dockerd.log")
        wait_for(
            lambda: self.docker_ok("version"), f"dockerd h{self.index} up", timeout=90, on_fail=self.tail
        )

    def stop_dockerd(self) -> None:
        proc, self.dockerd = self.dockerd, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)

    def start_agent(self, config: Path, join: str | None) -> None:
        argv = [
            sys.executable, "-m", "swimnet.agent", "run",
            "--config", str(config),
            "--name", self.name,
            "--bind", f"{self.vtep}:{PORT}",
            "--state-dir", str(self.dir / "agent-state"),
            "--socket", str(self.dir / "agent.sock"),
            "--docker-plugin", "--docker-api", str(self.api),
        ]  # fmt: skip
        if join:
            argv += ["--join", join]
        self.agent = self._spawn(argv, "agent.log")
        wait_for(lambda: self.plugin_ready(), f"agent h{self.index} ready", timeout=60, on_fail=self.tail)

    def plugin_ready(self) -> bool:
        if self.agent is not None and self.agent.poll() is not None:
            raise DockerError(f"agent h{self.index} exited {self.agent.returncode}:\n{self.tail()}")
        status = self.cli("status", check=False)
        return bool(status and status.get("ready")) and (self.plugins / "swimnet.sock").exists()

    def kill_agent(self, sig: int = signal.SIGKILL) -> None:
        proc, self.agent = self.agent, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)

    # -- clients --------------------------------------------------------------------------

    def docker(self, *args: str, check: bool = True, timeout: float = 120) -> str:
        done = subprocess.run(
            ["docker", "-H", f"unix://{self.api}", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and done.returncode:
            raise DockerError(f"h{self.index}: docker {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout if not done.returncode else done.stderr

    def docker_ok(self, *args: str) -> bool:
        return (
            subprocess.run(
                ["docker", "-H", f"unix://{self.api}", *args], capture_output=True, timeout=60, check=False
            ).returncode
            == 0
        )

    def cli(self, *args: str, check: bool = True) -> Any:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "swimnet.agent",
                *args,
                "--socket",
                str(self.dir / "agent.sock"),
                "--json",
            ],
            capture_output=True,
            text=True,
            timeout=90,
            env=env,
            check=False,
        )
        if done.returncode:
            if check:
                raise DockerError(f"h{self.index}: swimnet-agent {' '.join(args)}: {done.stderr.strip()}")
            return None
        return json.loads(done.stdout) if done.stdout.strip() else None

    def tail(self, lines: int = 25) -> str:
        out = []
        for log in ("agent.log", "dockerd.log"):
            with contextlib.suppress(OSError):
                text = (self.dir / log).read_text(errors="replace").splitlines()[-lines:]
                out.append(f"--- h{self.index} {log} ---\n" + "\n".join(text))
        return "\n".join(out)

    # -- cleanup --------------------------------------------------------------------------

    def close(self) -> list[str]:
        """Remove everything this host started; what could not be removed, described."""
        problems: list[str] = []
        if self.dockerd is not None and self.dockerd.poll() is None:
            with contextlib.suppress(Exception):
                ids = self.docker("ps", "-aq", check=False, timeout=30).split()
                if ids:
                    self.docker("rm", "-f", *ids, check=False, timeout=120)
        self.stop_dockerd()
        self.kill_agent(signal.SIGTERM)
        if self.holder is not None:
            for pid in self._in_namespace():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            self.holder.kill()
            self.holder.wait(timeout=10)
            time.sleep(0.2)
            left = self._in_namespace()
            if left:
                problems.append(f"h{self.index}: processes left in its mount namespace: {left}")
            self.holder = None
        return problems

    def _in_namespace(self) -> list[int]:
        try:
            target = os.stat(self.mnt).st_ino
        except OSError:
            return []
        found = []
        for entry in os.listdir("/proc"):
            if entry.isdigit() and int(entry) != (self.holder.pid if self.holder else -1):
                with contextlib.suppress(OSError):
                    if os.stat(f"/proc/{entry}/ns/mnt").st_ino == target:
                        found.append(int(entry))
        return found


class DockerLab:
    def __init__(self, lab_: Lab, base: Path, hosts: int) -> None:
        self.lab = lab_
        self.base = base
        self.config = base / "agent.toml"
        self.config.write_text(FAST)
        self.image_tar = base / "busybox.tar"
        self.hosts = [DockerHost(lab_, i, base) for i in range(1, hosts + 1)]

    def seed(self, index: int) -> str | None:
        return None if index == 1 else f"{self.hosts[0].vtep}:{PORT}"

    def start(self) -> None:
        _image(self.image_tar)
        for host in self.hosts:
            host.hold()
            host.start_dockerd(dns=DOCKER_DNS_ADDRESS)
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


def _image(path: Path) -> None:
    """A root filesystem tarball: busybox and its applets (the image Docker imports)."""
    with tarfile.open(path, "w") as tar:
        tar.add(BUSYBOX, arcname="bin/busybox")
        for applet in APPLETS:
            info = tarfile.TarInfo(f"bin/{applet}")
            info.type, info.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(info)
        for folder in ("etc", "tmp", "proc", "sys", "dev"):
            info = tarfile.TarInfo(folder)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)


def wait_for(
    probe: Callable[[], T], what: str, *, timeout: float = 60.0, on_fail: Callable[[], str] | None = None
) -> T:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        with contextlib.suppress(DockerError, subprocess.TimeoutExpired):
            last = probe()
            if last:
                return last
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})\n{on_fail() if on_fail else ''}")


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
