"""Adam with PyTorch's update formula, on numpy float32 arrays.

PaC's bound gradients are mostly 1e-13..1e-7, at or below ε = 1e-8, so where ε enters decides the
step. PyTorch adds ε to the bias-corrected ``sqrt(v̂)``; MindSpore's ``nn.Adam`` folds the bias
correction into the learning rate, which amounts to ε / sqrt(1 − β₂ᵗ) (31.6 ε at step 1). This
class follows PyTorch operation by operation, in float32.
"""
import math

import numpy as np


class TorchAdam:
    """``m ← m + (1−β₁)(g − m)``; ``v ← β₂v + (1−β₂)g²``;
    ``p ← p − lr/(1−β₁ᵗ) · m / (sqrt(v)/sqrt(1−β₂ᵗ) + ε)`` (no weight decay, no amsgrad)."""

    def __init__(self, shapes, betas=(0.9, 0.999), eps=1e-8):
        self.beta1, self.beta2 = betas
        self.eps = eps
        self.step_count = 0
        self.m = [np.zeros(s, np.float32) for s in shapes]
        self.v = [np.zeros(s, np.float32) for s in shapes]

    def step(self, params, grads, lr):
        """Return the updated copies of ``params`` (float32 arrays) given their ``grads``; ``lr`` is one
        learning rate, or one per parameter (a float or an array broadcasting over it)."""
        self.step_count += 1
        bias1 = 1 - self.beta1 ** self.step_count
        bias2_sqrt = math.sqrt(1 - self.beta2 ** self.step_count)
        lrs = lr if isinstance(lr, (list, tuple)) else [lr] * len(params)
        out = []
        for p, g, m, v, lr in zip(params, grads, self.m, self.v, lrs):
            g = np.asarray(g, np.float32)
            m += np.float32(1 - self.beta1) * (g - m)
            v *= np.float32(self.beta2)
            v += np.float32(1 - self.beta2) * g * g
            denom = np.sqrt(v) / np.float32(bias2_sqrt) + np.float32(self.eps)
            out.append((p + (-np.asarray(lr, np.float64) / bias1).astype(np.float32) * m / denom).astype(np.float32))
        return out


def cosine_lr(lr0, lr_min, k, total):
    """Cosine annealing from ``lr0`` (k = 0) towards ``lr_min`` (k = total), as CosineAnnealingLR."""
    return lr_min + (lr0 - lr_min) * (1 + math.cos(math.pi * k / total)) / 2
