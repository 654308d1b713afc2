"""Settings of a continual run, read from `config/training/continual.yaml` into frozen dataclasses.

Every method of a benchmark runs under the same settings (same data, step budget, LoRA size and
evaluation), so that their figures compare; only the method-specific sections (`lwf`, `o_lora`, `router`) differ
in what they mean. The per-task run settings are the base stage's `BaseRunConfig` (its `steps` is the
budget of ONE task), so batches, learning-rate schedule and held-out batches follow one definition.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from motion_agent.config import config_dir, load_yaml
from training.base.train import BaseRunConfig, LoraSettings
from training.continual.router_training import AutoencoderSettings
from training.evaluation.lm_eval import EvalSettings


@dataclass(frozen=True)
class LwfSettings:
    """Learning without Forgetting: KL to the previous adapter's softened outputs on the new data."""

    temperature: float = 2.0
    weight: float = 1.0

    def __post_init__(self) -> None:
        if self.temperature <= 0 or self.weight < 0:
            raise ValueError(f"temperature must be > 0 and weight >= 0, got {self.temperature}, {self.weight}")


@dataclass(frozen=True)
class OLoraSettings:
    """O-LoRA: lambda1 * sum |A_old A_new^T| + lambda2 * ||new LoRA||_2 next to the task loss."""

    lambda1: float = 0.5
    lambda2: float = 0.0

    def __post_init__(self) -> None:
        if self.lambda1 < 0 or self.lambda2 < 0:
            raise ValueError(f"lambda1 and lambda2 must be >= 0, got {self.lambda1}, {self.lambda2}")


@dataclass(frozen=True)
class RouterSettings:
    """Routed methods (moe-hard, epi): how each task's router is fitted when the task ends."""

    autoencoder: AutoencoderSettings = field(default_factory=AutoencoderSettings)  # moe-hard
    shrinkage: float = 0.1  # epi: shrinkage of the shared covariance towards its mean variance
    sigmas: float = 2.0  # epi: an expert rejects inputs beyond mean + sigmas * std of its own distances
    temperature: float = 0.1  # moe-soft: blend weights softmax(-loss / T) over the autoencoders' losses

    def __post_init__(self) -> None:
        if self.temperature <= 0:
            raise ValueError(f"temperature must be positive, got {self.temperature}")
        if not 0 <= self.shrinkage <= 1 or self.sigmas <= 0:
            raise ValueError(f"shrinkage must be in [0, 1] and sigmas > 0, got {self.shrinkage}, {self.sigmas}")


@dataclass(frozen=True)
class EsMoeSettings:
    """es-moe (ES-MoE): the emotion decoupling block and the key gate over the experts."""

    dictionary: int = 32  # global dictionary entries, K-means centroids of the first task's prompt tokens
    hidden: int = 64  # width inside the decoupling block
    gate_rank: int = 16  # the gate's down projection
    key_dim: int = 64  # expert keys (at most this many experts)
    top_k: int = 2  # experts blended per request
    mask_probability: float = 0.5  # in training, each earlier expert is hidden from the gate this often
    emotion_weight: float = 0.1  # lambda of the emotion classification loss
    kmeans_tokens: int = 4096  # prompt tokens sampled for the K-means dictionary
    seed: int = 0

    def __post_init__(self) -> None:
        if min(self.dictionary, self.hidden, self.gate_rank, self.key_dim, self.top_k, self.kmeans_tokens) < 1:
            raise ValueError(f"sizes must be at least 1: {self}")
        if not 0 <= self.mask_probability < 1 or self.emotion_weight < 0:
            raise ValueError(
                f"mask_probability must be in [0, 1) and emotion_weight >= 0, got "
                f"{self.mask_probability}, {self.emotion_weight}"
            )


@dataclass(frozen=True)
class ContinualEvalSettings:
    """How every task is scored after every training step (T2M, M2T and held-out loss)."""

    clips_per_task: int = 64  # test clips scored per task (the first ones of its test split); 0 = all
    batch_size: int = 16  # M2T captioning and held-out loss batches
    mm_captions: int = 4  # captions generated several times for MultiModality
    mm_repeats: int = 2
    r_precision_seeds: int = 5  # R-Precision averaged over this many pool shuffles
    seed: int = 0

    def __post_init__(self) -> None:
        if self.clips_per_task < 0 or self.batch_size < 1 or self.mm_captions < 1 or self.r_precision_seeds < 1:
            raise ValueError("clips_per_task must be >= 0; batch_size, mm_captions, r_precision_seeds >= 1")
        if self.mm_repeats < 2:
            raise ValueError(f"mm_repeats must be at least 2 (MultiModality compares repeats), got {self.mm_repeats}")

    def lm_eval(self) -> EvalSettings:
        return EvalSettings(
            seed=self.seed,
            batch_size=self.batch_size,
            mm_captions=self.mm_captions,
            mm_repeats=self.mm_repeats,
            r_precision_seeds=self.r_precision_seeds,
        )


@dataclass(frozen=True)
class OrderSettings:
    """Task orders a benchmark averages over: the stream's own order, then seeded permutations. With
    `tasks` > 0 only the first `tasks` of the stream are trained; the rest are scenarios held out of
    training, on which the routers' "unknown" detection is scored after every task."""

    count: int = 3
    seed: int = 0
    tasks: int = 5  # 0: every task of the stream

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ValueError(f"count must be at least 1, got {self.count}")
        if self.tasks < 0 or self.tasks == 1:
            raise ValueError(f"tasks must be 0 (all) or at least 2, got {self.tasks}")


@dataclass(frozen=True)
class ContinualConfig:
    """The whole YAML file; the defaults are the shipped file's values."""

    lora: LoraSettings = field(default_factory=lambda: LoraSettings(r=8, alpha=16))
    training: BaseRunConfig = field(
        default_factory=lambda: BaseRunConfig(steps=200, batch_size=8, lr=2e-3, warmup_steps=20)
    )
    lwf: LwfSettings = field(default_factory=LwfSettings)
    o_lora: OLoraSettings = field(default_factory=OLoraSettings)
    router: RouterSettings = field(default_factory=RouterSettings)
    es_moe: EsMoeSettings = field(default_factory=EsMoeSettings)
    evaluation: ContinualEvalSettings = field(default_factory=ContinualEvalSettings)
    orders: OrderSettings = field(default_factory=OrderSettings)
    methods: tuple[str, ...] = (
        "mtl",
        "seq-lora",
        "lwf-lora",
        "o-lora",
        "moe-hard",
        "moe-soft",
        "epi",
        "es-moe",
    )  # what `benchmark` runs by default


def default_config_path() -> Path:
    return config_dir() / "training" / "continual.yaml"


def load_continual_config(path: str | Path | None = None) -> ContinualConfig:
    """The YAML file (default: the embedded one); unknown keys and wrong types are refused, naming the key."""
    return load_yaml(ContinualConfig, path or default_config_path())
