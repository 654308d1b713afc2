"""The loss terms of the continual methods, each a plain function of tensors so it can be tested alone.

Positions: a causal LM's logits at position t predict token t + 1, and only target tokens (labels other
than IGNORE: the motion tokens of a T2M answer, the caption of an M2T answer) carry a loss, as in the
base stage.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from training.base.train import IGNORE


def target_logits(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, V) logits that predict the N target tokens of a batch, and those (N,) tokens."""
    shifted, targets = logits[:, :-1], labels[:, 1:]
    keep = targets != IGNORE
    return shifted[keep], targets[keep]


def token_loss_sum(logits: torch.Tensor, labels: torch.Tensor) -> tuple[float, int]:
    """Summed cross-entropy over the target tokens and their count (for token-weighted means)."""
    predicted, targets = target_logits(logits, labels)
    return float(F.cross_entropy(predicted.float(), targets, reduction="sum")), int(targets.numel())


def distillation_loss(
    student: torch.Tensor, teacher: torch.Tensor, labels: torch.Tensor, temperature: float
) -> torch.Tensor:
    """LwF: KL(teacher || student) of the temperature-softened distributions at the target positions,
    times T^2 so that its gradient scale does not shrink with the temperature (Hinton et al. 2015)."""
    s, _ = target_logits(student, labels)
    t, _ = target_logits(teacher, labels)
    log_s = F.log_softmax(s.float() / temperature, dim=-1)
    log_t = F.log_softmax(t.float() / temperature, dim=-1)
    return F.kl_div(log_s, log_t, log_target=True, reduction="batchmean") * temperature**2


def orthogonality_loss(new: list[torch.Tensor], old: list[list[torch.Tensor]]) -> torch.Tensor:
    """O-LoRA: sum over earlier adapters and layers of sum |A_old A_new^T|, each A (r, in_features).
    Zero when every new row is orthogonal to every old row, so the new task writes into a subspace the
    earlier ones do not read."""
    total = new[0].new_zeros(())
    for previous in old:
        if len(previous) != len(new):
            raise ValueError(f"an earlier adapter has {len(previous)} LoRA layers, the new one {len(new)}")
        for a_old, a_new in zip(previous, new):
            total = total + (a_old.detach() @ a_new.T).abs().sum()
    return total


def l2_loss(parameters: list[torch.Tensor]) -> torch.Tensor:
    """O-LoRA's lambda2 term: the sum of the L2 norms of the new adapter's weight matrices."""
    return torch.stack([p.norm(p=2) for p in parameters]).sum()
