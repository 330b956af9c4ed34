#!/usr/bin/env python
"""Random-init chat models with the LoRA presets' exact layer shapes, and a tokenizer built in-process.

    python bench/gpu/random_model.py qwen2.5-0.5b /tmp/models/qwen05            # full shape, bf16
    python bench/gpu/random_model.py mistral-7b /tmp/models/m7 --layers 4       # fewer layers, same widths
    python bench/gpu/random_model.py llama-3.2-1b /tmp/models/tiny --tiny       # CPU-sized (tests)

Why: the GPU machine is offline, so no model can be downloaded there. Speed and memory of LoRA
training depend on the shapes (hidden size, heads, KV heads, MLP width, vocabulary), not on the
trained values, so a random model of the same architecture class and shape gives the same
tokens/s and VRAM. The tokenizer is a small byte-level BPE trained here on chat-like text, with
the family's special tokens and graftkit's chat template of that family (so train_lora.py's
`chat_template: auto` uses it); the embedding keeps the preset's full vocabulary size.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from graftkit.lora.presets import CHATML_TEMPLATE, LLAMA3_TEMPLATE, MISTRAL_TEMPLATE  # noqa: E402

# The published configs of the preset models (config.json on the hub), architecture and shape keys only.
SHAPES: dict[str, dict] = {
    "llama-3.2-1b": dict(arch="llama", family="llama-3", hidden_size=2048, intermediate_size=8192,
                         num_hidden_layers=16, num_attention_heads=32, num_key_value_heads=8, head_dim=64,
                         vocab_size=128256, max_position_embeddings=131072, rope_theta=500000.0,
                         rms_norm_eps=1e-5, tie_word_embeddings=True,
                         rope_scaling={"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0,
                                       "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}),
    "qwen2.5-0.5b": dict(arch="qwen2", family="chatml", hidden_size=896, intermediate_size=4864,
                         num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2, vocab_size=151936,
                         max_position_embeddings=32768, rope_theta=1000000.0, rms_norm_eps=1e-6,
                         tie_word_embeddings=True),
    "qwen2.5-1.5b": dict(arch="qwen2", family="chatml", hidden_size=1536, intermediate_size=8960,
                         num_hidden_layers=28, num_attention_heads=12, num_key_value_heads=2, vocab_size=151936,
                         max_position_embeddings=32768, rope_theta=1000000.0, rms_norm_eps=1e-6,
                         tie_word_embeddings=True),
    "mistral-7b": dict(arch="mistral", family="mistral", hidden_size=4096, intermediate_size=14336,
                       num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8, head_dim=128,
                       vocab_size=32768, max_position_embeddings=32768, rope_theta=1000000.0, rms_norm_eps=1e-5,
                       sliding_window=None, tie_word_embeddings=False),
}
# published parameter counts, for the shape check (tests/test_gpu_kit.py)
PUBLISHED_PARAMS = {"llama-3.2-1b": 1.24e9, "qwen2.5-0.5b": 0.494e9, "qwen2.5-1.5b": 1.54e9, "mistral-7b": 7.25e9}

# family: (special tokens, bos, eos = end of turn, pad, chat template)
FAMILY_TOKENS = {
    "llama-3": (["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>",
                 "<|finetune_right_pad_id|>"], "<|begin_of_text|>", "<|eot_id|>", "<|finetune_right_pad_id|>",
                LLAMA3_TEMPLATE),
    "chatml": (["<|endoftext|>", "<|im_start|>", "<|im_end|>"], None, "<|im_end|>", "<|endoftext|>", CHATML_TEMPLATE),
    "mistral": (["<unk>", "<s>", "</s>", "[INST]", "[/INST]", "<pad>"], "<s>", "</s>", "<pad>", MISTRAL_TEMPLATE),
}
CORPUS = [
    "hey are you coming tonight? haha yeah be there at 7, bring snacks lol",
    "did you see the game?? omg yes!! what a finish, rain check on lunch tomorrow?",
    "can you send me the notes? sure thing, sending now. thanks!! you're the best",
    "The quick brown fox jumps over the lazy dog. 0123456789 system user assistant",
    "ok ok see you there :) 🍕 🎬 🙌 café naïve — good night",
]


def model_config(preset: str, layers: int | None = None, tiny: bool = False):
    """A transformers config with the preset's shape (`layers` fewer blocks; `tiny`: CPU-sized widths, same ratios)."""
    from transformers import LlamaConfig, MistralConfig, Qwen2Config

    if preset not in SHAPES:
        raise SystemExit(f"error: unknown preset {preset!r}; choose from {', '.join(SHAPES)}")
    shape = dict(SHAPES[preset])
    arch = shape.pop("arch")
    shape.pop("family")
    if tiny:  # keep heads / KV heads, shrink widths and vocabulary
        heads, kv = shape["num_attention_heads"], shape["num_key_value_heads"]
        shape.update(hidden_size=16 * heads, intermediate_size=48 * heads, vocab_size=1024,
                     max_position_embeddings=2048)
        if "head_dim" in shape:
            shape["head_dim"] = 16
        assert heads % kv == 0
    if layers:
        shape["num_hidden_layers"] = layers
    cls = {"llama": LlamaConfig, "qwen2": Qwen2Config, "mistral": MistralConfig}[arch]
    return cls(**shape)


