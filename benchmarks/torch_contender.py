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


def build_model(workload: str) -> nn.Module:
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


def _tensors(x: np.ndarray, y: np.ndarray, cnn: bool) -> tuple[torch.Tensor, torch.Tensor]:
    xt = torch.from_numpy(np.ascontiguousarray(x, np.float32))
    if cnn:  # NHWC (the prepared arrays) -> NCHW, PyTorch's layout
        xt = xt.permute(0, 3, 1, 2).contiguous()
    return xt.to(DEVICE), torch.from_numpy(np.asarray(y).argmax(-1)).long().to(DEVICE)


class TorchEager:
    """`model.train()`; per batch `zero_grad`, forward, `F.cross_entropy`, `backward`, `Adam.step`."""

    def __init__(self, workload: Any, arrays: tuple[np.ndarray, ...], seed: int = 0) -> None:
        torch.manual_seed(seed)
        self.batch = workload.batch_size
        cnn = workload.name == "cnn"
        x, y, x_test, y_test = arrays
        self.x, self.y = _tensors(x, y, cnn)
        self.x_test, self.y_test = _tensors(x_test, y_test, cnn)
        self.model = build_model(workload.name).to(DEVICE)
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
                loss = F.cross_entropy(self.model(xb), yb)
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
                loss_sum += F.cross_entropy(logits, yb, reduction="sum")
                correct += (logits.argmax(-1) == yb).sum()
        return float(loss_sum) / n, float(correct) / n

    def info(self) -> dict:
        info = {"torch_version": torch.__version__, "torch_threads": torch.get_num_threads(), "torch_device": "cpu"}
        if DEVICE.type == "cuda":  # the worker's device-memory figure reads JAX's allocator, not PyTorch's
            info.update(torch_device=torch.cuda.get_device_name(),
                        torch_cuda_peak_mb=torch.cuda.max_memory_allocated() / 2**20)
        return info
