"""Export a trained tiny GPT as a stock `transformers` folder: GPT2LMHeadModel (block=gpt2) or
Qwen3ForCausalLM (block=modern). Both compute exactly our function (tests compare logits and greedy
generations).

block=modern -> Qwen3: the layout is Qwen3's already (RMSNorm, per-head q/k RMSNorm before rotate_half
RoPE, q/k/v/o and gate/up/down without biases, untied head), so the export is a rename
(to_qwen3_state_dict) plus a config: head_dim = n_embd/n_head, num_key_value_heads = n_head (no
grouped-query attention), hidden_act = mlp_act (relu2 and silu are both in transformers' ACT2FN),
rope_parameters.rope_theta, rms_norm_eps = norm_eps, tie_word_embeddings=False.

block=gpt2 -> GPT-2:
Differences bridged here:
- GPT-2 stores its projections in Conv1D modules, whose weight is the transpose of nn.Linear's.
- GPT-2 always has biases; a model trained with `bias: false` gets zero biases (same function).
- activation_function="gelu" is transformers' exact erf GELU, matching F.gelu (GPT-2's default
  "gelu_new" is the tanh approximation, which would not match).
- dropout is set to 0 and layer_norm_epsilon to PyTorch's 1e-5.
The folder holds config.json, model.safetensors, generation_config.json and the tokenizer files.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import UserError
from .model import TinyGPT
from .tokenizer import TinyTokenizer, load_hf_tokenizer

_CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")


def to_gpt2_state_dict(model: TinyGPT) -> dict[str, torch.Tensor]:
    a = model.args
    sd = {k: v.detach().float().cpu() for k, v in model.state_dict().items()}
    out: dict[str, torch.Tensor] = {}
    for k, v in sd.items():
        if k == "lm_head.weight":
            continue  # tied to wte
        out["transformer." + k] = v.t().contiguous() if k.endswith(_CONV1D) else v.clone()
    if not a.bias:
        C = a.n_embd
        zeros = {"ln_1.bias": C, "ln_2.bias": C, "attn.c_attn.bias": 3 * C, "attn.c_proj.bias": C,
                 "mlp.c_fc.bias": 4 * C, "mlp.c_proj.bias": C}
        for i in range(a.n_layer):
            for name, n in zeros.items():
                out[f"transformer.h.{i}.{name}"] = torch.zeros(n)
        out["transformer.ln_f.bias"] = torch.zeros(C)
    out["lm_head.weight"] = out["transformer.wte.weight"]
    return out


_QWEN3_NAMES = {"ln_1": "input_layernorm", "ln_2": "post_attention_layernorm", "attn": "self_attn"}


def to_qwen3_state_dict(model: TinyGPT) -> dict[str, torch.Tensor]:
    """Our modern names -> Qwen3's: wte -> model.embed_tokens, h.N.ln_1 -> model.layers.N.input_layernorm,
    h.N.attn.q_proj -> model.layers.N.self_attn.q_proj, ..., ln_f -> model.norm; lm_head stays."""
    out: dict[str, torch.Tensor] = {}
    for k, v in model.state_dict().items():
        v = v.detach().float().cpu().clone()
        if k == "lm_head.weight":
            out[k] = v
        elif k == "wte.weight":
            out["model.embed_tokens.weight"] = v
        elif k == "ln_f.weight":
            out["model.norm.weight"] = v
        else:
            _, i, part, *rest = k.split(".")  # h, N, ln_1|attn|ln_2|mlp, ...
            out[".".join(["model.layers", i, _QWEN3_NAMES.get(part, part), *rest])] = v
    return out


def _gpt2(model: TinyGPT, end_id: int):
    from transformers import GPT2Config, GPT2LMHeadModel

    a = model.args
    config = GPT2Config(
        vocab_size=a.vocab_size, n_positions=a.block_size, n_embd=a.n_embd, n_layer=a.n_layer,
        n_head=a.n_head, n_inner=4 * a.n_embd, activation_function="gelu", resid_pdrop=0.0,
        embd_pdrop=0.0, attn_pdrop=0.0, layer_norm_epsilon=1e-5, bos_token_id=end_id,
        eos_token_id=end_id, pad_token_id=end_id, tie_word_embeddings=True)
    hf = GPT2LMHeadModel(config)
    missing, unexpected = hf.load_state_dict(to_gpt2_state_dict(model), strict=False)
    return hf, missing, unexpected


def _qwen3(model: TinyGPT, end_id: int):
    from transformers import Qwen3Config, Qwen3ForCausalLM

    a = model.args
    config = Qwen3Config(
        vocab_size=a.vocab_size, hidden_size=a.n_embd, intermediate_size=a.ffn_hidden,
        num_hidden_layers=a.n_layer, num_attention_heads=a.n_head, num_key_value_heads=a.n_head,
        head_dim=a.n_embd // a.n_head, hidden_act=a.mlp_act, max_position_embeddings=a.block_size,
        rms_norm_eps=a.norm_eps, rope_parameters={"rope_type": "default", "rope_theta": a.rope_theta},
        attention_bias=False, attention_dropout=0.0, use_sliding_window=False, tie_word_embeddings=False,
        bos_token_id=end_id, eos_token_id=end_id, pad_token_id=end_id)
    hf = Qwen3ForCausalLM(config)
    missing, unexpected = hf.load_state_dict(to_qwen3_state_dict(model), strict=False)
    return hf, missing, unexpected


def export_hf(model: TinyGPT, tok: TinyTokenizer, out_dir: str | Path) -> Path:
    try:
        import transformers  # noqa: F401
    except ImportError:
        raise UserError("--export-hf needs transformers: pip install transformers") from None
    a = model.args
    end_id = tok.end_id
    hf, missing, unexpected = (_qwen3 if a.block == "modern" else _gpt2)(model, end_id)
    missing = [k for k in missing if not k.endswith(".attn.bias") and not k.endswith(".attn.masked_bias")]
    if missing or unexpected:
        raise UserError(f"internal: export key mismatch (missing {missing[:4]}, unexpected {unexpected[:4]})")
    hf.tie_weights()
    hf.eval()
    # generation stops at the end of a session or when the turn passes to the other person
    hf.generation_config.eos_token_id = [end_id, tok.them_id]
    hf.generation_config.pad_token_id = end_id
    out_dir = Path(out_dir)
    from ..fileio import make_private_dirs
    from ..runstate import private_umask

    make_private_dirs(out_dir)  # 0700, parents too; a read-only place is one line
    with private_umask():  # the exported model is trained on someone's chats: 0600 files
        hf.save_pretrained(out_dir)
        hf_tok = load_hf_tokenizer(tok)
        hf_tok.model_max_length = a.block_size
        hf_tok.save_pretrained(out_dir)
    return out_dir
