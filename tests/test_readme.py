"""README_TRAINING.md is a tested guide: its two commands, its Colab cells and its config tables.

The Colab cells are extracted from the README and run in order, in a copy of the repository, on the
CPU: IPython's own input transformer turns `!cmd` and `%cd` into calls on a stand-in `get_ipython()`
that runs the commands through a shell (and fails the test on a non-zero exit), and `%run` runs a script
in the test's own process, as IPython does. Only the line marked
`# gpu-only` (the Unsloth install) is skipped; the base model is a tiny random Llama, and training
and evaluation get a few extra `key=value` / flag overrides so they take seconds.
"""

from __future__ import annotations

import os
import re
import shutil
import string
import subprocess
import sys
from pathlib import Path

import pytest

from tiny_llama import make_tiny_llama

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README_TRAINING.md"

# Appended to the README's commands so they run in seconds on a CPU with the tiny model.
LORA_FAST = ("max_steps=2 max_seq_length=128 batch_size=2 gradient_accumulation_steps=1 eval_steps=2 "
             "save_steps=2 logging_steps=1 eval_on_start=false contrast_pairs=0")
EVAL_FAST = "--max-samples 4 --max-new-tokens 8 --pool-size 12 --candidates 4 --bootstrap 50"
TINY_FAST = ("max_iters=6 eval_interval=3 eval_iters=1 log_interval=3 batch_size=4 block_size=64 n_layer=2 "
             "n_head=2 n_embd=32 num_samples=1 max_new_tokens=16 progress=false")


def readme_text() -> str:
    return README.read_text(encoding="utf-8")


def top_commands() -> list[str]:
    """The lines of the first ```bash block of README_TRAINING.md."""
    m = re.search(r"^```bash\n(.*?)^```", readme_text(), re.S | re.M)
    assert m, "README_TRAINING.md has no ```bash block"
    return [line for line in m.group(1).splitlines() if line.strip()]


def colab_cells() -> list[str]:
    m = re.search(r"<!-- colab-cells:start -->(.*?)<!-- colab-cells:end -->", readme_text(), re.S)
    assert m, "README_TRAINING.md has no colab-cells markers"
    return re.findall(r"^```python\n(.*?)^```", m.group(1), re.S | re.M)


