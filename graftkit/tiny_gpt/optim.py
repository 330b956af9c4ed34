"""Optimiser and learning-rate schedule for the tiny GPT: Muon for hidden matrices, AdamW for the rest.

Why Muon (Keller Jordan, 2024; what took the modded-nanogpt speedrun from 45 to ~3 minutes): for a
2-D weight, Muon keeps SGD momentum of the gradient and replaces the update by its nearest
semi-orthogonal matrix (all singular values ~1), computed with five Newton-Schulz iterations. Every
direction of the matrix then learns at the same rate, so rare directions are not drowned out by the
few dominant ones. On this model it buys a lower loss at equal steps for ~10 % more time per step
(the Newton-Schulz matmuls: 5 x 3 small matmuls per matrix per step). Embeddings, the (tied) head
and the LayerNorm gains are not hidden matrices and stay on AdamW, as in the speedrun.

The loop-facing surface is deliberately tiny, so any training loop can use it:

    opt = build_optimizer(model, cfg)       # one torch.optim.Optimizer: step, zero_grad, state_dict, ...
    for g in opt.param_groups:              # every iteration
        g["lr"] = g["base_lr"] * lr_at(it, max_iters, cfg)

`base_lr` is each group's peak rate (Muon groups: muon_lr; AdamW groups: learning_rate); `lr_at`
returns the schedule's multiplier. Muon's momentum buffers are ordinary optimiser state, so
`state_dict()`/`load_state_dict()` resume bit-exactly.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

# Newton-Schulz quintic coefficients from Keller Jordan's Muon: converge fast to singular values in
# roughly [0.7, 1.2], which is all the update needs (exact orthogonality is not worth the extra steps).
NS_COEFFS = (3.4445, -4.7750, 2.0315)


def orthogonalize(g: torch.Tensor, steps: int = 5) -> torch.Tensor:
    """Approximately U V^T of g = U S V^T (works on the wide orientation: X X^T is the smaller matmul)."""
    a, b, c = NS_COEFFS
    x = g.float()
    tall = x.size(-2) > x.size(-1)
    if tall:
        x = x.mT
    x = x / (x.norm(dim=(-2, -1), keepdim=True) + 1e-7)  # spectral norm <= Frobenius norm <= 1
    for _ in range(steps):
        A = x @ x.mT
        x = a * x + (b * A + c * A @ A) @ x
    if tall:
        x = x.mT
    return x.to(g.dtype)


class MuonAdamW(torch.optim.Optimizer):
    """One optimiser, two update rules: groups with use_muon=True get Muon, the others AdamW.

    Muon group keys: lr, momentum, nesterov, ns_steps, weight_decay. AdamW group keys: lr, betas, eps,
    weight_decay. Subclassing torch.optim.Optimizer gives zero_grad, state_dict and load_state_dict
    (and GradScaler / DDP compatibility) for free.
    """

    def __init__(self, groups: list[dict]):
        defaults = dict(lr=1e-3, use_muon=False, momentum=0.95, nesterov=True, ns_steps=5,
                        betas=(0.9, 0.99), eps=1e-8, weight_decay=0.0)
        super().__init__(groups, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            if group["use_muon"]:
                self._muon(group)
            else:
                self._adamw(group)
        return loss

    def _muon(self, group: dict) -> None:
        lr, mom, wd = group["lr"], group["momentum"], group["weight_decay"]
        for p in group["params"]:
            if p.grad is None:
                continue
            state = self.state[p]
            if "momentum_buffer" not in state:
                state["momentum_buffer"] = torch.zeros_like(p)
            buf = state["momentum_buffer"]
            buf.lerp_(p.grad, 1 - mom)
            g = p.grad.lerp(buf, mom) if group["nesterov"] else buf
            update = orthogonalize(g, group["ns_steps"])
            if wd:
                p.mul_(1 - lr * wd)
            # orthogonal updates have RMS 1/sqrt(max dim); this rescaling makes tall matrices (the MLP's
            # c_fc: 4C x C) move as much per step as square ones
            p.add_(update, alpha=-lr * max(1.0, p.size(-2) / p.size(-1)) ** 0.5)

    def _adamw(self, group: dict) -> None:
        lr, (beta1, beta2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
        for p in group["params"]:
            if p.grad is None:
                continue
            state = self.state[p]
            if "step" not in state:
                state["step"] = torch.zeros((), dtype=torch.float32)
                state["exp_avg"] = torch.zeros_like(p)
                state["exp_avg_sq"] = torch.zeros_like(p)
            state["step"] += 1
            t = float(state["step"])
            m, v = state["exp_avg"], state["exp_avg_sq"]
            m.lerp_(p.grad, 1 - beta1)
            v.mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
            if wd:
                p.mul_(1 - lr * wd)
            denom = (v / (1 - beta2 ** t)).sqrt_().add_(eps)
            p.addcdiv_(m, denom, value=-lr / (1 - beta1 ** t))


def _is_hidden_matrix(name: str, p: nn.Parameter) -> bool:
    """The 2-D weights inside the blocks; embeddings and the (tied) head are excluded."""
    return p.dim() == 2 and ".h." in f".{name}" and "wte" not in name and "wpe" not in name


def build_optimizer(model: nn.Module, cfg) -> torch.optim.Optimizer:
    """optimizer=muon: Muon (muon_lr) on hidden matrices, AdamW (learning_rate) on embeddings/head/gains.
    optimizer=adamw: the previous recipe, fused AdamW with decay on 2-D weights only.
    Every group carries base_lr, its peak rate, which the loop scales by lr_at()."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    kw = dict(betas=(cfg.beta1, cfg.beta2))
    if cfg.optimizer == "adamw":
        groups = [{"params": [p for _, p in named if p.dim() >= 2], "weight_decay": cfg.weight_decay},
                  {"params": [p for _, p in named if p.dim() < 2], "weight_decay": 0.0}]
        for g in groups:
            g["base_lr"] = cfg.learning_rate
        for fused in (True, False):  # one fused kernel for all tensors where torch has it
            try:
                return torch.optim.AdamW(groups, lr=cfg.learning_rate, fused=fused or None, **kw)
            except (RuntimeError, TypeError, ValueError):
                continue
    hidden = [p for n, p in named if _is_hidden_matrix(n, p)]
    other2d = [p for n, p in named if p.dim() >= 2 and not _is_hidden_matrix(n, p)]
    gains = [p for _, p in named if p.dim() < 2]
    groups = [
        {"params": hidden, "use_muon": True, "lr": cfg.muon_lr, "base_lr": cfg.muon_lr,
         "momentum": cfg.muon_momentum, "weight_decay": 0.0},
        {"params": other2d, "lr": cfg.learning_rate, "base_lr": cfg.learning_rate,
         "weight_decay": cfg.weight_decay, **kw},
        {"params": gains, "lr": cfg.learning_rate, "base_lr": cfg.learning_rate, "weight_decay": 0.0, **kw},
    ]
    return MuonAdamW([g for g in groups if g["params"]])


