"""nanoGPT in PyTorch eager ("nanogpt_torch"): the character-level GPT race's reference point.

Written for this benchmark from nanoGPT's published architecture and hyper-parameters (karpathy/nanoGPT,
MIT; `model.py`, `train.py`, `config/train_shakespeare_char.py`), not copied from it: LayerNorm
(eps 1e-5, optional bias), causal self-attention with one fused qkv `Linear` and
`F.scaled_dot_product_attention(is_causal=True)`, a 4x GELU MLP, pre-norm residual blocks, a head tied
to the token embedding, normal(0, 0.02) init with the residual projections at 0.02 / sqrt(2 * n_layer),
AdamW (betas 0.9 / beta2, weight decay only on tensors of 2+ dimensions), warm-up then cosine learning
rate, gradient clipping at 1.0, and `get_batch`'s random windows (`torch.randint`, seed 1337), and
dropout where nanoGPT drops (after the embeddings, on the attention weights, at the end of each residual
branch). On CPU it runs as nanoGPT's CPU command line does (`--compile=False --dropout=0.0`, float32); on
a CUDA GPU as nanoGPT's `train.py` does by default: TF32 matmuls, bfloat16 autocast (the race's
"mixed_bfloat16" policy), fused AdamW and `torch.compile` (the race's `torch_compile`). PyTorch keeps its
default thread count; `device` reports it. Needs `torch` (`pip install torch==2.13.0`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F


class CausalSelfAttention(nn.Module):
    def __init__(self, n_embd: int, n_head: int, bias: bool, dropout: float = 0.0) -> None:
        super().__init__()
        self.n_head, self.dropout = n_head, dropout
        self.c_attn = nn.Linear(n_embd, 3 * n_embd, bias=bias)
        self.c_proj = nn.Linear(n_embd, n_embd, bias=bias)
        self.resid_dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        q, k, v = (z.view(b, t, self.n_head, c // self.n_head).transpose(1, 2)
                   for z in self.c_attn(x).split(c, dim=2))
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0, is_causal=True)
        return self.resid_dropout(self.c_proj(y.transpose(1, 2).contiguous().view(b, t, c)))


class Block(nn.Module):
    def __init__(self, n_embd: int, n_head: int, bias: bool, dropout: float = 0.0) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(n_embd, eps=1e-5, bias=bias)
        self.attn = CausalSelfAttention(n_embd, n_head, bias, dropout)
        self.ln_2 = nn.LayerNorm(n_embd, eps=1e-5, bias=bias)
        self.mlp = nn.Sequential(nn.Linear(n_embd, 4 * n_embd, bias=bias), nn.GELU(),
                                 nn.Linear(4 * n_embd, n_embd, bias=bias), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    """Token + position embeddings, blocks, final LayerNorm, head tied to the token embedding."""

    def __init__(self, vocab_size: int, block_size: int, n_layer: int, n_head: int, n_embd: int,
                 bias: bool = False, dropout: float = 0.0) -> None:
        super().__init__()
        self.wte = nn.Embedding(vocab_size, n_embd)
        self.wpe = nn.Embedding(block_size, n_embd)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(Block(n_embd, n_head, bias, dropout) for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(n_embd, eps=1e-5, bias=bias)
        self.lm_head = nn.Linear(n_embd, vocab_size, bias=False)
        self.wte.weight = self.lm_head.weight  # weight tying
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, 0.0, 0.02)
                if getattr(module, "bias", None) is not None:
                    nn.init.zeros_(module.bias)
        for block in self.blocks:  # the residual projections: attention's c_proj and the MLP's second Linear
            for w in (block.attn.c_proj.weight, block.mlp[2].weight):
                nn.init.normal_(w, 0.0, 0.02 / math.sqrt(2 * n_layer))

    def forward(self, idx: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        t = idx.shape[1]
        x = self.drop(self.wte(idx) + self.wpe(torch.arange(t, device=idx.device)))
        for block in self.blocks:
            x = block(x)
        logits = self.lm_head(self.ln_f(x))
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1))


def get_lr(it: int, cfg: Any) -> float:
    """nanoGPT's schedule: linear warm-up, cosine decay to `min_lr` at `iters`, then `min_lr`."""
    if it < cfg.warmup_iters:
        return cfg.lr * (it + 1) / (cfg.warmup_iters + 1)
    if it > cfg.iters:
        return cfg.min_lr
    ratio = (it - cfg.warmup_iters) / max(cfg.iters - cfg.warmup_iters, 1)
    return cfg.min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (cfg.lr - cfg.min_lr)


class Contender:
    """nanoGPT's training loop cut into `run(k)` calls, so the race can alternate contenders."""

    def __init__(self, cfg: Any, train_ids: np.ndarray, val_ids: np.ndarray, eval_starts: np.ndarray,
                 vocab_size: int) -> None:
        if cfg.policy not in ("float32", "mixed_bfloat16"):
            raise ValueError(f"nanogpt_torch: policy must be 'float32' or 'mixed_bfloat16', got {cfg.policy!r}")
        torch.manual_seed(1337 + cfg.seed)
        self.cfg, self.it, self.loss = cfg, 0, float("nan")
        cuda = torch.cuda.is_available()
        self.target = torch.device("cuda" if cuda else "cpu")
        if cuda:  # nanoGPT's train.py
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        self.train = torch.from_numpy(train_ids.astype(np.int64))
        self.val = torch.from_numpy(val_ids.astype(np.int64))
        self.eval_starts = [torch.from_numpy(s.astype(np.int64)) for s in eval_starts]
        self.offsets = torch.arange(cfg.block_size + 1)
        self.model = GPT(vocab_size, cfg.block_size, cfg.n_layer, cfg.n_head, cfg.n_embd, cfg.bias,
                         cfg.dropout).to(self.target)
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW([
            {"params": [p for p in params if p.dim() >= 2], "weight_decay": cfg.weight_decay},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
        ], lr=cfg.lr, betas=(0.9, cfg.beta2), **({"fused": True} if cuda else {}))
        self.forward = torch.compile(self.model) if cfg.torch_compile else self.model
        self.autocast = cfg.policy == "mixed_bfloat16"
        self.n_params = sum(p.numel() for p in self.model.parameters())
        self.device = (f"{torch.cuda.get_device_name()}, torch {torch.__version__}" if cuda
                       else f"cpu, torch {torch.__version__}, {torch.get_num_threads()} threads")

    def _windows(self, data: torch.Tensor, starts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        rows = data[starts[:, None] + self.offsets]
        if self.target.type == "cuda":  # nanoGPT's get_batch: pinned, asynchronous copies
            rows = rows.pin_memory().to(self.target, non_blocking=True)
        return rows[:, :-1], rows[:, 1:]

    def _loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with torch.autocast(self.target.type, dtype=torch.bfloat16, enabled=self.autocast):
            return self.forward(x, y)

    def run(self, steps: int) -> None:
        """`steps` training iterations, each as nanoGPT's loop does it."""
        cfg, model, optimizer = self.cfg, self.model, self.optimizer
        model.train()
        for _ in range(steps):
            for group in optimizer.param_groups:
                group["lr"] = get_lr(self.it, cfg)
            x, y = self._windows(self.train, torch.randint(len(self.train) - cfg.block_size, (cfg.batch_size,)))
            loss = self._loss(x, y)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            self.it += 1
        self.loss = float(loss.detach())

    def evaluate(self) -> float:
        """The mean loss over the shared validation windows."""
        self.model.eval()
        with torch.no_grad():
            return float(np.mean([self._loss(*self._windows(self.val, s)).item() for s in self.eval_starts]))
