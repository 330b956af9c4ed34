"""Issue 26, lose work: SIGTERM / SIGHUP (preemption, `docker stop`, `timeout`, a closed terminal) save and resume
exactly in both trainers; a LoRA checkpoint cut in half is skipped for the previous good one; a full disk or a
file-size limit while saving last.pt is one line and the previous checkpoint survives."""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from graftkit.config import load_config
from graftkit.errors import UserError
from graftkit.tiny_gpt.config import TinyGPTConfig
from test_lora import tiny_cfg as lora_cfg
from test_lora import write_data
from test_tiny_gpt import data_dir, quiet  # noqa: F401  (data_dir: a fixture)
from tiny_llama import make_tiny_llama

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny_overrides(data_dir: Path, out: Path, **kw) -> list[str]:
    base = dict(train_file=data_dir / "train.txt", val_file=data_dir / "val.txt",
                tokenizer_path=data_dir / "tok_char.json", tokenizer_type="char", min_char_freq=1, n_layer=2, n_head=2,
                n_embd=32, block_size=32, batch_size=8, dropout=0.1, max_iters=100000, eval_interval=100000,
                eval_iters=2, log_interval=1, num_samples=0, out_dir=out, device="cpu", dtype="float32",
                progress=False, seed=7, patience=0)
    base.update(kw)
    return [f"{k}={v}" for k, v in base.items()]


def tiny_config(overrides: list[str]) -> TinyGPTConfig:
    return load_config(TinyGPTConfig, ROOT / "tiny_gpt_config.yaml", overrides)


def signal_after_first(cmd: list[str], marker: re.Pattern, sig: int, timeout: float = 600) -> tuple[int, str, str]:
    """Start `cmd`, wait for a stdout line matching `marker` (training is under way), send `sig`, wait for the
    exit; returns (exit status, stdout, stderr). stderr goes to a file so a full pipe never blocks the run; a
    watchdog kills the run after `timeout` s (generous: a shared, loaded machine can take a minute to import torch)."""
    import threading

    err_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"graftkit-sig-{os.getpid()}-{time.monotonic_ns()}.err"
    with open(err_path, "w+", encoding="utf-8") as err:
        # the run starts with SIGHUP at its default: a suite started under `nohup` would otherwise hand the child an
        # ignored SIGHUP, which the scripts keep ignoring on purpose (test_nohup_keeps_ignoring_sighup), and wait
        p = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL, text=True,
                             env=ENV, preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_DFL))
        watchdog = threading.Timer(timeout, p.kill)
        watchdog.start()
        seen, sent = [], False
        try:
            for line in p.stdout:
                seen.append(line)
                if marker.search(line):
                    p.send_signal(sig)
                    sent = True
                    break
            rest, _ = p.communicate()
        finally:
            watchdog.cancel()
            if p.poll() is None:
                p.kill()
                p.wait()
        err.seek(0)
        stderr = err.read()
    err_path.unlink(missing_ok=True)
    assert sent, f"no line matched {marker.pattern!r}: {''.join(seen)[-1000:]} {stderr[-1000:]}"
    return p.returncode, "".join(seen) + (rest or ""), stderr