def lr_at(it: int, total_iters: int, cfg) -> float:
    """The schedule's multiplier of each group's base_lr at iteration `it` (0-based).

    wsd (warmup-stable-decay, the "trapezoid"): linear warmup over warmup_iters, flat at 1, then a
    linear cool-down to min_lr/learning_rate over the last cooldown_frac of the run. Why: the flat
    part makes fast progress at the peak rate and the final linear decay harvests it; unlike cosine,
    the rate stays high for most of the run (modded-nanogpt, MiniCPM).
    cosine: linear warmup then cosine decay to min_lr/learning_rate (nanoGPT's schedule).
    decay_lr=false: constant 1 (no warmup either), as before."""
    if not cfg.decay_lr:
        return 1.0
    floor = cfg.min_lr / cfg.learning_rate
    if it < cfg.warmup_iters:
        return (it + 1) / (cfg.warmup_iters + 1)
    if cfg.lr_schedule == "cosine":
        span = max(1, total_iters - cfg.warmup_iters)
        ratio = min(1.0, (it - cfg.warmup_iters) / span)
        return floor + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (1.0 - floor)
    cooldown = max(1, round(cfg.cooldown_frac * total_iters))
    start = total_iters - cooldown
    if it < start:
        return 1.0
    ratio = min(1.0, (it - start) / cooldown)
    return 1.0 - ratio * (1.0 - floor)
