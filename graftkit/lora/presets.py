"""Model presets and chat-template families for LoRA fine-tuning.

A preset maps a short name (`base_model: llama-3.2-1b`) to the right Hugging Face id for each
backend: Unsloth's pre-quantized `unsloth/...-bnb-4bit` repos on the Unsloth backend (with
`load_in_4bit`), the original repos on the PEFT backend. Its family supplies the fallback chat
template (used only when the tokenizer has none), the end-of-turn token and the
instruction/response markers (`instruction_part` / `response_part`, as Unsloth's
`train_on_responses_only` names them); graftkit uses the markers as a cross-check of its own
span-based label mask. Anything that is not a preset name is used as a hub id or local folder.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError

# ChatML with generation markers (TRL's assistant_only_loss convention); the generic fallback.
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}"
    "{{ '<|im_start|>assistant\n' }}{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}{{ '\n' }}"
    "{% else %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

# Llama 3.x layout without the date header (see notes: the official 3.1/3.2 template stamps today's
# date into every sample unless `date_string` is fixed; we always pass a fixed one).
LLAMA3_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' }}"
    "{% if message['role'] == 'assistant' %}{% generation %}{{ message['content'] | trim + '<|eot_id|>' }}"
    "{% endgeneration %}{% else %}{{ message['content'] | trim + '<|eot_id|>' }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)

# Mistral [INST] layout; a system message is folded into the first user turn.
MISTRAL_TEMPLATE = (
    "{{ bos_token }}"
    "{% set sys = namespace(text='') %}"
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{% set sys.text = message['content'] + '\n\n' %}"
    "{% elif message['role'] == 'user' %}{{ '[INST] ' + sys.text + message['content'] + ' [/INST]' }}"
    "{% set sys.text = '' %}"
    "{% else %}{% generation %}{{ ' ' + message['content'] + eos_token }}{% endgeneration %}{% endif %}"
    "{% endfor %}"
)


@dataclass(frozen=True)
class Family:
    name: str
    template: str
    eot_token: str  # end-of-turn token that closes each assistant reply
    instruction_part: str
    response_part: str
    unsloth_template: str  # name for unsloth.chat_templates.get_chat_template
    template_kwargs: dict = field(default_factory=dict)


FAMILIES: dict[str, Family] = {
    "chatml": Family("chatml", CHATML_TEMPLATE, "<|im_end|>", "<|im_start|>user\n", "<|im_start|>assistant\n",
                     "chatml"),
    "qwen-2.5": Family("qwen-2.5", CHATML_TEMPLATE, "<|im_end|>", "<|im_start|>user\n", "<|im_start|>assistant\n",
                       "qwen-2.5"),
    "llama-3": Family("llama-3", LLAMA3_TEMPLATE, "<|eot_id|>", "<|start_header_id|>user<|end_header_id|>\n\n",
                      "<|start_header_id|>assistant<|end_header_id|>\n\n", "llama-3.1",
                      {"date_string": "26 Jul 2024"}),
    "mistral": Family("mistral", MISTRAL_TEMPLATE, "</s>", "[INST]", "[/INST]", "mistral"),
}


@dataclass(frozen=True)
class Preset:
    name: str
    peft_id: str  # original repo, used by the PEFT backend
    unsloth_4bit_id: str  # Unsloth pre-quantized repo (backend unsloth, load_in_4bit: true)
    unsloth_16bit_id: str  # Unsloth 16-bit mirror (backend unsloth, load_in_4bit: false)
    family: str


PRESETS: dict[str, Preset] = {p.name: p for p in [
    Preset("llama-3.2-1b", "meta-llama/Llama-3.2-1B-Instruct", "unsloth/Llama-3.2-1B-Instruct-bnb-4bit",
           "unsloth/Llama-3.2-1B-Instruct", "llama-3"),
    Preset("llama-3.2-3b", "meta-llama/Llama-3.2-3B-Instruct", "unsloth/Llama-3.2-3B-Instruct-bnb-4bit",
           "unsloth/Llama-3.2-3B-Instruct", "llama-3"),
    Preset("mistral-7b", "mistralai/Mistral-7B-Instruct-v0.3", "unsloth/mistral-7b-instruct-v0.3-bnb-4bit",
           "unsloth/mistral-7b-instruct-v0.3", "mistral"),
    *[Preset(f"qwen2.5-{size.lower()}", f"Qwen/Qwen2.5-{size}-Instruct", f"unsloth/Qwen2.5-{size}-Instruct-bnb-4bit",
             f"unsloth/Qwen2.5-{size}-Instruct", "qwen-2.5") for size in ("0.5B", "1.5B", "3B", "7B")],
]}


def get_preset(base_model: str) -> Preset | None:
    return PRESETS.get(base_model.strip().lower())


def check_base_model(base_model: str) -> None:
    """A name without '/' that is neither a preset nor an existing folder is almost surely a typo."""
    if not base_model.strip():
        raise ConfigError("base_model: empty; give a preset name, a Hugging Face id or a local folder")
    if get_preset(base_model) or "/" in base_model or Path(base_model).expanduser().exists():
        return
    close = difflib.get_close_matches(base_model.lower(), list(PRESETS), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise ConfigError(f"base_model: {base_model!r} is not a preset{hint}, a Hugging Face id (org/name) or an "
                      f"existing folder; presets: {', '.join(PRESETS)}")


def resolve_model_id(base_model: str, backend: str, load_in_4bit: bool) -> str:
    """The id or path to load for `base_model` on `backend` ("unsloth" or "peft")."""
    preset = get_preset(base_model)
    if preset is None:
        return str(Path(base_model).expanduser()) if Path(base_model).expanduser().exists() else base_model
    if backend == "unsloth":
        return preset.unsloth_4bit_id if load_in_4bit else preset.unsloth_16bit_id
    return preset.peft_id


def detect_family(template: str | None, base_model: str = "") -> Family:
    """The family of a preset, else guessed from the chat template's markers, else ChatML."""
    preset = get_preset(base_model) if base_model else None
    if preset is not None:
        return FAMILIES[preset.family]
    t = template or ""
    if "<|start_header_id|>" in t:
        return FAMILIES["llama-3"]
    if "[INST]" in t:
        return FAMILIES["mistral"]
    return FAMILIES["chatml"]


NAMED_TEMPLATES = {"chatml": CHATML_TEMPLATE, "llama-3": LLAMA3_TEMPLATE, "mistral": MISTRAL_TEMPLATE}