def state(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


# ----------------------------------------------------------------------------- 1. tiny GPT


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_tiny_gpt_signal_saves_the_step_reached_and_resumes_exactly(data_dir, tmp_path, sig):
    import train_tiny_gpt

    out = tmp_path / "run"
    ov = tiny_overrides(data_dir, out)
    rc, stdout, stderr = signal_after_first([sys.executable, "train_tiny_gpt.py", "--config", "tiny_gpt_config.yaml",
                                             *ov], re.compile(r"^iter \d+ "), sig)
    assert rc == 128 + sig, (rc, stderr[-2000:])  # 143 for SIGTERM, 129 for SIGHUP: not -15 / -1 (killed)
    assert "Traceback" not in stderr and stderr.strip().splitlines()[-1] == f"interrupted ({signal.Signals(sig).name})"
    m = re.search(rf"{signal.Signals(sig).name}: stopped at iter (\d+) and saved .*last\.pt", stdout)
    assert m, stdout[-1000:]
    reached = int(m.group(1))
    assert reached >= 1 and state(out / "last.pt")["iter"] == reached
    assert (out / "loss_curve.png").is_file()
    if sig != signal.SIGTERM:
        return
    # resume continues at exactly that step: three more steps after the resume give the same weights, optimizer
    # and data position as one uninterrupted run of reached + 3 steps
    lines: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        train_tiny_gpt.train(tiny_config(ov), log=lines.append, interrupt_at=reached + 3)
    assert any(f"resumed from {out / 'last.pt'} at iter {reached} " in x for x in lines)
    straight = tmp_path / "straight"
    with pytest.raises(KeyboardInterrupt):
        train_tiny_gpt.train(tiny_config(tiny_overrides(data_dir, straight)), log=quiet, interrupt_at=reached + 3)
    a, b = state(out / "last.pt"), state(straight / "last.pt")
    assert a["iter"] == b["iter"] == reached + 3
    assert a["model"].keys() == b["model"].keys() and all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert a["sampler"] == b["sampler"]


def test_nohup_keeps_ignoring_sighup():
    """`nohup python train_tiny_gpt.py &` asks to survive a hang-up: an ignored SIGHUP stays ignored."""
    from graftkit.runstate import on_stop_signal

    old = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        hits: list[int] = []
        with on_stop_signal(hits.append):
            assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)
        assert hits == [signal.SIGTERM] and signal.getsignal(signal.SIGHUP) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, old)


# ----------------------------------------------------------------------------- 1. LoRA


@pytest.fixture(scope="module")
def lora_env(tmp_path_factory):
    base = tmp_path_factory.mktemp("lora_pre")
    return {"tiny": make_tiny_llama(base / "tiny"), "data": write_data(base / "data.jsonl"), "base": base}


LORA_COMMON = ("val_fraction=0", "eval_on_start=false", "lr_scheduler=constant", "save_formats=[lora]", "contrast_pairs=0")


def test_lora_sigterm_saves_a_checkpoint_the_next_run_resumes(lora_env, tmp_path):
    from train_lora import run

    out = tmp_path / "out"
    ov = [f"base_model={lora_env['tiny']}", f"data_file={lora_env['data']}", f"output_dir={out}", "max_steps=500",
          "save_steps=1000", "logging_steps=1", "batch_size=4", "gradient_accumulation_steps=1", "warmup_steps=0",
          "gradient_checkpointing=false", "max_seq_length=128", *LORA_COMMON]
    rc, stdout, stderr = signal_after_first([sys.executable, "train_lora.py", "--config", "lora_config.yaml", *ov],
                                            re.compile(r"'loss'"), signal.SIGTERM)
    assert rc == 143, (rc, stderr[-2000:])
    assert "Traceback" not in stderr and stderr.strip().splitlines()[-1] == "interrupted (SIGTERM)"
    m = re.search(r"SIGTERM: stopped at step (\d+) and saved checkpoint-(\d+)", stderr)
    assert m and m.group(1) == m.group(2), stderr[-2000:]
    step = int(m.group(1))
    ckpts = [p.name for p in out.glob("checkpoint-*")]
    assert ckpts == [f"checkpoint-{step}"]  # the Trainer's own save: save_steps=1000 was never reached
    assert json.loads((out / ckpts[0] / "trainer_state.json").read_text())["global_step"] == step
    summary = run(lora_cfg(lora_env["tiny"], lora_env["data"], out, *LORA_COMMON, f"max_steps={step + 1}"))
    assert summary["global_step"] == step + 1 and summary["steps_this_run"] == 1


# ----------------------------------------------------------------------------- 2. a LoRA checkpoint cut in half


