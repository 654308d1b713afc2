"""ES-MoE's causal-guided emotion decoupling block (CGED): the "emotion-highlighted input" its key gate
routes on, and the emotion classifier whose loss shapes it.

The paper approximates the front-door adjustment P(Y | do(X)) with two attention reads of the input's
token features X (the frozen base model's hidden states of a request):
- self-sampling  s_x = softmax(Q_m K_m^T) V_m: queries f(X) over keys and values of X itself, which
  picks out the request's own emotion cues but stays open to its confounders (shallow motion semantics);
- cross-sampling s_m = softmax(Q_c K_g^T) V_g: queries g(X) over a global dictionary compressed from
  the training set (initialised by K-means), which reads what requests of every scenario share;
then fuses them, h = W (FFN1(s_x) ⊕ FFN2(s_m)) + b, and pools h over the request's tokens. An emotion
classifier on the pooled h gives the loss L_emo that the trainer adds with weight lambda.

The block lives in the runtime package because the gate needs h for every request on the robot; how it
is trained (K-means initialisation, L_emo) belongs to `training/`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

WEIGHTS_FILE = "emotion_decoupling.safetensors"


@dataclass(frozen=True)
class DecouplingConfig:
    features: int  # width of the input token features (the backbone's hidden size)
    hidden: int = 64  # width of queries, keys, values and the FFNs
    dictionary: int = 32  # entries of the global dictionary (K-means centroids)
    emotions: int = 7  # classes of the emotion classifier

    def __post_init__(self) -> None:
        if min(self.features, self.hidden, self.dictionary, self.emotions) < 1:
            raise ValueError(f"every size must be at least 1, got {self}")


def _ffn(width: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Linear(width, width))


class EmotionDecoupling(nn.Module):
    """(B, T, features) token features and their (B, T) mask -> pooled emotion-highlighted input h
    (B, features) and emotion logits (B, emotions)."""

    def __init__(self, config: DecouplingConfig, dictionary: torch.Tensor | None = None) -> None:
        super().__init__()
        self.config = config
        d, w = config.features, config.hidden
        entries = dictionary if dictionary is not None else torch.randn(config.dictionary, d) * 0.02
        if tuple(entries.shape) != (config.dictionary, d):
            raise ValueError(f"dictionary must be ({config.dictionary}, {d}), got {tuple(entries.shape)}")
        self.dictionary = nn.Parameter(entries.detach().clone().float())
        self.f, self.g = nn.Linear(d, w), nn.Linear(d, w)  # query networks of self- and cross-sampling
        self.key_m, self.value_m = nn.Linear(d, w), nn.Linear(d, w)  # from the input itself
        self.key_g, self.value_g = nn.Linear(d, w), nn.Linear(d, w)  # from the global dictionary
        self.ffn_self, self.ffn_cross = _ffn(w), _ffn(w)
        self.fuse = nn.Linear(2 * w, d)  # W, b
        self.classifier = nn.Sequential(nn.Linear(d, w), nn.ReLU(), nn.Linear(w, config.emotions))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        keep = mask.bool()
        scale = self.config.hidden**-0.5
        scores = self.f(x) @ self.key_m(x).transpose(1, 2) * scale  # (B, T, T)
        scores = scores.masked_fill(~keep[:, None, :], torch.finfo(scores.dtype).min)
        s_x = torch.softmax(scores, dim=-1) @ self.value_m(x)
        s_m = torch.softmax(self.g(x) @ self.key_g(self.dictionary).T * scale, dim=-1) @ self.value_g(self.dictionary)
        h = self.fuse(torch.cat([self.ffn_self(s_x), self.ffn_cross(s_m)], dim=-1))
        weights = keep.unsqueeze(-1).to(h.dtype)
        pooled = (h * weights).sum(1) / weights.sum(1).clamp(min=1.0)
        return pooled, self.classifier(pooled)

    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / WEIGHTS_FILE
        state = {k: v.detach().contiguous() for k, v in self.state_dict().items()}
        save_file(state, path, metadata={"config": json.dumps(asdict(self.config))})
        return path

    @classmethod
    def load(cls, folder: str | Path) -> EmotionDecoupling:
        """Sizes from the file's metadata; no pickle."""
        from safetensors import safe_open

        path = Path(folder) / WEIGHTS_FILE
        with safe_open(str(path), framework="pt") as handle:
            config = DecouplingConfig(**json.loads(handle.metadata()["config"]))
        block = cls(config)
        block.load_state_dict(load_file(str(path)))
        return block.eval()
