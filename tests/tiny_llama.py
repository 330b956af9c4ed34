"""A tiny random Llama chat model for fast CPU tests: `make_tiny_llama(dir) -> dir`.

It is saved with `save_pretrained` and meant to be loaded back through the same `from_pretrained`
path users hit (`base_model: <that folder>`): a `LlamaForCausalLM` (hidden 64, 2 layers, 4 heads,
2 KV heads) and a byte-level BPE tokenizer trained in-process with `tokenizers`, with the specials
`<|endoftext|>`, `<|im_start|>`, `<|im_end|>` (= eos, the end-of-turn token) and `<pad>`, and a
ChatML chat template with `{% generation %}` markers. Deterministic for a given `seed`.
"""

from __future__ import annotations

from pathlib import Path

# the kit's own ChatML template (with {% generation %} markers), as a chat model would ship it
from graftkit.lora.presets import CHATML_TEMPLATE

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<pad>"]


_CORPUS = [
    "Hello! How are you doing today? I'm fine, thanks for asking.",
    "What's the capital of France? Paris. Write a haiku about tea, please.",
    "Steam curls from the cup, quiet leaves unfold their green, morning holds its breath.",
    "lol yeah see you at 7, bring snacks. ok sounds good :) night!",
    "The quick brown fox jumps over the lazy dog 0123456789.",
    "Переведи: good night. Спокойной ночи! 🍵 café naïve",
    "system user assistant You are a helpful assistant.",
]


def make_tiny_llama(out_dir: str | Path, seed: int = 0, vocab_size: int = 512) -> Path:
    """Save a tiny random LlamaForCausalLM + ChatML tokenizer to `out_dir`; return the folder."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    bpe.train_from_iterator(_CORPUS * 4, trainer=trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|im_end|>", pad_token="<pad>",
                                  unk_token=None, bos_token=None)
    tok.chat_template = CHATML_TEMPLATE
    tok.save_pretrained(out)

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
        eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, bos_token_id=None,
        tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    model.save_pretrained(out)
    return out