@pytest.fixture(scope="module")
def two_checkpoints(lora_env):
    from train_lora import run

    out = lora_env["base"] / "two"
    run(lora_cfg(lora_env["tiny"], lora_env["data"], out, *LORA_COMMON, "max_steps=4", "save_steps=2", "eval_steps=2"))
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-4"]
    return out


def cut_in_half(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize("victim", ["adapter_model.safetensors", "optimizer.pt", "trainer_state.json", "rng_state.pth",
                                    "adapter_config.json"])
def test_half_written_checkpoint_falls_back_to_the_previous_good_one(two_checkpoints, tmp_path, capsys, victim):
    from graftkit.lora.safety import checkpoint_problem
    from graftkit.lora.train import resolve_resume

    out = tmp_path / "out"
    shutil.copytree(two_checkpoints, out)
    assert checkpoint_problem(out / "checkpoint-4") is None
    cut_in_half(out / "checkpoint-4" / victim)
    assert victim in checkpoint_problem(out / "checkpoint-4")
    chosen = resolve_resume(lora_cfg(two_checkpoints.parent / "tiny", two_checkpoints.parent / "data.jsonl", out), out)
    assert chosen == str(out / "checkpoint-2")
    err = capsys.readouterr().err
    assert f"resuming from checkpoint-2, the newest complete checkpoint; skipped checkpoint-4 (moved to " \
           f"broken-checkpoint-4): {victim}" in err and len(err.strip().splitlines()) == 1
    assert (out / "broken-checkpoint-4" / victim).is_file() and not (out / "checkpoint-4").exists()


def test_training_resumes_past_a_broken_checkpoint(lora_env, two_checkpoints, tmp_path):
    from train_lora import run

    out = tmp_path / "out"
    shutil.copytree(two_checkpoints, out)
    cut_in_half(out / "checkpoint-4" / "optimizer.pt")
    summary = run(lora_cfg(lora_env["tiny"], lora_env["data"], out, *LORA_COMMON, "max_steps=4", "save_steps=2",
                           "eval_steps=2"))
    assert summary["global_step"] == 4 and summary["steps_this_run"] == 2  # from checkpoint-2, not from scratch
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-4"]
    from graftkit.lora.safety import checkpoint_problem

    assert checkpoint_problem(out / "checkpoint-4") is None  # written fresh, not over the broken files


def test_every_checkpoint_broken_starts_over_and_a_given_broken_one_is_one_line(two_checkpoints, tmp_path, capsys):
    from graftkit.errors import ConfigError
    from graftkit.lora.train import resolve_resume

    out = tmp_path / "out"
    shutil.copytree(two_checkpoints, out)
    with pytest.raises(ConfigError, match=r"resume: .*checkpoint-4 cannot be resumed from: adapter_model"):
        cut_in_half(out / "checkpoint-4" / "adapter_model.safetensors")
        resolve_resume(lora_cfg(two_checkpoints.parent / "tiny", two_checkpoints.parent / "data.jsonl", out, f"resume={out / 'checkpoint-4'}"), out)
    (out / "checkpoint-2" / "trainer_state.json").write_text('{"global_step": 2, "log_hist')
    assert resolve_resume(lora_cfg(two_checkpoints.parent / "tiny", two_checkpoints.parent / "data.jsonl", out), out) is None
    assert "no complete checkpoint" in capsys.readouterr().err


# ----------------------------------------------------------------------------- 3. full disk, file-size limit


def test_file_size_limit_while_saving_last_pt_is_one_line_and_keeps_the_old_one(data_dir, tmp_path):
    import train_tiny_gpt

    out = tmp_path / "run"
    train_tiny_gpt.train(tiny_config(tiny_overrides(data_dir, out, max_iters=10, eval_interval=5)), log=quiet)
    before, best = state(out / "last.pt"), state(out / "best.pt")
    assert before["iter"] == 10
    size = (out / "last.pt").stat().st_size
    limit = size // 2  # room for the metrics and the plot, not for a checkpoint

    def limit_file_size():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))

    r = subprocess.run([sys.executable, "train_tiny_gpt.py", "--config", "tiny_gpt_config.yaml",
                        *tiny_overrides(data_dir, out, max_iters=20, eval_interval=5)], cwd=ROOT, env=ENV,
                       capture_output=True, text=True, timeout=600, preexec_fn=limit_file_size)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-2000:]
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and re.match(rf"error: {re.escape(str(out))}: cannot save (best|last)\.pt: it needs about "
                                        r"0\.\d MB but the file-size limit", lines[0]), lines
    assert "file-size limit" in lines[0] and "previous checkpoints are kept" in lines[0]
    after = state(out / "last.pt")
    assert after["iter"] == 10 and all(torch.equal(after["model"][k], before["model"][k]) for k in before["model"])
    assert state(out / "best.pt")["iter"] == best["iter"]
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]


