"""The scripts inside IPython/Jupyter: `%run script.py ...`, `script.main([...])`, a pasted script, the
kernel's own `-f kernel.json` argv, one-line errors without SystemExit, the loss curve shown inline.

The cells run in a real IPython `InteractiveShell` (what a Jupyter/Colab kernel runs cells with), in this
process and cleared afterwards; the helpers of graftkit.notebook are also tested on their own.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from graftkit import notebook
from graftkit.errors import ScriptFailed, UserError, cli_main

ROOT = Path(__file__).resolve().parents[1]
KERNEL_ARGV = ["/usr/local/lib/python3.11/dist-packages/colab_kernel_launcher.py", "-f",
               "/root/.local/share/jupyter/runtime/kernel-7f3c.json"]
# two of the bundled sample chats (34 KB): enough for every step, small enough to take seconds
SMALL_EXPORT = " ".join(f"'training_data/sample_chat/WhatsApp Chat with {name}.txt'" for name in ("Blake", "Cameron"))
TINY_FAST = ("max_iters=4 eval_interval=2 eval_iters=1 log_interval=2 batch_size=4 block_size=32 n_layer=1 "
             "n_head=2 n_embd=16 num_samples=1 max_new_tokens=8 device=cpu")

@pytest.fixture(scope="module")
def cells(tmp_path_factory) -> dict[str, dict]:
    """Run the cells in a real IPython shell in this process, started as a kernel is (cwd = the repository,
    sys.argv = the launcher's); the shell is cleared afterwards so no other test sees IPython running."""
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.utils.capture import capture_output
    from traitlets.config import Config

    tmp = tmp_path_factory.mktemp("nb")
    data, out = tmp / "data", tmp / "out"
    files = (f"train_file={data}/corpus_train.txt val_file={data}/corpus_val.txt tokenizer_path={tmp}/tok.json "
             f"tokenizer_type=char out_dir={out}")
    main_args = ["--config", "tiny_gpt_config.yaml", *files.split(), "device=cpu"]
    pasted = (ROOT / "prepare_training_data.py").read_text(encoding="utf-8")
    plan = [
        ("prepare %run", f"%run prepare_training_data.py {SMALL_EXPORT} --me Sam --out {data}"),
        ("tokenizer %run", f"%run tokenizer_setup.py --config tiny_gpt_config.yaml {files}"),
        ("train %run", f"%run train_tiny_gpt.py --config tiny_gpt_config.yaml {TINY_FAST} {files}"),
        ("sample main", "import train_tiny_gpt\nrc = train_tiny_gpt.main(%r)" % (main_args + ["--sample"])),
        ("evaluate %run --help", "%run evaluate_persona.py --help"),
        ("lora %run --help", "%run train_lora.py --help"),
        ("lora main error", "import train_lora\nrc = train_lora.main(['--config', 'lora_config.yaml', 'lora_r=x'])"),
        ("train %run typo", "%run train_tiny_gpt.py --config tiny_gpt_config.yaml learnig_rate=1e-3"),
        ("train main typo", "rc = train_tiny_gpt.main(['--config', 'tiny_gpt_config.yaml', 'learnig_rate=1e-3'])"),
        ("evaluate main() in a kernel", "import evaluate_persona\nrc = evaluate_persona.main()"),
        ("prepare pasted into a cell", pasted),
    ]
    config = Config()
    config.HistoryManager.enabled = False  # no sqlite history file, no saving thread
    saved_argv, saved_cwd = sys.argv, os.getcwd()
    results: dict[str, dict] = {}
    try:
        os.chdir(ROOT)
        sys.argv = list(KERNEL_ARGV)
        shell = InteractiveShell.instance(config=config)
        for name, code in plan:
            with capture_output() as c:
                r = shell.run_cell(code)
            results[name] = {"error": type(r.error_in_exec).__name__ if r.error_in_exec else None,
                             "stdout": c.stdout, "stderr": c.stderr, "mimes": [sorted(o.data) for o in c.outputs],
                             "ns": {"rc": shell.user_ns.pop("rc")} if "rc" in shell.user_ns else {}}
    finally:
        InteractiveShell.clear_instance()
        sys.argv = saved_argv
        os.chdir(saved_cwd)
    assert notebook.ipython_shell() is None
    results["_paths"] = {"data": data, "out": out, "tmp": tmp}
    return results


def _ok(cell: dict) -> None:
    assert cell["error"] is None, cell
    text = cell["stdout"] + cell["stderr"]
    assert "Traceback" not in text and "SystemExit" not in text, text[-2000:]


def test_every_step_runs_with_percent_run_and_main(cells):
    paths = cells["_paths"]
    for name in ("prepare %run", "tokenizer %run", "train %run", "sample main", "evaluate %run --help",
                 "lora %run --help"):
        _ok(cells[name])
    assert (paths["data"] / "corpus_train.txt").is_file() and (paths["tmp"] / "tok.json").is_file()
    assert (paths["out"] / "last.pt").is_file() and (paths["out"] / "loss_curve.png").is_file()
    assert "iter 4 | loss" in cells["train %run"]["stdout"]
    assert cells["sample main"]["ns"]["rc"] == 0 and "--- sample 1 ---" in cells["sample main"]["stdout"]
    assert "usage: evaluate_persona.py" in cells["evaluate %run --help"]["stdout"]
    assert "usage: train_lora.py" in cells["lora %run --help"]["stdout"]


def test_loss_curve_is_displayed_inline_after_training(cells):
    assert ["image/png", "text/plain"] in cells["train %run"]["mimes"]
    assert cells["sample main"]["mimes"] == []  # sampling writes no plot, so shows none


def test_errors_are_one_line_without_systemexit_or_traceback(cells):
    for name in ("train %run typo", "train main typo", "lora main error"):
        cell = cells[name]
        text = cell["stdout"] + cell["stderr"]
        assert "Traceback" not in text and "SystemExit" not in text, text
        lines = [line for line in text.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert "unknown key 'learnig_rate' (did you mean 'learning_rate'?)" in cells["train main typo"]["stdout"]
    assert cells["train main typo"]["error"] == "ScriptFailed"  # the cell fails: "Run all" stops there
    assert "lora_r" in cells["lora main error"]["stdout"]


def test_the_kernels_own_argv_is_ignored(cells):
    # main() with no argv inside a kernel runs with the defaults, not with `-f kernel-7f3c.json`
    cell = cells["evaluate main() in a kernel"]
    text = cell["stdout"] + cell["stderr"]
    assert "kernel-7f3c.json" not in text and "unrecognized arguments" not in text, text
    assert "usage: evaluate_persona.py" in cell["stderr"] and "the following arguments are required: --config" in text
    assert cell["error"] == "ScriptFailed" and "Traceback" not in text and "SystemExit" not in text
    # the whole script pasted into a cell: argparse sees no arguments, names the script, exits no kernel
    cell = cells["prepare pasted into a cell"]
    assert cell["error"] == "ScriptFailed" and "SystemExit" not in cell["stdout"] + cell["stderr"]
    assert "the following arguments are required: INPUT" in cell["stderr"] and "kernel-7f3c" not in cell["stderr"]


# ----------------------------------------------------------------------------- the helpers, in-process

class FakeShell:
    def __init__(self, kernel: bool):
        self.config = {"IPKernelApp": {}} if kernel else {}


def test_script_argv_drops_only_a_kernels_arguments(monkeypatch):
    monkeypatch.setattr(sys, "argv", KERNEL_ARGV)
    monkeypatch.setattr(notebook, "ipython_shell", lambda: None)
    assert notebook.script_argv() == KERNEL_ARGV[1:]  # a plain program: its argv is its own
    monkeypatch.setattr(notebook, "ipython_shell", lambda: FakeShell(kernel=True))
    assert notebook.script_argv() == [] and notebook.script_argv(["a=1"]) == ["a=1"]
    monkeypatch.setattr(sys, "argv", ["train_tiny_gpt.py", "--config", "c.yaml", "epochs=3"])  # what %run sets
    assert notebook.script_argv() == ["--config", "c.yaml", "epochs=3"]


def test_progress_bar_only_where_someone_watches(monkeypatch):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False, raising=False)
    monkeypatch.setattr(notebook, "ipython_shell", lambda: None)
    assert not notebook.want_progress_bar(True)  # logs to a file, or `!python` in a notebook
    monkeypatch.setattr(notebook, "ipython_shell", lambda: FakeShell(kernel=False))
    assert not notebook.want_progress_bar(True)  # terminal IPython with stderr redirected
    monkeypatch.setattr(notebook, "ipython_shell", lambda: FakeShell(kernel=True))
    assert notebook.want_progress_bar(True) and not notebook.want_progress_bar(False)


def test_cli_main_returns_codes_outside_ipython_and_raises_one_line_inside(monkeypatch, capsys):
    @cli_main
    def main(argv=None):
        if argv == ["bad"]:
            raise UserError("no such thing", "cfg.yaml", 3)
        return 0

    monkeypatch.setattr(notebook, "ipython_shell", lambda: None)
    assert main(["bad"]) == 2 and capsys.readouterr().err == "error: cfg.yaml:3: no such thing\n"
    monkeypatch.setattr(notebook, "ipython_shell", lambda: FakeShell(kernel=True))
    with pytest.raises(ScriptFailed) as e:
        main(["bad"])
    assert e.value.code == 2 and e.value._render_traceback_() == ["error: cfg.yaml:3: no such thing"]
    assert main(["fine"]) == 0 and capsys.readouterr().err == ""


def test_run_script_exits_only_outside_ipython(monkeypatch):
    from graftkit.errors import run_script

    monkeypatch.setattr(notebook, "ipython_shell", lambda: None)
    with pytest.raises(SystemExit) as e:
        run_script(lambda: 3)
    assert e.value.code == 3
    monkeypatch.setattr(notebook, "ipython_shell", lambda: FakeShell(kernel=True))
    assert run_script(lambda: 0) is None

