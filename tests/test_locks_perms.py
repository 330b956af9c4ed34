"""Issue 26: two trainers on one output folder (a lock naming the other's pid; a dead owner's lock is taken over),
a new output folder on a read-only file system, private modes for every model and checkpoint written (0700 / 0600,
what the HF Trainer saves included), model folders that ship Python code (never run on a "y"), and tiny GPT
checkpoints with missing keys or impossible model args (one line, not KeyError / ZeroDivisionError)."""

from __future__ import annotations

import errno
import io
import json
import os
import re
import shutil
import socket
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from graftkit.errors import ConfigError, UserError
from graftkit.runstate import LOCK_NAME, RunLock
from test_lora import tiny_cfg as lora_cfg
from test_lora import write_data
from test_preemption import ENV, ROOT, signal_after_first, tiny_config, tiny_overrides  # noqa: F401
from test_tiny_gpt import data_dir, quiet  # noqa: F401  (data_dir: a fixture)
from tiny_llama import make_tiny_llama

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def lora_env(tmp_path_factory):
    base = tmp_path_factory.mktemp("lora_locks")
    return {"tiny": make_tiny_llama(base / "tiny"), "data": write_data(base / "data.jsonl"), "base": base}


def cli(main, argv: list[str], capsys) -> tuple[int, list[str]]:
    rc = main(argv)
    return rc, capsys.readouterr().err.strip().splitlines()


# ----------------------------------------------------------------------------- 4. two trainers, one folder