@pytest.fixture
def small_disk(tmp_path):
    """A real 192 KiB file system (tmpfs), where this process may mount one (root); skipped elsewhere."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    if shutil.which("mount") is None or os.geteuid() != 0:
        pytest.skip("needs root to mount a small tmpfs")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=192k", "tmpfs", str(mnt)], capture_output=True)
    if r.returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_full_disk_while_saving_a_checkpoint_names_the_folder_and_the_space(small_disk):
    from graftkit.checkpoint import atomic_torch_save

    atomic_torch_save({"w": torch.ones(100)}, small_disk / "last.pt")
    with pytest.raises(UserError) as e:
        atomic_torch_save({"w": torch.zeros(100_000)}, small_disk / "last.pt")  # 400 KB into 192 KiB
    msg = e.value.format()
    assert msg.startswith(f"{small_disk}: cannot save last.pt: disk full? it needs about 0.4 MB (") and "free" in msg
    assert "\n" not in msg and torch.equal(state(small_disk / "last.pt")["w"], torch.ones(100))
    assert sorted(p.name for p in small_disk.iterdir()) == ["last.pt"]


def test_repeated_sigterm_keeps_saving_but_a_second_ctrl_c_stops_at_once():
    """torchrun forwards SIGTERM twice within milliseconds: the save in progress must not be cut short."""
    from graftkit.runstate import Stopped, on_stop_signal

    hits: list[int] = []
    with on_stop_signal(hits.append):
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)
        assert hits == [signal.SIGTERM]
        with pytest.raises(Stopped) as e:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
    assert e.value.signum == signal.SIGINT and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


def test_lora_checkpoint_over_the_file_size_limit_is_one_line(lora_env, tmp_path):
    """The Trainer's own save hits `ulimit -f`: one line; the next run resumes from the newest complete checkpoint."""
    out = tmp_path / "out"
    ov = [f"base_model={lora_env['tiny']}", f"data_file={lora_env['data']}", f"output_dir={out}", "max_steps=2",
          "save_steps=1", "logging_steps=1", "batch_size=4", "gradient_accumulation_steps=1", "warmup_steps=0",
          "gradient_checkpointing=false", "max_seq_length=128", *LORA_COMMON]

    def limit_file_size():
        resource.setrlimit(resource.RLIMIT_FSIZE, (80_000, resource.RLIM_INFINITY))  # optimizer.pt is ~115 KB

    r = subprocess.run([sys.executable, "train_lora.py", "--config", "lora_config.yaml", *ov], cwd=ROOT, env=ENV,
                       capture_output=True, text=True, timeout=600, preexec_fn=limit_file_size)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-2000:]
    errors = re.findall(r"error: [^\r\n]*", r.stderr)  # (the progress bar leaves no newline before it)
    assert len(errors) == 1, r.stderr[-2000:]
    last = errors[0]
    assert last.startswith(f"error: {out}: cannot save a checkpoint: disk full or file-size limit (ulimit -f) "
                           "reached ("), last
    from graftkit.lora.safety import newest_good_checkpoint

    assert newest_good_checkpoint(out) is None and (out / "broken-checkpoint-1").is_dir()
