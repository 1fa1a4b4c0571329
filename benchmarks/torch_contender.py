"""PyTorch eager ("torch_eager"): the tutorial's models in plain PyTorch, a standard eager training loop.

Optional: needs `torch` (the CPU build `torch==2.13.0`); skipped as "not installed" otherwise. Same models
as `keras_jax` (`nn.Conv2d` on NCHW tensors, `nn.MaxPool2d`, `nn.Dropout(0.5)`, `nn.Linear`), Adam
(lr 1e-3, eps 1e-7 as Keras), cross-entropy from logits (`F.cross_entropy` on class indices, the same
loss as categorical cross-entropy on one-hot labels). Data lives in tensors once; every epoch a
`torch.randperm` shuffles it and batches are gathered by index (a short last batch stays short).
PyTorch's default initialisation is kept (Kaiming-uniform, not Keras' Glorot). No `torch.compile`:
this is eager mode. Threads are pinned to 2 (`torch.set_num_threads(2)`), the CPU runs' core count.
Where PyTorch sees a CUDA GPU, model and data live there (as JAX's workers use their default device).
The worker process also imports JAX (for `jax.devices()`), so its RSS includes both runtimes.

The `lstm` workloads: `nn.Embedding(500, 32)` -> `nn.LSTM(32, units, batch_first=True)` -> `nn.Linear(units,
1)`, `F.binary_cross_entropy_with_logits`. No mask and no packed sequences: PyTorch's LSTM has no mask,
and packing (which needs post-padding and skips the padded steps) would do less work than the masked
contenders; so it runs all 200 steps, reading padding token 0 as a word, the same arithmetic as the
others' masked scan. PyTorch's LSTM keeps two biases (`b_ih`, `b_hh`) and its own initialisation.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

torch.set_num_threads(2)
DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")

MLP_SIZES = {"mlp": (4, 32, 32, 32, 3), "wide": (784, 1024, 1024, 10)}  # as reference_jax.MLP_SIZES


class LstmClassifier(nn.Module):
    """Embedding -> LSTM over every step (no mask) -> Linear(units, 1) on the last step's `h`: one logit."""

    def __init__(self, vocab: int, units: int, embed: int = 32) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, embed)
        self.lstm = nn.LSTM(embed, units, batch_first=True)
        self.out = nn.Linear(units, 1)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        _, (h, _) = self.lstm(self.embed(ids))
        return self.out(h[-1])


def build_model(workload: Any) -> nn.Module:
    """The workload's model (a `Workload` or the name of an image/table workload)."""
    if getattr(workload, "sequence", False):
        return LstmClassifier(workload.vocab, workload.units)
    workload = getattr(workload, "name", workload)
    if workload == "cnn":
        return nn.Sequential(
            nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Dropout(0.5), nn.Linear(1600, 10),
        )
    if workload in MLP_SIZES:
        sizes = MLP_SIZES[workload]
        layers: list[nn.Module] = []
        for a, b in zip(sizes[:-2], sizes[1:-1]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        return nn.Sequential(*layers, nn.Linear(sizes[-2], sizes[-1]))
    raise ValueError(f"unknown workload {workload!r}")


def _tensors(x: np.ndarray, y: np.ndarray, workload: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and targets on the device: class indices for one-hot labels, float 0/1 of shape (n, 1) for
    binary ones; token ids as int64 (what `nn.Embedding` takes)."""
    if workload.sequence:
        return (torch.from_numpy(np.asarray(x, np.int64)).to(DEVICE),
                torch.from_numpy(np.asarray(y, np.float32)).to(DEVICE))
    xt = torch.from_numpy(np.ascontiguousarray(x, np.float32))
    if workload.name == "cnn":  # NHWC (the prepared arrays) -> NCHW, PyTorch's layout
        xt = xt.permute(0, 3, 1, 2).contiguous()
    return xt.to(DEVICE), torch.from_numpy(np.asarray(y).argmax(-1)).long().to(DEVICE)


def _loss(logits: torch.Tensor, y: torch.Tensor, binary: bool, reduction: str = "mean") -> torch.Tensor:
    if binary:
        return F.binary_cross_entropy_with_logits(logits, y, reduction=reduction)
    return F.cross_entropy(logits, y, reduction=reduction)


def _correct(logits: torch.Tensor, y: torch.Tensor, binary: bool) -> torch.Tensor:
    return ((logits > 0) == (y > 0.5)).sum() if binary else (logits.argmax(-1) == y).sum()


class TorchEager:
    """`model.train()`; per batch `zero_grad`, forward, cross-entropy from logits, `backward`, `Adam.step`."""

    def __init__(self, workload: Any, arrays: tuple[np.ndarray, ...], seed: int = 0) -> None:
        torch.manual_seed(seed)
        self.batch = workload.batch_size
        self.binary = workload.binary
        x, y, x_test, y_test = arrays
        self.x, self.y = _tensors(x, y, workload)
        self.x_test, self.y_test = _tensors(x_test, y_test, workload)
        self.model = build_model(workload).to(DEVICE)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-3, eps=1e-7)
        self.generator = torch.Generator().manual_seed(seed + 1)

    def train(self, epochs: int) -> float:
        self.model.train()
        n = len(self.x)
        for _ in range(epochs):
            perm = torch.randperm(n, generator=self.generator).to(DEVICE)
            total = torch.zeros((), device=DEVICE)
            for s in range(0, n, self.batch):
                idx = perm[s:s + self.batch]
                xb, yb = self.x[idx], self.y[idx]
                self.optimizer.zero_grad(set_to_none=True)
                loss = _loss(self.model(xb), yb, self.binary)
                loss.backward()
                self.optimizer.step()
                total += loss.detach() * len(idx)
        return float(total) / n

    @torch.no_grad()
    def evaluate(self, repeats: int = 1) -> tuple[float, float]:
        self.model.eval()
        n = len(self.x_test)
        for _ in range(repeats):
            loss_sum = torch.zeros((), device=DEVICE)
            correct = torch.zeros((), dtype=torch.long, device=DEVICE)
            for s in range(0, n, self.batch):
                xb, yb = self.x_test[s:s + self.batch], self.y_test[s:s + self.batch]
                logits = self.model(xb)
                loss_sum += _loss(logits, yb, self.binary, reduction="sum")
                correct += _correct(logits, yb, self.binary)
        return float(loss_sum) / n, float(correct) / n

    def info(self) -> dict:
        info = {"torch_version": torch.__version__, "torch_threads": torch.get_num_threads(), "torch_device": "cpu"}
        if DEVICE.type == "cuda":  # the worker's device-memory figure reads JAX's allocator, not PyTorch's
            info.update(torch_device=torch.cuda.get_device_name(),
                        torch_cuda_peak_mb=torch.cuda.max_memory_allocated() / 2**20)
        return info
