"""bench/gpu/ on CPU: bundles under the size limit (a split wheel included), the offline installer in a
clean interpreter, the dependency check, random preset-shaped models, the report (the GPU runs
themselves need the GPU machine; the whole driver on CPU is the slow test at the end)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import random
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench" / "gpu"))

import drive  # noqa: E402
import install  # noqa: E402
import random_model  # noqa: E402
import wheels  # noqa: E402

KIB = 1024


def make_wheel(folder: Path, name: str, version: str, payload: int = 0, requires: list[str] = ()) -> Path:
    """A real, installable pure-Python wheel (module `name` with __version__ and `payload` random bytes)."""
    dist = f"{name}-{version}.dist-info"
    files = {f"{name}/__init__.py": f"__version__ = {version!r}\n".encode(),
             f"{name}/blob.bin": random.Random(name).randbytes(payload),
             f"{dist}/METADATA": ("Metadata-Version: 2.1\nName: {}\nVersion: {}\n{}".format(
                 name, version, "".join(f"Requires-Dist: {r}\n" for r in requires))).encode(),
             f"{dist}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    record = "".join(f"{p},sha256={base64.urlsafe_b64encode(hashlib.sha256(d).digest()).rstrip(b'=').decode()},{len(d)}\n"
                     for p, d in files.items()) + f"{dist}/RECORD,,\n"
    path = folder / f"{name}-{version}-py3-none-any.whl"
    folder.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for p, d in files.items():
            zf.writestr(p, d)
        zf.writestr(f"{dist}/RECORD", record)
    return path


def test_pack_keeps_every_bundle_under_the_limit_and_splits_big_files(tmp_path):
    sizes = {"a": 9, "b": 6, "c": 5, "d": 4, "big": 25}
    files = []
    for name, kib in sizes.items():
        (tmp_path / name).write_bytes(b"x" * kib * KIB)
        files.append(tmp_path / name)
    bins = wheels.pack(files, 10 * KIB)
    assert all(sum(p[3] for p in b) <= 10 * KIB for b in bins)
    assert sum(p[3] for b in bins for p in b) == sum(sizes.values()) * KIB
    parts = sorted(p[0] for b in bins for p in b if p[1].name == "big")
    assert parts == ["big.part00of03", "big.part01of03", "big.part02of03"]
    assert len(bins) == 5  # 10+10+5 of big, 9, 6+4, 5 -> first-fit decreasing gives 5 (total 49 KiB needs >= 5)


def test_bundles_install_offline_into_a_clean_interpreter(tmp_path):
    src = tmp_path / "src"
    small = make_wheel(src, "gkalpha", "1.2.3", payload=2 * KIB)
    big = make_wheel(src, "gkbeta", "0.4", payload=20 * KIB)  # larger than a bundle: travels in parts
    folders = wheels.write_bundles([small, big], tmp_path / "bundles", 16 * KIB)
    assert len(folders) == 2 and all(sum(f.stat().st_size for f in d.iterdir() if f.name != "manifest.json")
                                     <= 16 * KIB for d in folders)
    target, parts = tmp_path / "site", tmp_path / "parts"
    installed = []
    for folder in folders:  # one device call per bundle, on the same warm machine
        installed += install.install(folder, target, parts)
    assert sorted(installed) == sorted([small.name, big.name])
    venv = tmp_path / "venv"  # a clean interpreter: no site-packages of ours, no pip
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    code = ("import importlib.metadata as m, gkalpha, gkbeta, pathlib; "
            "print(gkalpha.__version__, m.version('gkbeta'), pathlib.Path(gkbeta.__file__).parent.joinpath('blob.bin')"
            ".stat().st_size)")
    out = subprocess.run([str(venv / "bin" / "python"), "-c", code], env={"PYTHONPATH": str(target)},
                         capture_output=True, text=True, check=True).stdout.split()
    assert out == ["1.2.3", "0.4", str(20 * KIB)]


def test_installer_refuses_a_corrupt_split_wheel(tmp_path):
    big = make_wheel(tmp_path / "src", "gkgamma", "1.0", payload=20 * KIB)
    folders = wheels.write_bundles([big], tmp_path / "bundles", 16 * KIB)
    last = folders[-1]
    part = next(p for p in last.iterdir() if ".part" in p.name)
    data = bytearray(part.read_bytes())
    data[100] ^= 0xFF
    part.write_bytes(bytes(data))
    for folder in folders[:-1]:
        install.install(folder, tmp_path / "site", tmp_path / "parts")
    with pytest.raises(SystemExit, match="sha256"):
        install.install(last, tmp_path / "site", tmp_path / "parts")


def test_missing_lists_only_needs_nothing_meets(tmp_path):
    a = make_wheel(tmp_path, "gka", "1.0", requires=["torch>=2.4", "xformers>=0.0.27", "gkb>=2", "gkc",
                                                    "pywin32; sys_platform == 'win32'", "pytest; extra == 'dev'"])
    b = make_wheel(tmp_path, "gkb", "1.5")
    assert wheels.requirements(a)[:2] == ["torch>=2.4", "xformers>=0.0.27"] and len(wheels.requirements(a)) == 4
    gaps = wheels.missing([a, b])
    assert gaps == ["gka-1.0-py3-none-any.whl: needs gkb>=2, carried gkb 1.5",
                    "gka-1.0-py3-none-any.whl: needs gkc (not in the image, not carried)"]


@pytest.mark.parametrize("preset", sorted(random_model.SHAPES))
def test_full_shapes_have_the_published_sizes(preset):
    n = random_model.count_params(preset)
    assert abs(n / random_model.PUBLISHED_PARAMS[preset] - 1) < 0.005, n


@pytest.mark.parametrize("preset,family", [("qwen2.5-0.5b", "chatml"),  # the others: slow (imports, seconds)
                                           pytest.param("llama-3.2-1b", "llama-3", marks=pytest.mark.slow),
                                           pytest.param("mistral-7b", "mistral", marks=pytest.mark.slow)])
def test_tiny_random_model_loads_and_trains_with_the_kits_template(tmp_path, preset, family):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from graftkit.config import load_config
    from graftkit.lora.config import LoraTrainConfig
    from graftkit.lora.data import IGNORE, encode_conversation, setup_tokenizer

    folder = random_model.build(preset, tmp_path / preset, layers=1, tiny=True, device="cpu", dtype="float32")
    model = AutoModelForCausalLM.from_pretrained(folder)
    full = random_model.SHAPES[preset]
    assert model.config.num_attention_heads == full["num_attention_heads"]
    assert model.config.num_key_value_heads == full["num_key_value_heads"] and model.config.num_hidden_layers == 1
    arch = {"llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM", "mistral": "MistralForCausalLM"}[full["arch"]]
    assert type(model).__name__ == arch
    tok = AutoTokenizer.from_pretrained(folder)
    cfg = load_config(LoraTrainConfig, ROOT / "lora_config.yaml", [f"base_model={folder}"])
    info = setup_tokenizer(tok, cfg)
    assert info.family == family and info.eot_token == random_model.FAMILY_TOKENS[family][2]
    ids, labels = encode_conversation(tok, [{"role": "user", "content": "u up?"},
                                            {"role": "assistant", "content": "ya lol"}], info)
    assert tok.decode([i for i, lab in zip(ids, labels) if lab != IGNORE]).strip().startswith("ya lol")
    loss = model(input_ids=torch.tensor([ids]), labels=torch.tensor([labels])).loss
    assert torch.isfinite(loss)


def _report(runs: list[dict], mask: dict) -> dict:
    return {"device": "NVIDIA H100 80GB HBM3", "versions": {"torch": "2.11.0", "unsloth": "2026.10.9", "trl": None},
            "lora": {"qwen2.5-0.5b": {"runs": runs, "mask": mask}},
            "tiny_gpt": {"rc": 0, "iters": 300, "tok_s": 123456, "mfu": 0.1234, "last_loss": 3.2}}


def test_report_lines():
    run = dict(steps=30, seconds_per_step=0.25, peak_vram_gb=None, last_train_loss=2.5, adapter=True, merged=False)
    mask = {"unsloth": True, "ok": True, "graftkit_tokens": 900, "unsloth_tokens": 950, "graftkit_not_in_unsloth": 0,
            "unsloth_extra": 50, "unsloth_extra_non_whitespace": []}
    text = drive.format_report(_report([{**run, "backend": "unsloth", "tokens_per_s": 3000.0},
                                        {**run, "backend": "peft", "tokens_per_s": 1500.0},
                                        {"backend": "peft", "rc": 1, "error": "CUDA out of memory"}], mask))
    lines = text.splitlines()
    assert lines[0] == "GPU check on NVIDIA H100 80GB HBM3 | torch 2.11.0 unsloth 2026.10.9"
    assert lines[2].split() == ["qwen2.5-0.5b", "unsloth", "30", "0.250", "3,000", "n/a", "2.500", "yes", "NO"]
    assert "FAILED (exit 1): CUDA out of memory" in lines[4]
    assert lines[5].endswith("unsloth / peft tokens/s: 2.00x")
    assert "mask check ok: graftkit 900 tokens, train_on_responses_only 950" in lines[6]
    assert lines[7] == "tiny GPT (dtype=auto, compile=true): 300 iters, 123,456 tok/s, MFU 12.3%, loss 3.2"


@pytest.mark.slow
def test_driver_on_cpu_end_to_end(tmp_path):
    """drive.py --tiny --backends peft on CPU: train_lora.py on a tiny preset-shaped model, saves, mask, tiny GPT."""
    env = {**os.environ, "GRAFTKIT_GPU_WORK": str(tmp_path / "work"), "OMP_NUM_THREADS": "2"}
    p = subprocess.run([sys.executable, str(ROOT / "bench" / "gpu" / "drive.py"), "--tiny", "--backends", "peft",
                        "--presets", "qwen2.5-0.5b", "--layers", "2", "--steps", "2", "--seq", "256", "--batch", "2",
                        "--tiny-gpt-iters", "10", "--out", str(tmp_path / "out")], env=env, capture_output=True,
                       text=True, timeout=1800)
    assert p.returncode == 0, p.stderr[-2000:]
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    run = report["lora"]["qwen2.5-0.5b"]["runs"][0]
    assert run["rc"] == 0 and run["steps"] == 2 and run["adapter"] and run["merged"] and run["tokens_per_s"] > 0
    mask = report["lora"]["qwen2.5-0.5b"]["mask"]
    assert mask["graftkit_tokens"] > 0 and mask["eot_labelled"] >= mask["samples"] / 2 and mask["unsloth"] is None
    assert report["tiny_gpt"]["tok_s"] > 0 and 0 < report["tiny_gpt"]["mfu"] < 1
    assert (tmp_path / "out" / "report.txt").read_text().strip() in p.stdout
