"""A lab host with a real dockerd and a swimnet agent serving it as Docker's network and IPAM
driver (shared by the pets demo's Docker mode and the tests in tests/docker).

Per host (a network namespace given by path, e.g. a pets or datapath lab host):
- a private mount namespace, held by a `sleep` started with `unshare -m --propagation
  private`, where /run/docker/plugins is a bind mount of <dir>/plugins: that dockerd
  discovers that agent's plugin only;
- dockerd in the host's network namespace and that mount namespace: `--storage-driver vfs
  --iptables=false --bridge=none`, its own data-root, exec-root, pidfile and API socket
  under <dir> (keep <dir> short: containerd's socket paths must fit 108 bytes), `--dns
  127.0.0.12` (the plugin's resolver in each container: cluster names);
- the agent in the same namespaces (it opens dockerd's sandbox keys; its own sandboxes are
  visible to dockerd there) with `--docker-plugin --docker-api <dir>/d.sock`;
- `write_image` makes the root filesystem tarball `docker import` turns into IMAGE: Debian's
  busybox-static and its applet links.

Rules: every process is started here (it dies with its parent: PR_SET_PDEATHSIG) and
stopped by `close()`, on success, failure and Ctrl-C: every container (`docker rm -f`),
dockerd (SIGTERM, SIGKILL after 30 s), the agent, then every process still in the mount
namespace (containerd, shims: found by the namespace's inode, killed by pid), the holder
(the mount namespace, with the agent's sandbox mounts, dies with it). `docker` runs in the
caller's process against the API socket, every call bounded.
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
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from examples.pets import processes
from examples.pets.lab import child_setup
from swimnet.agent.docker.container_names import DOCKER_DNS_ADDRESS

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[2]
IMAGE = "swimnet-busybox"
BUSYBOX = "/bin/busybox"
APPLETS = ("sh", "ping", "nslookup", "sleep", "ip", "cat", "wget", "httpd", "mkdir", "ls", "ps")
PORT = 7946


class DockerError(AssertionError):
    """A docker or agent step failed (the message says which)."""


def docker_problem() -> str | None:
    """None when a Docker lab can run here, else why not."""
    if os.geteuid() != 0:
        return "needs root"
    for tool in ("dockerd", "docker", "unshare", "ip"):
        if shutil.which(tool) is None:
            return f"needs {tool} (Debian: docker.io, util-linux, iproute2)"
    if not os.path.exists(BUSYBOX):
        return f"needs {BUSYBOX} (Debian: busybox-static)"
    return None


def write_image(path: Path) -> None:
    """A root filesystem tarball: busybox and its applets (what `docker import` takes)."""
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
    last: T | None = None
    while time.monotonic() < deadline:
        with contextlib.suppress(DockerError, subprocess.TimeoutExpired):
            answer = probe()
            last = answer
            if answer:
                return answer
        time.sleep(0.2)
    raise DockerError(f"timed out waiting for {what} (last: {last!r})\n{on_fail() if on_fail else ''}")


class DockerHost:
    def __init__(self, index: int, name: str, vtep: str, netns: str, base: Path) -> None:
        self.index = index
        self.name = name
        """The agent's node name (and datapath tag)."""
        self.vtep = vtep
        self.netns = netns
        self.dir = base / f"h{index}"
        self.plugins = self.dir / "plugins"
        self.api = self.dir / "d.sock"
        self.plugins.mkdir(parents=True)
        self.holder: subprocess.Popen[bytes] | None = None
        self.dockerd: subprocess.Popen[bytes] | None = None
        self.agent: subprocess.Popen[bytes] | None = None
        self.mnt = ""
        path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
        self.env = {**os.environ, "PYTHONPATH": path}

    # -- processes ------------------------------------------------------------------------

    def hold(self) -> None:
        os.makedirs("/run/docker/plugins", exist_ok=True)
        script = f"mount --bind {self.plugins} /run/docker/plugins && exec sleep 100000"
        self.holder = subprocess.Popen(
            ["unshare", "-m", "--propagation", "private", "sh", "-c", script],
            preexec_fn=child_setup(None),
            start_new_session=True,
        )
        self.mnt = f"/proc/{self.holder.pid}/ns/mnt"
        marker = self.plugins / f".h{self.index}"
        marker.touch()
        inside = Path(f"/proc/{self.holder.pid}/root/run/docker/plugins/{marker.name}")
        wait_for(inside.exists, f"h{self.index}'s mount namespace", timeout=20)

    def _spawn(self, argv: list[str], log: str) -> subprocess.Popen[bytes]:
        with open(self.dir / log, "ab") as out:
            return subprocess.Popen(
                argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env,
                preexec_fn=child_setup(self.netns, self.mnt),
                start_new_session=True,  # Ctrl-C reaches the caller only; close() stops them
            )

    def start_dockerd(self) -> None:
        argv = [
            "dockerd",
            "--storage-driver", "vfs", "--iptables=false", "--ip-masq=false", "--bridge=none",
            "--data-root", str(self.dir / "data"), "--exec-root", str(self.dir / "exec"),
            "--pidfile", str(self.dir / "d.pid"), "-H", f"unix://{self.api}",
            "--dns", DOCKER_DNS_ADDRESS,
        ]  # fmt: skip
        self.dockerd = self._spawn(argv, "dockerd.log")
        up = f"dockerd h{self.index} up"
        wait_for(lambda: self.docker_ok("version"), up, timeout=90, on_fail=self.tail)

    def stop_dockerd(self) -> None:
        _stop(self.dockerd, signal.SIGTERM, 30)
        self.dockerd = None

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
        wait_for(self.plugin_ready, f"agent h{self.index} ready", timeout=60, on_fail=self.tail)

    def plugin_ready(self) -> bool:
        if self.agent is not None and self.agent.poll() is not None:
            raise DockerError(f"agent h{self.index} exited {self.agent.returncode}:\n{self.tail()}")
        status = self.cli("status", check=False)
        return bool(status and status.get("ready")) and (self.plugins / "swimnet.sock").exists()

    def kill_agent(self, sig: int = signal.SIGKILL) -> None:
        _stop(self.agent, sig, 20)
        self.agent = None

    # -- clients --------------------------------------------------------------------------

    def docker(self, *args: str, check: bool = True, timeout: float = 120) -> str:
        """`docker ARGS` against this host's dockerd: its output (its error with check=False)."""
        argv = ["docker", "-H", f"unix://{self.api}", *args]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
        if check and done.returncode:
            raise DockerError(f"h{self.index}: docker {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout if not done.returncode else done.stderr

    def docker_ok(self, *args: str) -> bool:
        argv = ["docker", "-H", f"unix://{self.api}", *args]
        return subprocess.run(argv, capture_output=True, timeout=60, check=False).returncode == 0

    def cli(self, *args: str, check: bool = True, as_json: bool = True) -> Any:
        """`swimnet-agent ARGS [--json]` against this host's agent: the parsed answer (the text
        without as_json; None when it failed and check=False)."""
        socket = str(self.dir / "agent.sock")
        argv = processes.client_argv(*args, "--socket", socket, *(["--json"] if as_json else []))
        wait = processes.CLI_TIMEOUT + processes.CLI_START  # the client gives up first
        done = subprocess.run(argv, capture_output=True, text=True, timeout=wait, env=self.env, check=False)
        if done.returncode:
            if check:
                raise DockerError(f"h{self.index}: swimnet-agent {' '.join(args)}: {done.stderr.strip()}")
            return None
        if not as_json:
            return done.stdout.rstrip("\n")
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
        for name, proc, grace in (("dockerd", self.dockerd, 30.0), ("agent", self.agent, 20.0)):
            label = f"h{self.index} {name}"
            problem = None if proc is None else processes.stop(proc, grace=grace, name=label)
            problems += [] if problem is None else [problem]
        self.dockerd = self.agent = None
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
        holder = self.holder.pid if self.holder is not None else -1
        for entry in os.listdir("/proc"):
            if entry.isdigit() and int(entry) != holder:
                with contextlib.suppress(OSError):
                    if os.stat(f"/proc/{entry}/ns/mnt").st_ino == target:
                        found.append(int(entry))
        return found


def _stop(proc: subprocess.Popen[bytes] | None, sig: int, patience: float) -> None:
    if proc is not None:
        problem = processes.stop(proc, sig=sig, grace=patience)
        if problem is not None:
            raise DockerError(problem)
