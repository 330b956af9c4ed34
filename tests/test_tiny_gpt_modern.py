"""block=modern: shapes and init, Muon on every hidden matrix, training end to end (exact resume, DDP,
--sample/--chat/--export-hf), the exact Qwen3 export (logits and HF greedy generation), old checkpoints."""

from __future__ import annotations

import io
import socket
import sys

import pytest
import torch

from graftkit.corpus import ME, THEM
from graftkit.errors import ConfigError
from graftkit.tiny_gpt.model import ModelArgs, TinyGPT
from test_tiny_gpt import _state, data_dir, quiet, tiny_cfg  # noqa: F401  (data_dir is a fixture)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def modern_args(**kw) -> ModelArgs:
    base = dict(vocab_size=100, block_size=16, n_layer=2, n_head=4, n_embd=32, block="modern", zero_init_proj=True)
    return ModelArgs(**{**base, **kw})


def test_modern_shapes_init_and_param_count():
    a = modern_args()
    m = TinyGPT(a)
    C, H, L, V = 32, a.ffn_hidden, 2, 100
    assert H == 80  # 8/3 * 32 = 85.3 -> nearest multiple of 16
    assert TinyGPT(modern_args(n_embd=128)).args.ffn_hidden == 336  # 3*128*336 ~ GPT-2's 8*128^2 (-1.6 %)
    per_block = 2 * C + 4 * C * C + 2 * (C // 4) + 3 * C * H  # 2 norms, q k v o, q/k norms, gate up down
    assert m.num_params() == 2 * V * C + L * per_block + C  # untied embedding and head, no position table
    assert m.wpe is None and m.lm_head.weight is not m.wte.weight
    for name, p in m.named_parameters():  # zero-init output projections and head: blocks start as identity
        if name.endswith(("o_proj.weight", "down_proj.weight")) or name == "lm_head.weight":
            assert not p.any(), name
    idx = torch.randint(0, V, (3, 16))
    logits, loss = m(idx, idx)
    assert logits.shape == (3, 16, V) and loss.item() == pytest.approx(torch.log(torch.tensor(100.0)).item())
    with pytest.raises(ValueError, match="block_size"):
        m(torch.zeros(1, 17, dtype=torch.long))


def test_modern_attention_is_causal_and_positions_matter():
    torch.manual_seed(0)
    m = TinyGPT(modern_args(zero_init_proj=False)).eval()
    with torch.no_grad():
        m.lm_head.weight.normal_(0, 0.5)
    a = torch.randint(0, 100, (1, 12))
    b = a.clone()
    b[0, 8:] = (b[0, 8:] + 1) % 100
    with torch.no_grad():
        la, lb = m(a)[0], m(b)[0]
        swapped = m(a[:, [1, 0, *range(2, 12)]])[0]
    assert torch.allclose(la[0, :8], lb[0, :8], atol=1e-6) and not torch.allclose(la[0, 8:], lb[0, 8:])
    assert not torch.allclose(swapped[0, 11], la[0, 11], atol=1e-4)  # RoPE: order changes the prediction


def test_muon_takes_every_hidden_matrix_adamw_the_rest(data_dir, tmp_path):
    from train_tiny_gpt import make_optimizer

    m = TinyGPT(modern_args())
    opt = make_optimizer(m, tiny_cfg(data_dir, tmp_path, block="modern", optimizer="muon"))
    names = {id(p): n for n, p in m.named_parameters()}
    muon = sorted(names[id(p)] for g in opt.param_groups if g["use_muon"] for p in g["params"])
    assert muon == sorted(f"h.{i}.{part}.weight" for i in range(2) for part in (
        "attn.q_proj", "attn.k_proj", "attn.v_proj", "attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"))
    adamw = {names[id(p)] for g in opt.param_groups if not g["use_muon"] for p in g["params"]}
    assert {"wte.weight", "lm_head.weight", "ln_f.weight", "h.0.attn.q_norm.weight"} <= adamw
    assert len(muon) + len(adamw) == len(names)


def test_modern_config_refuses_bias():
    from graftkit.config import load_config
    from graftkit.tiny_gpt.config import TinyGPTConfig

    with pytest.raises(ConfigError, match="block=modern has no biases"):
        load_config(TinyGPTConfig, None, ["block=modern", "bias=true"])


def test_modern_exact_resume_and_ddp(data_dir, tmp_path, monkeypatch):
    from train_tiny_gpt import train

    kw = dict(max_iters=8, eval_interval=4, block="modern", optimizer="muon", dropout=0.0)
    train(tiny_cfg(data_dir, tmp_path / "straight", **kw), log=quiet)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_cfg(data_dir, tmp_path / "resumed", **kw), log=quiet, interrupt_at=5)
    train(tiny_cfg(data_dir, tmp_path / "resumed", **kw), log=quiet)
    a, b = _state(tmp_path / "straight/last.pt"), _state(tmp_path / "resumed/last.pt")
    assert a["iter"] == b["iter"] == 8 and a["model_args"]["block"] == "modern"
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    assert any("momentum_buffer" in st for st in a["optimizer"]["state"].values())  # Muon state saved
    for pid, st in a["optimizer"]["state"].items():
        for k, v in st.items():
            assert torch.equal(v, b["optimizer"]["state"][pid][k]), (pid, k)
    # resuming as gpt2 is refused with the reason
    with pytest.raises(Exception, match="block='modern'"):
        train(tiny_cfg(data_dir, tmp_path / "resumed", **{**kw, "block": "gpt2", "max_iters": 10}), log=quiet)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for k, v in dict(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)).items():
        monkeypatch.setenv(k, v)
    s = train(tiny_cfg(data_dir, tmp_path / "ddp", **{**kw, "max_iters": 2, "eval_interval": 2}), log=quiet)
    assert s["iters"] == 2 and not torch.distributed.is_initialized()


