"""`python -m swimnet.agent` as a process: exit codes and messages of the real command."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from agent_harness import run_cli_process

BAD_CONFIGS = [
    ("bind = 7946\n", "bind: expected a string, got integer"),
    ("colour = 'red'\n", "colour: unknown key"),
    ("name = 'x\n", "invalid TOML"),
    ("[tuning]\nprobe_interval = 'often'\n", "tuning.probe_interval: expected number, got string"),
]


@pytest.mark.parametrize(("text", "expected"), BAD_CONFIGS)
def test_bad_config_files_exit_2_naming_file_key_and_reason(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(text)
    done = run_cli_process("run", "--config", str(path), "--no-datapath")
    assert done.returncode == 2
    assert f"configuration error: {path}: " in done.stderr and expected in done.stderr, done.stderr


def test_missing_config_file_and_unsafe_key_file_exit_2(tmp_path: Path) -> None:
    missing = tmp_path / "nothere.toml"
    done = run_cli_process("run", "--config", str(missing))
    assert (
        done.returncode == 2
        and f"{missing}: cannot read config file: No such file or directory" in done.stderr
    )
    keys = tmp_path / "keys"
    keys.write_text(base64.b64encode(b"k" * 32).decode() + "\n")
    keys.chmod(0o644)
    done = run_cli_process(
        "run", "--keyring", str(keys), "--state-dir", str(tmp_path / "st"), "--socket", str(tmp_path / "s"),
        "--bind", "127.0.0.1:0", "--metrics", "off", "--no-datapath",
    )  # fmt: skip
    assert done.returncode == 2 and "keyring:" in done.stderr and "mode 0644" in done.stderr, done.stderr


def test_usage_errors_exit_2_and_unreachable_agents_exit_3(tmp_path: Path) -> None:
    done = run_cli_process("network", "create", "x")
    assert done.returncode == 2 and "the following arguments are required: --subnet" in done.stderr
    done = run_cli_process("run", "--profile", "fast")
    assert done.returncode == 2 and "invalid choice" in done.stderr
    done = run_cli_process("frobnicate")
    assert done.returncode == 2
    sock = tmp_path / "agent.sock"
    done = run_cli_process("members", "--socket", str(sock))
    assert done.returncode == 3 and str(sock) in done.stderr and "cannot reach the agent" in done.stderr


def test_keygen_prints_a_fresh_key_without_an_agent() -> None:
    first, second = run_cli_process("keygen"), run_cli_process("keygen")
    assert first.returncode == second.returncode == 0
    keys = [base64.b64decode(p.stdout.strip(), validate=True) for p in (first, second)]
    assert len(keys[0]) == 32 and keys[0] != keys[1]