def build_tokenizer(family: str, corpus_vocab: int = 2000):
    """Byte-level BPE trained on a small chat-like corpus, with the family's specials and chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials, bos, eos, pad, template = FAMILY_TOKENS[family]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=corpus_vocab, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    bpe.train_from_iterator(CORPUS * 8, trainer=trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token=bos, eos_token=eos, pad_token=pad, unk_token=None)
    tok.chat_template = template
    return tok


def build(preset: str, out_dir: str | Path, layers: int | None = None, tiny: bool = False, device: str = "auto",
          dtype: str = "bfloat16", seed: int = 0) -> Path:
    """Save a random-init model of `preset`'s shape + its tokenizer to `out_dir` (from_pretrained-loadable)."""
    import torch
    from transformers import AutoModelForCausalLM, GenerationConfig

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    family = SHAPES[preset]["family"]
    tok = build_tokenizer(family)
    cfg = model_config(preset, layers, tiny)
    if len(tok) > cfg.vocab_size:
        raise SystemExit(f"error: tokenizer ({len(tok)}) larger than the vocabulary ({cfg.vocab_size})")
    cfg.bos_token_id, cfg.eos_token_id, cfg.pad_token_id = tok.bos_token_id, tok.eos_token_id, tok.pad_token_id
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(seed)
    with torch.device(device):  # initialise on the GPU: a 7B random init on CPU takes minutes
        model = AutoModelForCausalLM.from_config(cfg, dtype=getattr(torch, dtype))
    model.generation_config = GenerationConfig(bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                                               pad_token_id=tok.pad_token_id)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def count_params(preset: str, layers: int | None = None) -> int:
    """Parameters of the full-shape model, counted on the meta device (no memory)."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(model_config(preset, layers))
    return sum(p.numel() for p in model.parameters())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("preset", choices=sorted(SHAPES), help="which preset's shape to build")
    ap.add_argument("out_dir", help="folder to save the model and tokenizer to (base_model: <this folder>)")
    ap.add_argument("--layers", type=int, default=None, help="number of transformer blocks (default: the preset's)")
    ap.add_argument("--tiny", action="store_true", help="CPU-sized widths and a 1024 vocabulary (tests only)")
    ap.add_argument("--device", default="auto", help="where to initialise: auto (cuda if present), cuda or cpu")
    ap.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"],
                    help="dtype of the saved weights")
    ap.add_argument("--seed", type=int, default=0, help="random seed of the init")
    args = ap.parse_args(argv)
    out = build(args.preset, args.out_dir, args.layers, args.tiny, args.device, args.dtype, args.seed)
    print(f"{args.preset} ({'tiny' if args.tiny else 'full width'}, "
          f"{args.layers or SHAPES[args.preset]['num_hidden_layers']} layers) saved to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
