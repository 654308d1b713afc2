"""Motion tokenizer: a VQ-VAE that turns HumanML3D features into discrete tokens and back.

The language model reads and writes motion as tokens; the robot decodes its tokens into features.
The network is the 1D-convolutional VQ-VAE of text-to-motion work:

    encoder   conv -> `down_t` x (stride-2 conv, dilated residual blocks) -> conv to `code_dim`
    quantizer nearest code of a `codebook_size` x `code_dim` codebook, trained by exponential moving
              averages (no gradient), dead codes reset to recent encoder outputs so the codebook stays used
    decoder   conv -> `down_t` x (dilated residual blocks, nearest 2x upsampling, conv) -> conv to 263

One token covers `2 ** down_t` frames. Everything here works on *normalised* features
(`motion_agent.motion.features.normalize` with the tokenizer's own `mean` / `std`).

A tokenizer folder holds::

    tokenizer.safetensors   weights and codebook statistics
    tokenizer.yaml          the TokenizerConfig
    mean.npy, std.npy       the normalisation the model was trained with (float32, no pickle)
    decoder.onnx            optional, written by the exporter, run by tokenizer_onnx.OnnxTokenDecoder
    encoder.onnx            optional
    onnx.json               optional: the fingerprint the ONNX files were exported from

Nothing is ever unpickled: weights are safetensors, arrays are read with `allow_pickle=False`, the
config is safe YAML. Runtime code here needs torch or onnxruntime only, never the `onnx` package.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import yaml
from safetensors.torch import load as load_safetensors_bytes
from safetensors.torch import save as save_safetensors_bytes
from torch import nn
from torch.nn import functional as F

from motion_agent.config import load_yaml
from motion_agent.motion.features import FEATURE_DIM

WEIGHTS_FILE = "tokenizer.safetensors"
CONFIG_FILE = "tokenizer.yaml"
MEAN_FILE = "mean.npy"
STD_FILE = "std.npy"
DECODER_ONNX = "decoder.onnx"
ENCODER_ONNX = "encoder.onnx"
ONNX_STAMP = "onnx.json"
FINGERPRINT_DOMAIN = b"motion-agent tokenizer v1\0"  # keeps these hashes apart from any other sha256 use
BACKENDS = ("auto", "torch", "onnx")  # auto: onnx where the folder holds a current export, else torch
TILE_NOISE = 0.01  # relative jitter when too few vectors must be tiled into a codebook, so no two codes coincide
EPS = 1e-12  # keeps divisions and logarithms of zero counts finite


@dataclass(frozen=True)
class TokenizerConfig:
    """Network and codebook sizes. The defaults train on two CPU cores in under an hour; the published
    GPU-sized model is `width=512, code_dim=512, codebook_size=512`."""

    feature_dim: int = FEATURE_DIM
    codebook_size: int = 512
    code_dim: int = 128
    width: int = 128  # channels of every hidden convolution
    down_t: int = 2  # stride-2 stages: one token per 2 ** down_t frames
    depth: int = 3  # residual blocks per stage
    dilation_growth: int = 3  # dilation of residual block i is growth ** i: a wide receptive field cheaply
    ema_decay: float = 0.99  # codebook moving-average decay
    dead_code_threshold: float = 0.25  # a code whose moving-average use per batch falls below this is reset

    def __post_init__(self) -> None:
        for name in ("feature_dim", "codebook_size", "code_dim", "width", "depth", "dilation_growth"):
            if getattr(self, name) < 1:
                raise ValueError(f"TokenizerConfig.{name} must be at least 1, got {getattr(self, name)}")
        if self.down_t < 0:
            raise ValueError(f"TokenizerConfig.down_t must be >= 0, got {self.down_t}")
        if not 0.0 < self.ema_decay < 1.0:
            raise ValueError(f"TokenizerConfig.ema_decay must be in (0, 1), got {self.ema_decay}")
        if self.dead_code_threshold < 0:
            raise ValueError(f"TokenizerConfig.dead_code_threshold must be >= 0, got {self.dead_code_threshold}")

    @property
    def downsampling(self) -> int:
        """Frames per token."""
        return 2**self.down_t

    def canonical_json(self) -> str:
        """The config as sorted, compact JSON: the same bytes however the YAML was formatted."""
        return json.dumps(dataclasses.asdict(self), sort_keys=True, separators=(",", ":"))


class ResidualBlock(nn.Module):
    """Dilated 3-tap convolution then a 1x1 convolution, added to the input (pre-activation)."""

    def __init__(self, width: int, dilation: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(width, width, 3, padding=dilation, dilation=dilation)
        self.mix = nn.Conv1d(width, width, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.mix(F.relu(self.conv(F.relu(x))))


def _residual_stack(config: TokenizerConfig, reverse: bool) -> nn.Sequential:
    dilations = [config.dilation_growth**i for i in range(config.depth)]
    if reverse:  # the decoder undoes the encoder's order: widest context first
        dilations.reverse()
    return nn.Sequential(*(ResidualBlock(config.width, d) for d in dilations))


class Encoder(nn.Module):
    """(B, feature_dim, T) -> (B, code_dim, T // 2 ** down_t)."""

    def __init__(self, config: TokenizerConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv1d(config.feature_dim, config.width, 3, padding=1), nn.ReLU()]
        for _ in range(config.down_t):
            # kernel 4, stride 2, padding 1 gives exactly floor(T / 2) frames
            layers += [nn.Conv1d(config.width, config.width, 4, stride=2, padding=1), _residual_stack(config, False)]
        layers.append(nn.Conv1d(config.width, config.code_dim, 3, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Decoder(nn.Module):
    """(B, code_dim, N) -> (B, feature_dim, N * 2 ** down_t)."""

    def __init__(self, config: TokenizerConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv1d(config.code_dim, config.width, 3, padding=1), nn.ReLU()]
        for _ in range(config.down_t):
            layers += [
                _residual_stack(config, True),
                nn.Upsample(scale_factor=2, mode="nearest"),
                nn.Conv1d(config.width, config.width, 3, padding=1),
            ]
        layers += [
            nn.Conv1d(config.width, config.width, 3, padding=1),
            nn.ReLU(),
            nn.Conv1d(config.width, config.feature_dim, 3, padding=1),
        ]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def _distributed() -> bool:
    """Several training processes share this quantizer (`accelerate` on more than one device)."""
    return (
        torch.distributed.is_available()
        and torch.distributed.is_initialized()
        and torch.distributed.get_world_size() > 1
    )


class EMAQuantizer(nn.Module):
    """Nearest-code quantizer whose codebook follows the moving average of the vectors assigned to each
    code. Codes that fall out of use are reset to encoder outputs of the current batch, because an
    unused code is wasted vocabulary for the language model.

    The codebook and its statistics are buffers, not parameters: the optimiser never touches them.
    Under several processes the statistics are summed over all of them, so every copy stays identical.
    """

    def __init__(self, config: TokenizerConfig) -> None:
        super().__init__()
        self.size = config.codebook_size
        self.dim = config.code_dim
        self.decay = config.ema_decay
        self.threshold = config.dead_code_threshold
        # a code starts just alive: unused, it is reset on the next step, so a run of a few dozen steps
        # already spreads its codes; at threshold 0 (no resets) it counts as one use instead, so that its
        # centroid is never divided by zero
        self.fresh_count = config.dead_code_threshold or 1.0
        self.register_buffer("codebook", torch.zeros(self.size, self.dim))
        self.register_buffer("code_sum", torch.zeros(self.size, self.dim))
        self.register_buffer("code_count", torch.zeros(self.size))
        self.register_buffer("initialized", torch.zeros(()))

    def _random_rows(self, vectors: torch.Tensor, count: int) -> torch.Tensor:
        """`count` rows drawn from `vectors`, tiled with a little noise when there are too few."""
        if len(vectors) < count:
            repeats = (count + len(vectors) - 1) // len(vectors)
            tiled = vectors.repeat(repeats, 1)
            vectors = tiled + torch.randn_like(tiled) * TILE_NOISE * tiled.std().clamp_min(EPS)
        rows = vectors[torch.randperm(len(vectors), device=vectors.device)[:count]]
        if _distributed():
            torch.distributed.broadcast(rows, src=0)
        return rows

    @torch.no_grad()
    def _initialize(self, vectors: torch.Tensor) -> None:
        rows = self._random_rows(vectors, self.size)
        self.codebook.copy_(rows)
        self.code_sum.copy_(rows * self.fresh_count)
        self.code_count.fill_(self.fresh_count)
        self.initialized.fill_(1.0)

    def nearest(self, vectors: torch.Tensor) -> torch.Tensor:
        """(N, code_dim) -> (N,) index of the closest code (squared Euclidean distance)."""
        distance = (
            vectors.pow(2).sum(dim=-1, keepdim=True)
            - 2 * vectors @ self.codebook.t()
            + self.codebook.pow(2).sum(dim=-1)[None, :]
        )
        return distance.argmin(dim=-1)

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """(...) code indices -> (..., code_dim) code vectors."""
        return F.embedding(indices, self.codebook)

    @torch.no_grad()
    def _update(self, vectors: torch.Tensor, indices: torch.Tensor) -> None:
        onehot = F.one_hot(indices, self.size).to(vectors.dtype)
        batch_sum = onehot.t() @ vectors
        batch_count = onehot.sum(dim=0)
        if _distributed():
            torch.distributed.all_reduce(batch_sum)
            torch.distributed.all_reduce(batch_count)
        self.code_sum.mul_(self.decay).add_(batch_sum, alpha=1 - self.decay)
        self.code_count.mul_(self.decay).add_(batch_count, alpha=1 - self.decay)
        alive = self.code_count >= self.threshold
        centroids = self.code_sum / self.code_count.clamp_min(EPS)[:, None]
        fresh = self._random_rows(vectors, self.size)
        self.codebook.copy_(torch.where(alive[:, None], centroids, fresh))
        # a reset code starts its average from its new vector, not from its stale history
        self.code_sum.copy_(torch.where(alive[:, None], self.code_sum, fresh * self.code_count[:, None]))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, code_dim, N) -> quantised (B, code_dim, N) with straight-through gradients,
        commitment loss, indices (B, N), and the batch's code perplexity."""
        batch, _, length = x.shape
        vectors = x.permute(0, 2, 1).reshape(-1, self.dim)
        if self.training and not bool(self.initialized):
            self._initialize(vectors.detach())
        indices = self.nearest(vectors.detach())
        if self.training:
            self._update(vectors.detach(), indices)
        codes = self.lookup(indices)
        commitment = F.mse_loss(vectors, codes.detach())
        quantized = vectors + (codes - vectors).detach()
        counts = torch.bincount(indices, minlength=self.size).to(vectors.dtype)
        probabilities = counts / counts.sum()
        perplexity = torch.exp(-(probabilities * torch.log(probabilities + EPS)).sum())
        quantized = quantized.reshape(batch, length, self.dim).permute(0, 2, 1)
        return quantized, commitment, indices.reshape(batch, length), perplexity


@dataclass
class TokenizerOutput:
    """What one training forward pass gives: reconstruction (B, T', 263), losses, tokens (B, T' / rate)."""

    reconstruction: torch.Tensor
    commitment: torch.Tensor
    perplexity: torch.Tensor
    tokens: torch.Tensor


def _as_stats(values: np.ndarray | None, fill: float, dim: int, what: str) -> np.ndarray:
    if values is None:
        return np.full(dim, fill, dtype=np.float32)
    values = np.asarray(values, dtype=np.float32)
    if values.shape != (dim,):
        raise ValueError(f"{what} must have shape ({dim},), got {values.shape}")
    if not np.isfinite(values).all():
        raise ValueError(f"{what} contains NaN or infinite values")
    return values


def _hash_parts(parts: list[bytes]) -> str:
    digest = hashlib.sha256(FINGERPRINT_DOMAIN)
    for part in parts:  # length-prefixed, so no two different splits give the same stream
        digest.update(len(part).to_bytes(8, "little"))
        digest.update(part)
    return digest.hexdigest()


def _fingerprint(weights: bytes, config: TokenizerConfig, mean: np.ndarray, std: np.ndarray) -> str:
    return _hash_parts(
        [
            weights,
            config.canonical_json().encode(),
            np.ascontiguousarray(mean, dtype="<f4").tobytes(),
            np.ascontiguousarray(std, dtype="<f4").tobytes(),
        ]
    )


def check_tokens(tokens: np.ndarray | torch.Tensor, codebook_size: int) -> None:
    """Refuse anything but a (batch, tokens) integer array of codebook indices, naming what is wrong."""
    if tokens.ndim != 2 or tokens.shape[1] < 1:
        raise ValueError(f"tokens must have shape (batch, tokens) with at least one token, got {tuple(tokens.shape)}")
    if isinstance(tokens, torch.Tensor):
        integer = not tokens.dtype.is_floating_point and not tokens.dtype.is_complex and tokens.dtype != torch.bool
    else:
        integer = np.issubdtype(tokens.dtype, np.integer)
    if not integer:
        raise ValueError(f"tokens must be integers, got {tokens.dtype}")
    low, high = int(tokens.min()), int(tokens.max())
    if low < 0 or high >= codebook_size:
        raise ValueError(f"tokens must lie in [0, {codebook_size}), got {low}..{high}")


def load_stats(folder: Path, config: TokenizerConfig) -> tuple[np.ndarray, np.ndarray]:
    stats = []
    for name in (MEAN_FILE, STD_FILE):
        path = folder / name
        if not path.is_file():
            raise FileNotFoundError(f"tokenizer folder {folder} has no {name}")
        stats.append(_as_stats(np.load(path, allow_pickle=False), 0.0, config.feature_dim, str(path)))
    if (stats[1] <= 0).any():
        raise ValueError(f"{folder / STD_FILE} has non-positive entries")
    return stats[0], stats[1]


def folder_fingerprint(folder: str | Path) -> str:
    """The fingerprint of a saved tokenizer, from its files alone (no model is built)."""
    folder = Path(folder)
    config = load_yaml(TokenizerConfig, folder / CONFIG_FILE)
    mean, std = load_stats(folder, config)
    return _fingerprint((folder / WEIGHTS_FILE).read_bytes(), config, mean, std)


class MotionTokenizer(nn.Module):
    """Encoder, quantizer and decoder, with the feature normalisation they were trained with."""

    def __init__(
        self, config: TokenizerConfig = TokenizerConfig(), mean: np.ndarray | None = None, std: np.ndarray | None = None
    ) -> None:
        super().__init__()
        self.config = config
        self.mean = _as_stats(mean, 0.0, config.feature_dim, "mean")
        self.std = _as_stats(std, 1.0, config.feature_dim, "std")
        if (self.std <= 0).any():
            raise ValueError("std must be positive everywhere")
        self.encoder = Encoder(config)
        self.quantizer = EMAQuantizer(config)
        self.decoder = Decoder(config)

    @property
    def downsampling(self) -> int:
        return self.config.downsampling

    @property
    def device(self) -> torch.device:
        return self.quantizer.codebook.device

    def normalize(self, features: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
        """Raw HumanML3D features -> what the network reads."""
        if isinstance(features, torch.Tensor):
            return (features - torch.as_tensor(self.mean, device=features.device)) / torch.as_tensor(
                self.std, device=features.device
            )
        return (np.asarray(features, dtype=np.float32) - self.mean) / self.std

    def denormalize(self, features: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
        """What the network writes -> raw HumanML3D features."""
        if isinstance(features, torch.Tensor):
            return features * torch.as_tensor(self.std, device=features.device) + torch.as_tensor(
                self.mean, device=features.device
            )
        return np.asarray(features, dtype=np.float32) * self.std + self.mean

    def _check_features(self, features: np.ndarray | torch.Tensor) -> torch.Tensor:
        features = torch.as_tensor(features, dtype=torch.float32, device=self.device)
        if features.ndim != 3 or features.shape[-1] != self.config.feature_dim:
            raise ValueError(
                f"features must have shape (batch, frames, {self.config.feature_dim}), got {tuple(features.shape)}"
            )
        if features.shape[1] < self.downsampling:
            raise ValueError(f"a motion needs at least {self.downsampling} frames, got {features.shape[1]}")
        # whole tokens only: the frames after the last full token are dropped
        return features[:, : features.shape[1] // self.downsampling * self.downsampling]

    def forward(self, features: torch.Tensor) -> TokenizerOutput:
        """Training pass over normalised features (B, T, 263); T is cut to whole tokens."""
        features = self._check_features(features)
        latent = self.encoder(features.transpose(1, 2))
        quantized, commitment, tokens, perplexity = self.quantizer(latent)
        reconstruction = self.decoder(quantized).transpose(1, 2)
        return TokenizerOutput(reconstruction, commitment, perplexity, tokens)

    def encode_features(self, features: torch.Tensor) -> torch.Tensor:
        """Unchecked encoding of (B, T, 263) with T a multiple of the downsampling; the encoder ONNX graph."""
        latent = self.encoder(features.transpose(1, 2))
        vectors = latent.permute(0, 2, 1).reshape(-1, self.config.code_dim)
        return self.quantizer.nearest(vectors).reshape(features.shape[0], -1)

    @torch.no_grad()
    def encode(self, features: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Normalised features (B, T, 263) -> tokens, LongTensor (B, T // downsampling)."""
        return self.encode_features(self._check_features(features))

    @torch.no_grad()
    def motion_codes(self, features: np.ndarray) -> np.ndarray:
        """Raw (not normalised) (T, 263) features -> the codes of their whole tokens, (T // downsampling,).
        The one way a single motion becomes language-model tokens, in training and on the robot."""
        usable = len(features) // self.downsampling * self.downsampling
        return self.encode(self.normalize(np.asarray(features[:usable], dtype=np.float32))[None])[0].cpu().numpy()

    def _as_tokens(self, tokens: np.ndarray | torch.Tensor) -> torch.Tensor:
        tokens = torch.as_tensor(tokens, device=self.device)
        check_tokens(tokens, self.config.codebook_size)
        return tokens.long()

    def decode_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """Unchecked, differentiable decoding of LongTensor tokens (B, N); the decoder ONNX graph."""
        codes = self.quantizer.lookup(tokens).transpose(1, 2)
        return self.decoder(codes).transpose(1, 2)

    @torch.no_grad()
    def decode(self, tokens: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Tokens (B, N) -> normalised features (B, N * downsampling, 263), float32 tensor."""
        return self.decode_tokens(self._as_tokens(tokens))

    def weights_bytes(self) -> bytes:
        """The safetensors file of the weights and codebook statistics, exactly as `save` writes it."""
        state = {name: tensor.detach().cpu().contiguous() for name, tensor in self.state_dict().items()}
        return save_safetensors_bytes(state)

    def fingerprint(self) -> str:
        """sha256 hex over the weights file, the config and the normalisation: expert bundles name the
        tokenizer they were trained against with it, so a robot never runs an expert on other tokens."""
        return _fingerprint(self.weights_bytes(), self.config, self.mean, self.std)

    def save(self, folder: str | Path) -> Path:
        """Write the tokenizer folder (weights, config, mean, std); returns the folder."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / WEIGHTS_FILE).write_bytes(self.weights_bytes())
        (folder / CONFIG_FILE).write_text(yaml.safe_dump(dataclasses.asdict(self.config), sort_keys=False))
        np.save(folder / MEAN_FILE, self.mean, allow_pickle=False)
        np.save(folder / STD_FILE, self.std, allow_pickle=False)
        return folder

    @classmethod
    def load(cls, folder: str | Path, device: str | torch.device = "cpu") -> MotionTokenizer:
        """Read a tokenizer folder (no pickle anywhere); the model comes back in eval mode."""
        folder = Path(folder)
        config = load_yaml(TokenizerConfig, folder / CONFIG_FILE)
        mean, std = load_stats(folder, config)
        weights = folder / WEIGHTS_FILE
        if not weights.is_file():
            raise FileNotFoundError(f"tokenizer folder {folder} has no {WEIGHTS_FILE}")
        model = cls(config, mean, std)
        model.load_state_dict(load_safetensors_bytes(weights.read_bytes()), strict=True)
        if not bool(model.quantizer.initialized):
            raise ValueError(f"{weights} holds an untrained codebook")
        return model.to(device).eval()
