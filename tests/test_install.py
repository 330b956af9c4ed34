"""pyproject.toml: the package, the five commands, and the same dependencies as requirements*.txt."""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
import tomllib
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = {"graftkit-prepare": "prepare_training_data", "graftkit-tokenizer": "tokenizer_setup",
            "graftkit-train-tiny": "train_tiny_gpt", "graftkit-train-lora": "train_lora", "graftkit-eval": "evaluate_persona"}


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def requirement_names(lines: list[str]) -> dict[str, str]:
    out = {}
    for line in lines:
        line = line.split("#")[0].strip()
        if line and not line.startswith("-"):
            name = re.match(r"[A-Za-z0-9_.-]+", line).group(0).lower().replace("_", "-")
            out[name] = line.replace(" ", "")
    return out


def test_commands_point_at_each_scripts_main():
    meta = pyproject()
    assert meta["project"]["scripts"] == {cmd: f"{mod}:main" for cmd, mod in COMMANDS.items()}
    assert sorted(meta["tool"]["setuptools"]["py-modules"]) == sorted(COMMANDS.values())
    for mod in COMMANDS.values():
        assert (ROOT / f"{mod}.py").is_file()
        main = importlib.import_module(mod).main
        assert main.__wrapped__.__name__ == "main"  # the cli_main wrapper: one-line errors, notebook-aware


def test_dependencies_match_the_requirements_files():
    meta = pyproject()
    base = requirement_names(meta["project"]["dependencies"])
    req = requirement_names((ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines())
    assert set(base) == set(req)
    # one deliberate difference: trl>=1.15 so the [gpu] extra (Unsloth's trl==1.15.0) can resolve
    assert {k: v for k, v in base.items() if k != "trl"} == {k: v for k, v in req.items() if k != "trl"}
    gpu = requirement_names(meta["project"]["optional-dependencies"]["gpu"])
    req_gpu = requirement_names((ROOT / "requirements-gpu.txt").read_text(encoding="utf-8").splitlines())
    assert gpu == {k: v for k, v in req_gpu.items() if k not in req or v != req[k]}
    dev = requirement_names(meta["project"]["optional-dependencies"]["dev"])
    assert dev == requirement_names((ROOT / "requirements-dev.txt").read_text(encoding="utf-8").splitlines())


@pytest.mark.slow
def test_pip_install_then_commands_work_from_another_directory(tmp_path):
    """A clean venv (system site-packages for torch & co.), `pip install <copy of the repo>`, then the
    commands and `import train_tiny_gpt` from a folder that is not the repository."""
    from test_readme import copy_repo

    src = copy_repo(tmp_path / "src")
    env_dir = tmp_path / "venv"
    # no pip of its own: the venv uses the system pip and setuptools (ensurepip would add an old setuptools)
    venv.EnvBuilder(system_site_packages=True, with_pip=False).create(env_dir)
    py, bin_dir = env_dir / "bin" / "python", env_dir / "bin"
    r = subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", str(src)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    for cmd in COMMANDS:
        r = subprocess.run([str(bin_dir / cmd), "--help"], cwd=elsewhere, capture_output=True, text=True,
                           timeout=120, env=env)
        assert r.returncode == 0 and "usage:" in r.stdout, (cmd, r.stderr[-2000:])
    r = subprocess.run([str(py), "-c", "import train_tiny_gpt, graftkit, sys; print(train_tiny_gpt.__file__); "
                        "print(graftkit.__file__)"], cwd=elsewhere, capture_output=True, text=True, env=env)
    assert r.returncode == 0 and all(str(env_dir) in line for line in r.stdout.splitlines()), r.stdout + r.stderr
    # a bad input is still one line from the installed command
    r = subprocess.run([str(bin_dir / "graftkit-prepare"), "missing_export.txt", "--me", "Sam"], cwd=elsewhere,
                       capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 2 and r.stderr.startswith("error: ") and len(r.stderr.strip().splitlines()) == 1
