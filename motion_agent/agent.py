"""MotionAgent: request -> route -> generate -> decode -> retarget, and pose window -> caption.

Everything a node does that is not ROS lives here, so it runs and is tested without rclpy and the
nodes stay thin adapters. Inputs are checked before any model runs: a bad request raises RequestError
naming what is wrong, which the node turns into an error diagnostic instead of dying.

Experts come from an expert store (motion_agent.bundles.store, filled by `motion-agent-bundle install`
or the node's bundle inbox). Each request is routed by the experts' autoencoder routers to one expert,
or to none ("unknown"), in which case the configured fallback serves it with the base model or refuses
it. `reload_experts` brings the served set in line with the store while requests keep coming: files are
read before the expert lock is taken, and a request runs wholly on the old set or wholly on the new.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from motion_agent.bundles.store import ExpertStore, InstallResult
from motion_agent.bundles.trust import TrustPolicy
from motion_agent.config import load_yaml
from motion_agent.experts.expert_set import ExpertError, ExpertSet
from motion_agent.experts.onnx_expert_set import OnnxExpertSet
from motion_agent.experts.onnx_trunk import FEATURES_BACKENDS, OnnxPromptFeatures
from motion_agent.experts.prompt_features import prompt_features
from motion_agent.experts.routing import (
    UNKNOWN,
    AutoencoderRouter,
    Decision,
    ExpertRouter,
    RouterError,
    softmax_weights,
)
from motion_agent.model.base_model import BaseModelSpec, load_base_model, tokenizer_folder
from motion_agent.model.language_model import (
    Direction,
    GenerationConfig,
    MotionLanguageModel,
    m2t_prompt,
    t2m_prompt,
    without_duration,
)
from motion_agent.model.onnx_language_model import LanguageModelRuntime, OnnxLanguageModel
from motion_agent.model.tokenizer import BACKENDS as DECODER_BACKENDS
from motion_agent.model.tokenizer import MotionTokenizer
from motion_agent.model.tokenizer_onnx import load_decoder
from motion_agent.motion.features import FeatureConfig, joints_to_features, recover_joints
from motion_agent.motion.retarget import Retargeter, Trajectory
from motion_agent.motion.robots.config import MODES as ROBOT_MODES
from motion_agent.motion.robots.loader import load_retargeter
from motion_agent.motion.skeleton import NUM_JOINTS
from motion_agent.streaming import StreamConfig, keep_sent, stream_frames


class RequestError(ValueError):
    """A request the agent refuses (empty, oversized, undecodable text; malformed poses)."""


FALLBACKS = ("base", "refuse")
RELOAD_ATTEMPTS, RELOAD_RETRY_S = 3, 0.2  # a store changed while reloading: read it again


@dataclass(frozen=True)
class RoutingConfig:
    """How requests find an expert (section `agent.routing`)."""

    experts: str = ""  # expert-store folder (motion-agent-bundle install --store); empty: base model only
    unknown: str = "base"  # when no expert accepts a request: "base" serves it with the base model, "refuse" drops it
    mode: str = "hard"  # "hard": the winning expert alone; "soft": every expert blended by softmax(-loss / T)
    temperature: float = 0.1  # of the soft blend (as the continual trainer's moe-soft)
    merged: bool = True  # hard routing runs the expert merged into a copy of its layers (experts.ExpertSet.serving)
    features: str = "onnx"  # the routers' feature trunk: "onnx" (exported when first routing) or "torch"

    def __post_init__(self) -> None:
        if self.unknown not in FALLBACKS:
            raise ValueError(f"routing.unknown must be one of {', '.join(FALLBACKS)}, got {self.unknown!r}")
        if self.mode not in ("hard", "soft"):
            raise ValueError(f"routing.mode must be 'hard' or 'soft', got {self.mode!r}")
        if self.temperature <= 0:
            raise ValueError(f"routing.temperature must be positive, got {self.temperature}")
        if self.features not in FEATURES_BACKENDS:
            raise ValueError(f"routing.features must be one of {', '.join(FEATURES_BACKENDS)}, got {self.features!r}")


@dataclass(frozen=True)
class AgentConfig:
    """The `agent` section of config/agent.yaml."""

    base_model: str = ""  # base-model folder (from `motion-agent-train base`)
    decoder_backend: str = "auto"  # tokenizer.BACKENDS: onnx (onnxruntime) where the base's tokenizer has a current
    # export, else torch; or either by name
    robot: str = "smpl_avatar"  # a shipped robot (config/robots: a map, or a real one such as unitree_g1) or a path
    robot_mode: str = ""  # real robots: whole_body, or upper_body (arms, waist, head + cmd_vel); empty: the robot's
    max_text_chars: int = 400
    min_caption_frames: int = 24  # shortest pose window worth captioning (1.2 s at 20 fps)
    max_caption_frames: int = 196
    seed: int = 0
    routing: RoutingConfig = field(default_factory=RoutingConfig)
    language_model: LanguageModelRuntime = field(default_factory=LanguageModelRuntime)
    stream: StreamConfig = field(default_factory=StreamConfig)
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    features: FeatureConfig = field(default_factory=FeatureConfig)

    def __post_init__(self) -> None:
        if self.decoder_backend not in DECODER_BACKENDS:
            choices = ", ".join(DECODER_BACKENDS)
            raise ValueError(f"decoder_backend must be one of {choices}, got {self.decoder_backend!r}")
        if self.robot_mode not in ("", *ROBOT_MODES):
            raise ValueError(f"robot_mode must be empty or one of {', '.join(ROBOT_MODES)}, got {self.robot_mode!r}")
        if not 2 <= self.min_caption_frames <= self.max_caption_frames:
            raise ValueError("need 2 <= min_caption_frames <= max_caption_frames")


def load_agent_config(path: str | Path) -> AgentConfig:
    return load_yaml(AgentConfig, path, section="agent")


@dataclass
class MotionResult:
    text: str
    codes: np.ndarray  # motion tokens
    joints: np.ndarray  # (T, 22, 3) metres, 20 fps
    trajectory: Trajectory  # the robot's joint trajectory
    expert: str  # the expert that generated it; "unknown" (served by the base) or "base" (no experts)
    timings_ms: dict[str, float]
    router_scores: dict[str, float] = field(default_factory=dict)  # per expert: reconstruction loss
    first_chunk_ms: float | None = None  # streamed: from routing's end to the first chunk handed over

    @property
    def seconds(self) -> float:
        return len(self.joints) / 20.0


@dataclass(frozen=True)
class MotionChunk:
    """The motion committed so far while a request streams (each chunk holds every earlier frame)."""

    joints: np.ndarray  # (F, 22, 3) metres, 20 fps
    trajectory: Trajectory  # the robot's, of those frames
    final: bool  # the whole motion: no chunk follows


@dataclass
class CaptionResult:
    caption: str
    frames: int
    expert: str
    timings_ms: dict[str, float]
    router_scores: dict[str, float] = field(default_factory=dict)


def check_text(text: object, max_chars: int) -> str:
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as error:
            raise RequestError(f"request is not UTF-8 text: {error}") from error
    if not isinstance(text, str):
        raise RequestError(f"request must be text, got {type(text).__name__}")
    text = " ".join(text.split())
    if not text:
        raise RequestError("request is empty")
    if len(text) > max_chars:
        raise RequestError(f"request has {len(text)} characters; the limit is {max_chars}")
    if not any(ch.isalpha() for ch in text):
        raise RequestError(f"request {text[:40]!r} has no words")
    return text


def check_poses(joints: object, config: AgentConfig) -> np.ndarray:
    array = np.asarray(joints, dtype=np.float64)
    if array.ndim != 3 or array.shape[1:] != (NUM_JOINTS, 3):
        raise RequestError(f"pose window must have shape (frames, {NUM_JOINTS}, 3), got {array.shape}")
    if not np.isfinite(array).all():
        raise RequestError("pose window holds NaN or infinite values")
    if len(array) < config.min_caption_frames:
        raise RequestError(f"pose window has {len(array)} frames; at least {config.min_caption_frames} are needed")
    return array[-config.max_caption_frames :]


class _Clock:
    def __init__(self) -> None:
        self.marks: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.marks[name] = (now - self._last) * 1000.0
        self._last = now


class MotionAgent:
    """The robot's motion-language skill set, independent of any middleware."""

    def __init__(
        self,
        lm: MotionLanguageModel,
        encoder: MotionTokenizer,
        decoder,
        retargeter: Retargeter,
        config: AgentConfig = AgentConfig(),
        tokenizer_fingerprint: str = "",
    ) -> None:
        self.lm, self.encoder, self.decoder, self.retargeter, self.config = lm, encoder, decoder, retargeter, config
        self.tokenizer_fingerprint = tokenizer_fingerprint  # bundles must name it (and the base fingerprint)
        self.experts = (
            OnnxExpertSet(OnnxLanguageModel(lm, config.language_model))
            if config.language_model.backend == "onnx"
            else ExpertSet(lm, merged=config.routing.merged)
        )
        self.router = AutoencoderRouter()
        self._onnx_features: OnnxPromptFeatures | None = None  # made when first routing (routing.features: onnx)
        self.store = ExpertStore(Path(config.routing.experts).expanduser()) if config.routing.experts else None
        # Set by a node that installs bundles: only experts still signed by a key it trusts are served.
        self.trust: TrustPolicy | None = None
        if self.store is not None:
            self.reload_experts()

    @classmethod
    def from_config(cls, config: AgentConfig) -> MotionAgent:
        if not config.base_model:
            raise ValueError("agent.base_model is not set: name a folder written by `motion-agent-train base`")
        lm = load_base_model(config.base_model, config.generation)
        folder = tokenizer_folder(config.base_model)
        encoder = MotionTokenizer.load(folder)
        decoder = load_decoder(folder, config.decoder_backend, torch_decoder=encoder)
        spec = BaseModelSpec.read(Path(config.base_model))
        retargeter = load_retargeter(config.robot, config.robot_mode)
        return cls(lm, encoder, decoder, retargeter, config, spec.tokenizer_fingerprint)

    @property
    def fingerprint(self) -> str:
        return self.lm.fingerprint

    def reload_experts(self) -> dict[str, list[str]]:
        """Serve exactly the store's active experts that `trust` (when set) still trusts; returns what was
        added, replaced and removed, and which experts are not served because their key was revoked."""
        if self.store is None:
            return {"added": [], "replaced": [], "removed": [], "untrusted": []}
        for attempt in range(1, RELOAD_ATTEMPTS + 1):
            # A rollback or removal in another process may prune a version between reading the index and
            # loading it: read a fresh snapshot and try again, then say what failed and what is served.
            try:
                return self._reload_snapshot()
            except (OSError, ExpertError, RouterError) as error:
                if attempt == RELOAD_ATTEMPTS:
                    served = ", ".join(self.experts.names) or "none"
                    raise ExpertError(
                        f"reloading the experts failed {RELOAD_ATTEMPTS} times: {error}; serving: {served}"
                    ) from error
                time.sleep(RELOAD_RETRY_S)
        raise AssertionError("unreachable")

    def _reload_snapshot(self) -> dict[str, list[str]]:
        refused = self.store.untrusted(self.trust) if self.trust is not None else {}
        wanted = {name: folder for name, folder in self.store.active_experts().items() if name not in refused}
        unchanged = {n: ae for n, ae in self.router.experts.items() if self.experts.folders.get(n) == wanted.get(n)}
        router = AutoencoderRouter({n: unchanged.get(n) or ExpertRouter.load(f) for n, f in wanted.items()})
        with self.experts.lock:
            changes = self.experts.sync(wanted)
            self.router = router
        return {**changes, "untrusted": sorted(refused)}

    def install_bundle(self, bundle: str | Path, keyring: str | Path) -> tuple[InstallResult, dict[str, list[str]]]:
        """Verify and install a signed expert bundle into the store, then serve it (no restart)."""
        if self.store is None:
            raise ValueError("agent.routing.experts names no expert store: set it to install bundles")
        self.trust = TrustPolicy.of(keyring)
        result = self.store.install(
            bundle, self.trust, backbone_fingerprint=self.fingerprint, tokenizer_fingerprint=self.tokenizer_fingerprint
        )
        return result, self.reload_experts()

    def route(self, prompt: str, direction: Direction) -> Decision:
        """The expert for one prompt, or None when no expert accepts it (or none is installed)."""
        if not self.router.experts:
            return Decision(None, {})
        with self.experts.serving(None) as base:
            features = self._features(base, prompt)
        return self.router.route(features, direction)[0]

    def warm_up(self) -> None:
        """Make now what the first routed request would otherwise make (the ONNX routing trunk, about a
        second on tiny; the instruction's cached keys and values; the merged-serving view), so that a
        node's first answer comes as fast as the others."""
        self.route(t2m_prompt("a person waves"), "t2m")

    def _features(self, base: MotionLanguageModel, prompt: str) -> np.ndarray:
        """The routers' features of one prompt, from `base` (the frozen model, no expert active)."""
        if self.config.routing.features == "torch":
            return prompt_features(base, [prompt])
        if self._onnx_features is None:
            self._onnx_features = OnnxPromptFeatures(base, self.config.language_model.intra_op_threads)
        return self._onnx_features([prompt])

    def _expert_label(self, decision: Decision) -> str:
        if not self.router.experts:
            return "base"
        if decision.expert is None and self.config.routing.unknown == "refuse":
            scores = ", ".join(f"{k} {v:.3g}" for k, v in decision.scores.items())
            raise RequestError(f"no installed expert knows this request ({UNKNOWN}; router losses: {scores})")
        return decision.label

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """Motion codes -> (T, 22, 3) joint positions."""
        with torch.inference_mode():
            features = self.decoder.denormalize(self.decoder.decode(np.asarray(codes, dtype=np.int64)[None]))[0]
        return recover_joints(torch.as_tensor(np.asarray(features), dtype=torch.float64)).numpy()

    def generate(
        self,
        text: object,
        emotion: str | None = None,
        duration: float | None = None,
        seed: int | None = None,
        on_chunk: Callable[[MotionChunk], None] | None = None,
    ) -> MotionResult:
        """A motion for a request; `emotion` (a word such as "happy") and `duration` (seconds) are added
        to what the text itself says. With `on_chunk` (and `stream.enabled`, and a language model that
        streams: the onnx backend) the motion is committed and retargeted chunk by chunk while its codes
        are decoded (motion_agent.streaming), each chunk the whole motion so far; the result is the last."""
        clock = _Clock()
        text = check_text(text, self.config.max_text_chars)
        if emotion:
            text = check_text(f"{text.rstrip('.')}, looking {emotion}", self.config.max_text_chars)
        seed = self.config.seed if seed is None else seed
        with self.experts.lock:
            decision = self.route(t2m_prompt(without_duration(text)), "t2m")
            expert = self._expert_label(decision)
            clock.lap("route")
            with self._served(decision) as lm:
                if on_chunk is not None and self.config.stream.enabled and hasattr(lm, "stream_motion"):
                    codes, joints, trajectory, first = self._stream(
                        lm.stream_motion(text, seed, duration), on_chunk, clock
                    )
                    return MotionResult(text, codes, joints, trajectory, expert, clock.marks, decision.scores, first)
                codes = lm.generate_motion([text], seed=seed, seconds=duration)[0]
        clock.lap("language_model")
        joints = self.decode(codes)
        clock.lap("decode")
        trajectory = self.retargeter.retarget(joints, fps=self.config.features.fps)
        clock.lap("retarget")
        result = MotionResult(text, codes, joints, trajectory, expert, clock.marks, decision.scores)
        if on_chunk is not None:
            on_chunk(MotionChunk(joints, trajectory, final=True))
        return result

    def _stream(self, codes, on_chunk, clock: _Clock) -> tuple[np.ndarray, np.ndarray, Trajectory, float]:
        """Codes -> committed frames -> the robot's trajectory, one chunk at a time; also the ms from the
        end of routing to the first chunk handed over. The stages stay those of a whole request: decode
        and retarget sum their chunks', language_model is the rest."""
        spent = {"decode": 0.0, "retarget": 0.0}
        start, first, last = time.perf_counter(), [], []

        def decode(so_far: np.ndarray) -> np.ndarray:
            begin = time.perf_counter()
            joints = self.decode(so_far)
            spent["decode"] += (time.perf_counter() - begin) * 1000.0
            return joints

        def emit(frames: np.ndarray, final: bool) -> None:
            begin = time.perf_counter()
            trajectory = self.retargeter.retarget(frames, fps=self.config.features.fps)
            last[:] = [keep_sent(last[0] if last else None, trajectory)]
            spent["retarget"] += (time.perf_counter() - begin) * 1000.0
            on_chunk(MotionChunk(frames, last[0], final))
            if not first:
                first.append((time.perf_counter() - start) * 1000.0)

        all_codes, joints = stream_frames(self.config.stream, codes, decode, emit)
        clock.lap("language_model")
        clock.marks["language_model"] -= spent["decode"] + spent["retarget"]
        clock.marks.update(spent)
        return all_codes, joints, last[0], first[0]

    def caption(self, joints: object) -> CaptionResult:
        clock = _Clock()
        window = check_poses(joints, self.config)
        features = joints_to_features(window, self.config.features)
        codes = self.encoder.motion_codes(features)
        clock.lap("encode")
        with self.experts.lock:
            decision = self.route(m2t_prompt(self.lm.vocabulary, codes), "m2t")
            expert = self._expert_label(decision)
            clock.lap("route")
            with self._served(decision) as lm:
                text = lm.caption([codes])[0]
        clock.lap("language_model")
        return CaptionResult(text, len(window), expert, clock.marks, decision.scores)

    def _served(self, decision: Decision):
        """The model for a decision (a context): its expert alone, or the soft blend of all experts."""
        if self.config.routing.mode == "soft" and decision.expert is not None:
            return self.experts.blended(softmax_weights(decision.scores, self.config.routing.temperature))
        return self.experts.serving(decision.expert)
