"""nox sessions: tests (the whole suite), lint (ruff + mypy --strict), bench, demo.

Every session installs swimnet into its own virtualenv (reused between runs).
"""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "lint"]
nox.options.reuse_existing_virtualenvs = True
nox.options.default_venv_backend = "venv"


@nox.session
def tests(session: nox.Session) -> None:
    """The whole test suite. Extra args go to pytest: `nox -s tests -- -k codec`."""
    session.install("-e", ".[test]")
    session.run("python", "-m", "pytest", *(session.posargs or ["-q"]))


@nox.session
def lint(session: nox.Session) -> None:
    """ruff over everything, mypy --strict over swimnet/ and examples/."""
    session.install("-e", ".[lint,test]")
    session.run("ruff", "check", ".")
    session.run("mypy", "--strict", "swimnet", "examples")


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks: `nox -s bench -- membership` (names select; none = all)."""
    session.install("-e", ".[test,bench]")
    session.run("python", "-m", "benchmarks", *session.posargs)


@nox.session
def demo(session: nox.Session) -> None:
    """The pets lab: two hosts (network namespaces), two swimnet-agents, a VXLAN overlay and a
    web -> db conversation across it; needs root and iproute2. With dockerd, docker and
    busybox-static installed, each host runs a real dockerd whose driver is swimnet
    (`--docker`). Elsewhere (or with `-- --sim`) the narrated simulated cluster."""
    import os
    import shutil

    session.install("-e", ".")
    args = [a for a in session.posargs if a != "--sim"]
    lab_possible = os.geteuid() == 0 and shutil.which("ip") and shutil.which("bridge")
    docker = shutil.which("dockerd") and shutil.which("docker") and os.path.exists("/bin/busybox")
    if docker and "--docker" not in args:
        args.append("--docker")  # real dockerds with swimnet as their network and IPAM driver
    if "--sim" not in session.posargs and lab_possible:
        session.run("python", "-m", "examples.pets", *args)
    else:
        if "--sim" not in session.posargs:
            session.log("the pets lab needs root and iproute2: running the simulated cluster demo")
        session.run("python", "-m", "examples.demo", *args)