def test_second_tiny_gpt_on_the_same_out_dir_stops_naming_the_first(data_dir, tmp_path, capsys):
    import train_tiny_gpt

    out = tmp_path / "run"
    ov = tiny_overrides(data_dir, out)
    first = subprocess.Popen([sys.executable, "train_tiny_gpt.py", "--config", "tiny_gpt_config.yaml", *ov], cwd=ROOT,
                             env=ENV, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        for line in first.stdout:  # the first run is training
            if line.startswith("iter "):
                break
        rc, err = cli(train_tiny_gpt.main, ["--config", "tiny_gpt_config.yaml", *ov], capsys)
        assert rc == 2 and len(err) == 1, err
        assert err[0].startswith(f"error: {out}: another training run (pid {first.pid}, started ") and \
            "is using this out_dir" in err[0]
        first.kill()  # kill -9: the lock file stays behind with a dead pid in it
        first.wait()
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert json.loads((out / LOCK_NAME).read_text())["pid"] == first.pid
    rows = len((out / "metrics.jsonl").read_text().splitlines())
    rc, err = cli(train_tiny_gpt.main, ["--config", "tiny_gpt_config.yaml", *tiny_overrides(data_dir, out, max_iters=3)],
                  capsys)
    assert rc == 0, err  # the dead run's lock is taken over; it resumed from the dead run's last.pt
    assert not (out / LOCK_NAME).exists()  # released at the end
    assert rows >= 1


def test_second_lora_run_stops_before_loading_the_model(lora_env, tmp_path):
    from train_lora import run

    out = tmp_path / "out"
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(ROOT)!r})
        from graftkit.runstate import RunLock
        RunLock({str(out)!r}, "output_dir").acquire()
        print("held", flush=True)
        time.sleep(120)
    """)], stdout=subprocess.PIPE, text=True)
    try:
        (out.mkdir(),)
        assert holder.stdout.readline().strip() == "held"
        t0 = time.perf_counter()
        with pytest.raises(UserError, match=rf"another training run \(pid {holder.pid}, started .*\) is using this "
                                            r"output_dir; wait for it to finish, stop it, or choose another output_dir"):
            run(lora_cfg(lora_env["tiny"], lora_env["data"], out))
        assert time.perf_counter() - t0 < 5 and not list(out.glob("checkpoint-*"))
    finally:
        holder.kill()
        holder.wait()


def test_lock_without_flock_uses_the_pid_and_takes_over_a_dead_one(tmp_path, monkeypatch):
    """Network file systems without flock: the lock file itself, created exclusively."""
    import fcntl

    def no_flock(fd, op):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_flock)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host = socket.gethostname()
    (tmp_path / LOCK_NAME).write_text(json.dumps({"pid": dead.pid, "host": host}))
    with RunLock(tmp_path):
        assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == os.getpid()
        with pytest.raises(UserError, match=rf"another training run \(pid {os.getpid()}"):
            RunLock(tmp_path).acquire()
    assert not (tmp_path / LOCK_NAME).exists()
    (tmp_path / LOCK_NAME).write_text(json.dumps({"pid": os.getppid(), "host": host}))  # alive
    with pytest.raises(UserError, match=rf"pid {os.getppid()}"):
        RunLock(tmp_path).acquire()


# ----------------------------------------------------------------------------- 5. read-only file system


@pytest.fixture
def read_only_dir(tmp_path, monkeypatch):
    """A read-only tmpfs where root may mount one; elsewhere mkdir answers EROFS as it would there."""
    mnt = tmp_path / "ro"
    mnt.mkdir()
    mounted = os.geteuid() == 0 and shutil.which("mount") and subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(mnt)], capture_output=True).returncode == 0
    if not mounted:
        real = Path.mkdir

        def mkdir(self, *a, **kw):
            if str(self).startswith(str(mnt) + os.sep):
                raise OSError(errno.EROFS, "Read-only file system", str(self))
            return real(self, *a, **kw)

        monkeypatch.setattr(Path, "mkdir", mkdir)
    try:
        yield mnt
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_new_out_dir_on_a_read_only_file_system_is_one_line(data_dir, read_only_dir, capsys, lora_env):
    import train_tiny_gpt
    from train_lora import run

    out = read_only_dir / "new" / "run"
    rc, err = cli(train_tiny_gpt.main, ["--config", "tiny_gpt_config.yaml", *tiny_overrides(data_dir, out)], capsys)
    assert rc == 2 and err == [f"error: {read_only_dir / 'new'}: cannot write: read-only file system; nothing was "
                               f"written"], err
    with pytest.raises(UserError, match=r"read-only file system"):
        run(lora_cfg(lora_env["tiny"], lora_env["data"], out))


# ----------------------------------------------------------------------------- 9. permissions


def modes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root.parent)): stat.S_IMODE(p.stat().st_mode) for p in [root, *root.rglob("*")]}


def test_tiny_gpt_out_dir_parents_and_files_are_private(data_dir, tmp_path):
    import train_tiny_gpt

    old = os.umask(0o022)
    try:
        train_tiny_gpt.train(tiny_config(tiny_overrides(data_dir, tmp_path / "a" / "b" / "run", max_iters=4,
                                                        eval_interval=2)), log=quiet)
        assert os.umask(0o022) == 0o022  # the run restored the umask
    finally:
        os.umask(old)
    m = modes(tmp_path / "a")
    assert {"a/b/run/last.pt", "a/b/run/best.pt", "a/b/run/metrics.jsonl", "a/b/run/loss_curve.png"} <= set(m)
    assert {k: oct(v) for k, v in m.items() if v != (0o700 if (tmp_path / k).is_dir() else 0o600)} == {}


def test_lora_output_dir_checkpoints_and_adapter_are_private(lora_env, tmp_path):
    from train_lora import run

    old = os.umask(0o022)
    try:
        run(lora_cfg(lora_env["tiny"], lora_env["data"], tmp_path / "x" / "out", "max_steps=2", "save_steps=2",
                     "eval_steps=2"))
        assert os.umask(0o022) == 0o022
    finally:
        os.umask(old)
    root = tmp_path / "x"
    m = modes(root)
    assert {"x/out/checkpoint-2/optimizer.pt", "x/out/checkpoint-2/adapter_model.safetensors",
            "x/out/checkpoint-2/trainer_state.json", "x/out/adapter/adapter_model.safetensors",
            "x/out/train_summary.json"} <= set(m)
    assert {k: oct(v) for k, v in m.items() if v != (0o700 if (tmp_path / k).is_dir() else 0o600)} == {}


# ----------------------------------------------------------------------------- 6. model folders with their own code

EVIL = textwrap.dedent("""
    from pathlib import Path
    Path({marker!r}).write_text("the model folder's code ran")  # at import: what an attacker gets
    from transformers import PretrainedConfig, PreTrainedTokenizerFast
    class EvilConfig(PretrainedConfig):
        model_type = "graftkit_evil"
    class EvilTokenizer(PreTrainedTokenizerFast):
        pass