def copy_repo(dest: Path) -> Path:
    """Tracked and untracked-but-not-ignored files: what a fresh clone (plus local edits) holds."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, check=True,
                           capture_output=True).stdout.decode().split("\0")
    for name in filter(None, files):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest


def test_two_commands_at_the_top_and_ci_runs_the_second():
    commands = top_commands()
    assert len(commands) == 2, commands
    main, tests = commands
    assert "prepare_training_data.py training_data/sample_chat" in main and "train_tiny_gpt.py" in main
    assert main.startswith("pip install -r requirements.txt") and tests.startswith("pip install -r requirements-dev.txt")
    assert "pytest" in tests
    # the short README.md shows the same two commands
    assert all(c in (ROOT / "README.md").read_text(encoding="utf-8") for c in commands)
    # .ci/run extracts exactly the second line
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    awk = re.search(r"test_cmd=\$\(awk '(.*?)' README_TRAINING.md\)", ci).group(1)
    got = subprocess.run(["awk", awk, str(README)], capture_output=True, text=True, check=True).stdout.strip()
    assert got == tests
    # everything the first line reads is in the repository
    assert (ROOT / "training_data" / "sample_chat").is_dir()
    for f in ("requirements.txt", "requirements-dev.txt", "tiny_gpt_config.yaml"):
        assert (ROOT / f).is_file()


def test_config_tables_are_generated_from_the_yaml_comments():
    out = subprocess.run([sys.executable, "scripts/config_docs.py", "--check"], cwd=ROOT, capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stderr
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        from config_docs import parse_yaml_docs
    finally:
        sys.path.pop(0)
    import dataclasses

    from graftkit.lora.config import LoraTrainConfig
    from graftkit.tiny_gpt.config import TinyGPTConfig

    text = readme_text()
    for yaml_name, cls in (("tiny_gpt_config.yaml", TinyGPTConfig), ("lora_config.yaml", LoraTrainConfig)):
        rows = parse_yaml_docs((ROOT / yaml_name).read_text(encoding="utf-8"))
        keys = [k for k, _, _ in rows]
        assert sorted(keys) == sorted(f.name for f in dataclasses.fields(cls)), yaml_name
        for key, _, desc in rows:
            assert len(desc) >= 10, f"{yaml_name}: key {key} has no real comment"
            assert f"| `{key}` |" in text, f"README_TRAINING.md lacks {yaml_name} key {key}"


def test_config_docs_parser_reads_both_comment_styles():
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        from config_docs import parse_yaml_docs
    finally:
        sys.path.pop(0)
    rows = parse_yaml_docs("# ---- section\n# Width of the model.\nn_embd: 128\n\n"
                           "lr: 1e-3  # peak rate | [1e-4-3e-3]\n  # decays to min_lr\nlist:\n  - a\n\n"
                           "# Text that opens a turn.\nopen: a\nclose: b\n")
    assert rows == [("n_embd", "128", "Width of the model."),
                    ("lr", "1e-3", "peak rate | [1e-4-3e-3] decays to min_lr"),
                    ("list", "", ""),
                    ("open", "a", "Text that opens a turn."), ("close", "b", "See `open`.")]


class Shell:
    """Stands in for IPython's `get_ipython()`: runs `!` lines through a shell, expands {names}."""

    def __init__(self, namespace: dict, extra: dict[str, str]):
        self.ns, self.extra, self.outputs = namespace, extra, []

    def system(self, cmd: str) -> None:
        cmd = string.Formatter().vformat(cmd, (), self.ns)
        for script, more in self.extra.items():
            if f"python {script}" in cmd:
                cmd = f"{cmd} {more}"
        out = subprocess.run(cmd, shell=True, capture_output=True, text=True,
                             env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.outputs.append((cmd, out.stdout))
        assert out.returncode == 0, f"cell command failed ({out.returncode}): {cmd}\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"

    def run_line_magic(self, name: str, arg: str) -> None:
        assert name in ("cd", "run"), f"unexpected magic %{name}"
        arg = string.Formatter().vformat(arg, (), self.ns)
        if name == "cd":
            os.chdir(arg)
            return
        # %run: the script as __main__ in this process, with sys.argv set, as IPython does it
        import runpy
        import shlex

        argv = shlex.split(arg)
        argv += shlex.split(self.extra.get(argv[0], ""))
        saved = sys.argv
        sys.argv = argv
        try:
            runpy.run_path(argv[0], run_name="__main__")
        except SystemExit as e:  # outside IPython run_script() exits as in a shell; a real %run has no SystemExit
            assert e.code in (0, None), f"%run {arg} failed with exit status {e.code}"
        finally:
            sys.argv = saved
        self.outputs.append((f"%run {arg}", ""))


def test_colab_cells_run_in_order_on_cpu(tmp_path, monkeypatch, capsys):
    from IPython.core.inputtransformer2 import TransformerManager

    cells = colab_cells()
    assert len(cells) >= 9, "install, data, prepare, tiny GPT train + sample, LoRA train, evaluate, chat, export"
    gpu_only = [line for cell in cells for line in cell.splitlines() if "# gpu-only" in line]
    assert len(gpu_only) == 1 and "requirements-gpu.txt" in gpu_only[0]

    repo = copy_repo(tmp_path / "repo")
    for chat in sorted((repo / "training_data" / "sample_chat").iterdir())[6:]:
        chat.unlink()  # 6 of the sample's 30 chats: every cell runs as written, on less data, in less time
    tiny = make_tiny_llama(tmp_path / "tiny-llama")
    monkeypatch.chdir(repo)
    ns: dict = {"__name__": "__colab__"}
    shell = Shell(ns, {"train_lora.py": LORA_FAST, "evaluate_persona.py": EVAL_FAST,
                       "train_tiny_gpt.py": TINY_FAST + " tokenizer_type=char"})
    ns["get_ipython"] = lambda: shell
    for i, cell in enumerate(cells):
        source = "\n".join(line for line in cell.splitlines() if "# gpu-only" not in line)
        code = TransformerManager().transform_cell(source)
        exec(compile(code, f"<README colab cell {i + 1}>", "exec"), ns)
        if "BASE" in ns and ns["BASE"] != str(tiny):
            assert ns["BASE"] in readme_text()
            ns["BASE"] = str(tiny)  # the one substitution: a tiny local model instead of a hub download

    assert os.getcwd() == str(repo), "the clone branch must not run inside the repository"
    # the tiny GPT cells: trained by %run in the notebook's own process, then sampled through main([...])
    assert any(cmd.startswith("%run train_tiny_gpt.py") for cmd, _ in shell.outputs)
    assert (repo / "out-tiny" / "best.pt").is_file() and (repo / "out-tiny" / "loss_curve.png").is_file()
    printed = capsys.readouterr().out
    assert "iter 6 | loss" in printed and "--- sample 1 ---\n<|them|>hey, are you around tonight?\n<|me|>" in printed
    run_dir = repo / ns["RUN_DIR"]
    assert (repo / "training_data" / "sharegpt_train.jsonl").is_file()
    assert (run_dir / "adapter" / "adapter_model.safetensors").is_file()
    assert (run_dir / "eval" / "report.md").is_file() and (run_dir / "eval" / "metrics.json").is_file()
    assert (run_dir / "merged_16bit" / "config.json").is_file()
    chat = next(out for cmd, out in shell.outputs if "--chat" in cmd)
    assert chat.strip(), "the chat cell printed nothing"
    import zipfile

    names = zipfile.ZipFile(repo / "my_persona.zip").namelist()
    assert any(n.startswith("adapter/") for n in names) and any(n.startswith("merged_16bit/") for n in names)
    assert not any(n.startswith("checkpoint-") for n in names), "the download holds only the exports"


def test_first_command_runs_on_the_bundled_sample(tmp_path, monkeypatch):
    """The demo line from the top of the README, minus the install, with a smaller model so it takes seconds."""
    repo = copy_repo(tmp_path / "repo")
    main = top_commands()[0]
    steps = [s.strip() for s in main.split("&&")]
    assert steps[0].startswith("pip install")
    cmd = " && ".join(steps[1:]) + " " + TINY_FAST + " out_dir=out-readme"
    out = subprocess.run(cmd, shell=True, cwd=repo, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert (repo / "training_data" / "corpus_train.txt").stat().st_size > 100_000
    assert (repo / "out-readme" / "last.pt").is_file()
    assert "val" in out.stdout and "loss" in out.stdout


@pytest.mark.slow
def test_first_command_verbatim(tmp_path):
    """The whole demo exactly as written (minus the install): minutes on a 2-core CPU."""
    repo = copy_repo(tmp_path / "repo")
    steps = [s.strip() for s in top_commands()[0].split("&&")]
    out = subprocess.run(" && ".join(steps[1:]), shell=True, cwd=repo, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert (repo / "out-tiny" / "best.pt").is_file()
