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
    """ruff over everything, mypy --strict over swimnet/."""
    session.install("-e", ".[lint,test]")
    session.run("ruff", "check", ".")
    session.run("mypy", "--strict", "swimnet")


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks: `nox -s bench -- membership` (names select; none = all)."""
    session.install("-e", ".[test,bench]")
    session.run("python", "-m", "benchmarks", *session.posargs)


@nox.session
def demo(session: nox.Session) -> None:
    """The demo: a simulated cluster until the agent and datapath land."""
    session.install("-e", ".")
    session.run("python", "-m", "examples.demo", *session.posargs)
