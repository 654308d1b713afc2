"""Training an expert's autoencoder router (O-LoRA-MoE) on the inputs of its task.

The inputs are the prompts the expert will serve, in both directions: each caption as a T2M prompt and
each motion as an M2T prompt, embedded by `motion_agent.routing.prompt_features` on the frozen base.
The acceptance threshold mu + k sigma comes from reconstruction losses on calibration inputs the
autoencoder did not fit (the task's validation split when it has one), so that held-out inputs of the
task are not rejected merely for being unseen.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from motion_agent.language_model import MotionLanguageModel, m2t_prompt, t2m_prompt
from motion_agent.routing import Autoencoder, ExpertAutoencoder, prompt_features
from training.base_training import Example


@dataclass(frozen=True)
class AutoencoderSettings:
    hidden: int = 64
    bottleneck: int = 8
    steps: int = 600
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 1e-4
    noise: float = 0.1  # std of input noise (denoising): smooths the loss surface between training inputs
    sigmas: float = 2.0  # threshold = mean + sigmas * std of the calibration losses
    min_std: float = 1e-3  # floor of the feature standard deviation
    seed: int = 0

    def __post_init__(self) -> None:
        if min(self.hidden, self.bottleneck, self.steps, self.batch_size) < 1 or self.lr <= 0:
            raise ValueError("hidden, bottleneck, steps, batch_size and lr must be positive")


def router_prompts(lm: MotionLanguageModel, examples: list[Example]) -> list[str]:
    """Every prompt an expert for these examples serves: all captions (T2M) and all motions (M2T)."""
    prompts = [t2m_prompt(caption) for example in examples for caption in example.captions]
    return prompts + [m2t_prompt(lm.vocabulary, example.codes) for example in examples]


def fit_autoencoder(features: np.ndarray, settings: AutoencoderSettings = AutoencoderSettings(),
                    calibration: np.ndarray | None = None) -> ExpertAutoencoder:
    """Fit an autoencoder to one expert's features; the threshold comes from `calibration` (else the
    training features themselves, as the paper does)."""
    features = np.asarray(features, np.float32)
    if len(features) < 2:
        raise ValueError(f"an autoencoder router needs at least 2 training inputs, got {len(features)}")
    mean, std = features.mean(axis=0), np.maximum(features.std(axis=0), settings.min_std)
    x = torch.as_tensor((features - mean) / std)
    generator = torch.Generator().manual_seed(settings.seed)
    torch.manual_seed(settings.seed)
    net = Autoencoder(x.shape[1], settings.hidden, settings.bottleneck)
    optimizer = torch.optim.AdamW(net.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    for _ in range(settings.steps):
        batch = x[torch.randint(len(x), (min(settings.batch_size, len(x)),), generator=generator)]
        noisy = batch + settings.noise * torch.randn(batch.shape, generator=generator)
        loss = ((net(noisy) - batch) ** 2).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    router = ExpertAutoencoder(net, mean, std, 0.0, 0.0, settings.sigmas)
    losses = router.loss(features if calibration is None or len(calibration) < 2 else calibration)
    router.loss_mean, router.loss_std = float(losses.mean()), float(losses.std())
    return router


def train_router(lm: MotionLanguageModel, train: list[Example], calibration: list[Example] | None = None,
                 settings: AutoencoderSettings = AutoencoderSettings()) -> ExpertAutoencoder:
    """The autoencoder router of an expert trained on `train` (the examples of its task)."""
    features = prompt_features(lm, router_prompts(lm, train))
    held = prompt_features(lm, router_prompts(lm, calibration)) if calibration else None
    return fit_autoencoder(features, settings, held)
