"""Sessions: tests (the whole suite), lint (ruff + mypy --strict), bench, demo."""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "lint"]
nox.options.reuse_existing_virtualenvs = True


@nox.session(python=False)
def tests(session: nox.Session) -> None:
    """The whole test suite, in a venv of its own."""
    _venv_run(session, ["-m", "pytest", *(session.posargs or ["-q"])], extras="test")


@nox.session(python=False)
def lint(session: nox.Session) -> None:
    """ruff and mypy --strict over swimnet/."""
    _venv_run(session, ["-m", "ruff", "check", "swimnet", "tests", "benchmarks", "examples"],
              extras="lint,test")
    _venv_run(session, ["-m", "mypy", "--strict", "swimnet"], extras="lint,test")


@nox.session(python=False)
def bench(session: nox.Session) -> None:
    """Benchmarks: `nox -s bench -- membership` (names select; none = all)."""
    _venv_run(session, ["-m", "benchmarks", *session.posargs], extras="test,bench")


@nox.session(python=False)
def demo(session: nox.Session) -> None:
    """The demo (a simulated cluster until the agent and datapath land)."""
    _venv_run(session, ["-m", "examples.demo", *session.posargs], extras="test")


def _venv_run(session: nox.Session, args: list[str], *, extras: str) -> None:
    """Create (once) .nox/env, install swimnet with `extras`, run python `args` in it.

    One shared venv keeps a fresh machine's first run to a single dependency install.
    """
    import os
    import sys

    venv = os.path.join(".nox", "env")
    py = os.path.join(venv, "bin", "python")
    if not os.path.exists(py):
        session.run(sys.executable, "-m", "venv", venv, external=True)
        session.run(py, "-m", "pip", "install", "-q", "--upgrade", "pip", external=True)
    session.run(py, "-m", "pip", "install", "-q", "-e", f".[{extras}]", external=True)
    session.run(py, *args, external=True)
