"""Optimizers (adam, adamw, sgd, novograd) and learning-rate schedules (WarmupAnnealing, CosineAnnealing, none)."""

from __future__ import annotations

import math

import torch


def build_optimizer(params, spec) -> torch.optim.Optimizer:
    """``spec`` is an ``OptimSpec``; weight decay skips biases and LayerNorm weights, as BERT does."""
    decay, no_decay = [], []
    for name, p in params:
        if not p.requires_grad:
            continue
        (no_decay if p.ndim < 2 else decay).append(p)
    groups = [{"params": decay, "weight_decay": spec.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    # the fused kernel: one pass over each tensor instead of several (measured on 2 CPU cores, 22M params:
    # 18 ms a step against 74 ms for the default foreach implementation); same update rule
    fused = {"fused": True} if all(p.device.type in ("cpu", "cuda") and p.is_floating_point()
                                   for g in groups for p in g["params"]) else {}
    if spec.name == "adamw":
        return torch.optim.AdamW(groups, lr=spec.lr, betas=tuple(spec.betas), **fused)
    if spec.name == "adam":
        return torch.optim.Adam(groups, lr=spec.lr, betas=tuple(spec.betas), **fused)
    if spec.name == "novograd":
        return Novograd(groups, lr=spec.lr, betas=tuple(spec.betas))
    return torch.optim.SGD(groups, lr=spec.lr, momentum=spec.momentum)


class Novograd(torch.optim.Optimizer):
    """NovoGrad (Ginsburg et al. 2019), NeMo's optimizer for its convolutional ASR models.

    Adam with a second moment per layer (a scalar: the running mean of the squared gradient norm) instead
    of per weight: the gradient is divided by its layer's norm, weight decay is added to the normalised
    gradient, and momentum accumulates the result. The first step seeds the moment with the norm itself.
    Same update rule as NeMo's ``Novograd`` without ``grad_averaging`` and ``amsgrad`` (their defaults);
    its ASR recipes use betas (0.8, 0.5) and weight decay 0.001.
    """

    def __init__(self, params, lr: float = 1e-3, betas=(0.95, 0.98), eps: float = 1e-8, weight_decay: float = 0.0):
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            beta1, beta2 = group["betas"]
            grads = [p.grad for p in params]
            norms = torch.stack(torch._foreach_norm(grads)).pow(2)
            for p, norm in zip(params, norms):
                state = self.state[p]
                if not state:  # the first step: the moment is the squared norm itself
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = norm.clone()
                else:
                    state["exp_avg_sq"].mul_(beta2).add_(norm, alpha=1 - beta2)
            denominators = [self.state[p]["exp_avg_sq"].sqrt().add_(group["eps"]) for p in params]
            updates = torch._foreach_div(grads, denominators)
            if group["weight_decay"]:
                torch._foreach_add_(updates, params, alpha=group["weight_decay"])
            exp_avgs = [self.state[p]["exp_avg"] for p in params]
            torch._foreach_mul_(exp_avgs, beta1)
            torch._foreach_add_(exp_avgs, updates)
            torch._foreach_add_(params, exp_avgs, alpha=-group["lr"])
        return loss


def build_scheduler(optimizer, sched, total_steps: int):
    """A per-step LambdaLR for the schedule, or None for ``name: none``."""
    if sched.name == "none":
        return None
    total_steps = max(1, total_steps)
    warmup = sched.warmup_steps if sched.warmup_steps is not None else int(sched.warmup_ratio * total_steps)
    base_lrs = [g["lr"] for g in optimizer.param_groups]
    floor = [sched.min_lr / lr if lr else 0.0 for lr in base_lrs]

    def factor(step: int, group: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        shape = 1.0 - progress if sched.name == "WarmupAnnealing" else 0.5 * (1.0 + math.cos(math.pi * progress))
        return floor[group] + (1.0 - floor[group]) * shape

    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, [lambda s, g=g: factor(s, g) for g in range(len(base_lrs))])