""")


def evil_copy(tiny: Path, where: Path) -> Path:
    """A model folder as an attacker would share it: auto_map pointing at its own evil.py, and a model type
    transformers does not know, so that loading it needs that code."""
    d = where / "evil"
    shutil.copytree(tiny, d)
    (d / "evil.py").write_text(EVIL.format(marker=str(d / "RAN")))
    cfg = json.loads((d / "config.json").read_text())
    cfg.update(model_type="graftkit_evil", auto_map={"AutoConfig": "evil.EvilConfig",
                                                     "AutoModelForCausalLM": "evil.EvilModel"})
    (d / "config.json").write_text(json.dumps(cfg))
    tc = json.loads((d / "tokenizer_config.json").read_text())
    tc.update(tokenizer_class="EvilTokenizer", auto_map={"AutoTokenizer": ["evil.EvilTokenizer", None]})
    (d / "tokenizer_config.json").write_text(json.dumps(tc))
    (d / "graftkit_lora.json").write_text(json.dumps({"model_id": str(d), "eot_token": "<|im_end|>", "family": "chatml"}))
    return d


def test_without_the_fix_a_piped_y_runs_the_folders_code(lora_env, tmp_path):
    """The attack is real: transformers, left to ask, runs evil.py on a "y" read from stdin."""
    evil = evil_copy(lora_env["tiny"], tmp_path)
    r = subprocess.run([sys.executable, "-c", f"from transformers import AutoTokenizer; "
                        f"AutoTokenizer.from_pretrained({str(evil)!r})"], input="y\ny\ny\n", capture_output=True, text=True,
                       timeout=600, env={**ENV, "HF_MODULES_CACHE": str(tmp_path / "modules")})
    assert (evil / "RAN").exists(), r.stderr[-1500:]


def test_chat_on_a_folder_with_code_never_runs_it(lora_env, tmp_path):
    evil = evil_copy(lora_env["tiny"], tmp_path)
    r = subprocess.run([sys.executable, "train_lora.py", "--chat", "--config", "lora_config.yaml", "--model-dir",
                        str(evil)], cwd=ROOT, input="y\nhello\n", capture_output=True, text=True, timeout=600,
                       env={**ENV, "HF_MODULES_CACHE": str(tmp_path / "modules")})
    assert not (evil / "RAN").exists()
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-1500:]
    lines = r.stderr.strip().splitlines()  # (transformers may log a warning about the unknown model type first)
    err = [x for x in lines if x.startswith("error:")]
    assert err == lines[-1:] and err[0].startswith(f"error: {evil}: this model ships its own Python code (auto_map"), err
    assert "trust_remote_code: true" in err[0] and not r.stdout.strip()


def test_training_and_prepare_tokenizer_never_run_the_folders_code(lora_env, tmp_path, monkeypatch, capsys):
    from graftkit.lora.backend import load_base
    from graftkit.prepare.tokenizer_report import load_token_counter
    from train_lora import run

    evil = evil_copy(lora_env["tiny"], tmp_path)
    monkeypatch.setattr(sys, "stdin", io.StringIO("y\n" * 10))
    with pytest.raises(UserError, match="this model ships its own Python code"):
        run(lora_cfg(lora_env["tiny"], lora_env["data"], tmp_path / "out", f"base_model={evil}"))
    with pytest.raises(UserError, match="this model ships its own Python code"):
        load_base(type("C", (), {"gguf_file": ""})(), str(lora_env["tiny"]), False, tokenizer_from=str(evil))
    with pytest.raises(UserError, match="cannot load a Hugging Face tokenizer from this folder"):
        load_token_counter(str(evil))
    assert not (evil / "RAN").exists()


def test_trust_remote_code_is_an_opt_in_key_with_a_warning(lora_env, tmp_path, capsys):
    from graftkit.lora.safety import warn_remote_code

    assert lora_cfg(lora_env["tiny"], lora_env["data"], tmp_path).trust_remote_code is False
    yaml_text = (ROOT / "lora_config.yaml").read_text()
    assert re.search(r"\n# [^\n]*\n# [^\n]*\n# [^\n]*\n# [^\n]*\ntrust_remote_code: false\n", yaml_text)
    cfg = lora_cfg(lora_env["tiny"], lora_env["data"], tmp_path, "trust_remote_code=true")
    assert cfg.trust_remote_code is True
    warn_remote_code(cfg.trust_remote_code)
    assert "trust_remote_code: true - Python files shipped with the base model" in capsys.readouterr().err


# ----------------------------------------------------------------------------- also noted: damaged tiny GPT checkpoints


@pytest.fixture(scope="module")
def tiny_ckpt(data_dir, tmp_path_factory) -> Path:
    import train_tiny_gpt

    out = tmp_path_factory.mktemp("ckpt") / "run"
    train_tiny_gpt.train(tiny_config(tiny_overrides(data_dir, out, max_iters=4, eval_interval=2)), log=quiet)
    return out


@pytest.mark.parametrize("damage, message", [
    (lambda c: c.pop("sampler"), "checkpoint is incomplete (no sampler): it cannot resume training"),
    (lambda c: c.pop("rng"), "checkpoint is incomplete (no rng)"),
    (lambda c: c.pop("optimizer"), "checkpoint is incomplete (no optimizer)"),
    (lambda c: c["model_args"].update(n_head=0), "checkpoint model_args: n_head=0 is not a whole number in [1, "),
    (lambda c: c["rng"].pop("numpy"), "checkpoint is incomplete (no 'numpy')"),
    (lambda c: c.update(sampler={"epoch": "x"}), "checkpoint is damaged ("),
])
def test_damaged_tiny_gpt_checkpoint_is_one_line(data_dir, tiny_ckpt, tmp_path, capsys, damage, message):
    import train_tiny_gpt

    out = tmp_path / "run"
    shutil.copytree(tiny_ckpt, out)
    ckpt = torch.load(out / "last.pt", weights_only=True)
    damage(ckpt)
    torch.save(ckpt, out / "last.pt")
    rc, err = cli(train_tiny_gpt.main, ["--config", "tiny_gpt_config.yaml",
                                        *tiny_overrides(data_dir, out, max_iters=6, eval_interval=2)], capsys)
    assert rc == 2 and len(err) == 1 and err[0].startswith(f"error: {out / 'last.pt'}: {message}"), err


def test_n_head_zero_in_a_checkpoint_is_one_line_for_sampling(data_dir, tiny_ckpt, tmp_path, capsys):
    import train_tiny_gpt

    path = tmp_path / "zero.pt"
    ckpt = torch.load(tiny_ckpt / "last.pt", weights_only=True)
    ckpt["model_args"]["n_head"] = 0
    torch.save(ckpt, path)
    rc, err = cli(train_tiny_gpt.main, ["--config", "tiny_gpt_config.yaml", "--sample", "hi", "--checkpoint", str(path),
                                        "device=cpu"], capsys)
    assert rc == 2 and err == [f"error: {path}: checkpoint model_args: n_head=0 is not a whole number in "
                               f"[1, 1048576]"], err


def test_tiny_gpt_export_is_private(data_dir, tiny_ckpt, tmp_path, capsys):
    import train_tiny_gpt

    old = os.umask(0o022)
    try:
        rc, err = cli(train_tiny_gpt.main, ["--config", "tiny_gpt_config.yaml", "--export-hf", str(tmp_path / "e" / "hf"),
                                            "--checkpoint", str(tiny_ckpt / "last.pt"), "device=cpu"], capsys)
    finally:
        os.umask(old)
    assert rc == 0, err
    m = modes(tmp_path / "e")
    assert "e/hf/config.json" in m and "e/hf/model.safetensors" in m
    assert {k: oct(v) for k, v in m.items() if v != (0o700 if (tmp_path / k).is_dir() else 0o600)} == {}