def test_checkpoint_without_block_key_loads_as_gpt2(data_dir, tmp_path):
    from graftkit.checkpoint import atomic_torch_save
    from graftkit.tiny_gpt.checkpoints import load_for_inference
    from train_tiny_gpt import train

    cfg = tiny_cfg(data_dir, tmp_path / "old", max_iters=2, eval_interval=2, dropout=0.0)
    train(cfg, log=quiet)
    ck = _state(tmp_path / "old/last.pt")
    for key in ("block", "mlp_act", "rope_theta", "norm_eps"):  # as written before block=modern existed
        del ck["model_args"][key]
    atomic_torch_save(ck, tmp_path / "old/last.pt")
    model, *_ = load_for_inference(cfg, str(tmp_path / "old/last.pt"))
    assert model.args.block == "gpt2" and model.wpe is not None
    s = train(tiny_cfg(data_dir, tmp_path / "old", max_iters=4, eval_interval=2, dropout=0.0), log=quiet)
    assert s["iters"] == 4  # and it resumes


@pytest.mark.parametrize("act", ["relu2", "silu"])
def test_qwen3_export_logits_and_greedy_generation_match(data_dir, tmp_path, act):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from graftkit.tiny_gpt.export import export_hf
    from graftkit.tiny_gpt.generate import generate
    from graftkit.tiny_gpt.tokenizer import ensure_tokenizer

    tok = ensure_tokenizer(tiny_cfg(data_dir, tmp_path), log=quiet)
    torch.manual_seed(0)
    model = TinyGPT(modern_args(vocab_size=tok.vocab_size, block_size=32, n_head=2, mlp_act=act)).eval()
    with torch.no_grad():  # zero-init weights and unit gains would hide mistakes: randomise everything
        for p in model.parameters():
            p.add_(torch.randn_like(p) * (0.3 if p.dim() == 1 else 0.1))
    export_hf(model, tok, tmp_path / "hf")
    hf = AutoModelForCausalLM.from_pretrained(tmp_path / "hf", dtype=torch.float32).eval()
    assert type(hf).__name__ == "Qwen3ForCausalLM" and hf.config.hidden_act == act
    hf_tok = AutoTokenizer.from_pretrained(tmp_path / "hf")
    text = f"{THEM}hey lol\n{ME}ok see you 😀\n"
    assert hf_tok.encode(text) == tok.encode(text)
    x = torch.randint(0, tok.vocab_size, (3, 32), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours, theirs = model(x)[0], hf(x).logits
    assert torch.allclose(ours, theirs, atol=1e-5, rtol=1e-4), (ours - theirs).abs().max()
    prompt = tok.encode(text)
    mine = generate(model, prompt, 32 - len(prompt), temperature=0.0)
    with torch.no_grad():
        out = hf.generate(torch.tensor([prompt]), max_new_tokens=len(mine), do_sample=False, eos_token_id=None,
                          min_new_tokens=len(mine))
    assert out[0, len(prompt):].tolist() == mine


def test_modern_cli_sample_chat_export(data_dir, tmp_path, monkeypatch, capsys):
    import train_tiny_gpt

    out = tmp_path / "run"
    train_tiny_gpt.train(tiny_cfg(data_dir, out, max_iters=6, eval_interval=3, block="modern", dropout=0.0),
                         log=quiet)
    overrides = [f"out_dir={out}", f"train_file={data_dir / 'train.txt'}", f"val_file={data_dir / 'val.txt'}",
                 "device=cpu", "num_samples=1", "max_new_tokens=12"]
    assert train_tiny_gpt.main(["--config", "tiny_gpt_config.yaml", "--sample", "<|them|>hey\\n<|me|>", *overrides]) == 0
    assert capsys.readouterr().out.count("--- sample") == 1
    monkeypatch.setattr(sys, "stdin", io.StringIO("hi there\n"))
    assert train_tiny_gpt.main(["--config", "tiny_gpt_config.yaml", "--chat", *overrides]) == 0
    assert capsys.readouterr().out.count("me> ") >= 1
    assert train_tiny_gpt.main(["--config", "tiny_gpt_config.yaml", "--export-hf", str(tmp_path / "hf"), *overrides]) == 0
    assert '"Qwen3ForCausalLM"' in (tmp_path / "hf/config.json").read_text()
