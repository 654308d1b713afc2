"""The motion-language model's decoding through onnxruntime: the fast path beside the transformers reference.

`OnnxLanguageModel` wraps a loaded `MotionLanguageModel` (the reference, which keeps the tokenizer, the
vocabulary and the embedding matrix) and runs its decoder as the graph of `onnx_decoder`, with weights in
4 or 8 bits (onnxruntime's MatMulNBits, blocks of `block_size`) or float32. Decoding is the reference's:
the same prompts and token ids, the same choice rule over the motion codes (`language_model._choose`, the
same torch generator, so sampled motions match the reference's where the logits do), the same greedy
captions. Two differences, both on purpose:

- rows are decoded one at a time (a robot serves one request at a time; GroupQueryAttention's padding
  rules differ from transformers'), so a batch samples each row from the seed on its own;
- the instruction every prompt of a direction starts with is run once per expert and its keys and values
  reused, so a request prefills only its own tokens.

An expert is bound by `with_factors(LoraFactors)`: the LoRA graph adds its update; with none bound the
graph without LoRA inputs runs (about a third faster per step on SmolLM2-135M).
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass

import numpy as np
import torch

from motion_agent.model.backbone import cache_dir
from motion_agent.model.language_model import (
    M2T_HEAD,
    T2M_HEAD,
    GenerationConfig,
    MotionLanguageModel,
    _choose,
    m2t_prompt,
    requested_seconds,
    t2m_prompt,
)
from motion_agent.model.onnx_decoder import DecoderRunner, build_decoder

WEIGHTS = ("int4", "int8", "float32")
NOT_BY_NAME = "the onnx language model serves the expert it is bound to (with_factors), not adapter_names"
BACKENDS = ("onnx", "torch")


@dataclass(frozen=True)
class LanguageModelRuntime:
    """How the language model runs (section `agent.language_model`)."""

    backend: str = "onnx"  # "onnx": this module's graph; "torch": transformers (the reference)
    # the onnx graph's projection weights: int4, int8 (blockwise) or float32. int8 by default: on SmolLM2-135M
    # its greedy motion codes matched the reference's in 7 of 8 requests (int4: 3 of 8) for ~25 % more time
    weights: str = "int8"
    block_size: int = 64  # weights per quantization block (a power of two >= 16; 64 ran faster than 32 here)
    threads: int = 0  # onnxruntime's intra-op threads; 0: one per core

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"language_model.backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}")
        if self.weights not in WEIGHTS:
            raise ValueError(f"language_model.weights must be one of {', '.join(WEIGHTS)}, got {self.weights!r}")
        if self.block_size < 16 or self.block_size & (self.block_size - 1):
            raise ValueError(f"language_model.block_size must be a power of two >= 16, got {self.block_size}")
        if self.threads < 0:
            raise ValueError(f"language_model.threads must be >= 0, got {self.threads}")

    @property
    def intra_op_threads(self) -> int:
        """onnxruntime's intra-op threads for the language model and routing's trunk."""
        return self.threads or (os.cpu_count() or 1)


def _quantized(graph: bytes, runtime: LanguageModelRuntime) -> bytes:
    """The graph with its constant-weight products in blocks of `bits` (the LoRA products take their
    right-hand side from inputs, so they stay float32)."""
    if runtime.weights == "float32":
        return graph
    import logging

    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    bits = 4 if runtime.weights == "int4" else 8
    logger = logging.getLogger("onnxruntime.quantization.matmul_nbits_quantizer")
    level, logger.level = logger.level, logging.WARNING  # it logs every node it skips at INFO
    try:
        quantizer = MatMulNBitsQuantizer(
            onnx.load_from_string(graph),
            bits=bits,
            block_size=runtime.block_size,
            is_symmetric=True,
            accuracy_level=4,  # int8 activations: the CPU kernels' fast path
        )
        quantizer.process()
    finally:
        logger.level = level
    return quantizer.model.model.SerializeToString()


GRAPH_VERSION = "1"  # bump when build_decoder's graph changes: cached graphs of older versions are not read


def _graph(lm: MotionLanguageModel, runtime: LanguageModelRuntime, lora: bool) -> bytes:
    """The (quantized) decoder graph, from the cache when this base model's was built before: a quantized
    SmolLM2-135M graph takes about 4 s to write and quantize, 0.1 s to read back."""
    import hashlib

    import onnxruntime

    if not lm.fingerprint:  # a model without a fingerprint (built in memory) cannot be named in a cache
        return _quantized(build_decoder(lm.network, lora), runtime)
    key = f"{lm.fingerprint}|{runtime.weights}|{runtime.block_size}|{lora}|{GRAPH_VERSION}|{onnxruntime.__version__}"
    path = cache_dir().parent / "decoders" / f"{hashlib.sha256(key.encode()).hexdigest()[:24]}.onnx"
    if path.is_file():
        return path.read_bytes()
    graph = _quantized(build_decoder(lm.network, lora), runtime)
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_name(f".{path.name}.{os.getpid()}")
    scratch.write_bytes(graph)
    scratch.replace(path)  # atomic: a reader never sees half a graph
    return graph


class _Sessions:
    """The two graphs of one base model (without and with LoRA inputs), shared by every bound view."""

    def __init__(self, lm: MotionLanguageModel, runtime: LanguageModelRuntime) -> None:
        import onnxruntime

        network = lm.network
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = runtime.intra_op_threads
        options.log_severity_level = 3  # shape-merge notes on the dynamic outputs are not news
        self.plain = DecoderRunner(_graph(lm, runtime, False), network, options)
        self.lora = DecoderRunner(_graph(lm, runtime, True), network, options)
        with torch.no_grad():
            self.head = network.get_output_embeddings().weight.detach().float().cpu().numpy()
        vocabulary = lm.vocabulary
        self.motion_rows = np.ascontiguousarray(self.head[[*vocabulary.code_ids, vocabulary.end_id]])
        self.base_prefixes: dict = {}  # prefix ids -> cached keys and values of the plain graph


class OnnxLanguageModel:
    """`generate_motion` and `caption` of a MotionLanguageModel, run by onnxruntime."""

    def __init__(self, lm: MotionLanguageModel, runtime: LanguageModelRuntime = LanguageModelRuntime()) -> None:
        self.reference = lm
        self.runtime = runtime
        self._sessions = _Sessions(lm, runtime)
        self.factors = None  # LoraFactors of the bound expert (or blend), None: the base
        self._lora_feeds: dict[str, np.ndarray] = {}  # their graph inputs
        self._heads = {head: self._ids(head) for head in (T2M_HEAD, M2T_HEAD)}

    # what callers of a MotionLanguageModel read
    tokenizer = property(lambda self: self.reference.tokenizer)
    vocabulary = property(lambda self: self.reference.vocabulary)
    config = property(lambda self: self.reference.config)
    fingerprint = property(lambda self: self.reference.fingerprint)
    model = property(lambda self: self.reference.model)
    network = property(lambda self: self.reference.network)
    shape = property(lambda self: self._sessions.plain.shape)

    def with_factors(self, factors) -> OnnxLanguageModel:
        """A view of this model that serves with `factors` (LoraFactors; None: the base). Sessions are
        shared; the view holds the factors laid out as graph inputs, so keep it while serving them."""
        view = copy.copy(self)
        view.factors = factors
        view._lora_feeds = factors.arrays() if factors is not None else {}
        return view

    def _ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def _run(self, ids: list[int], cache: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
        """Run new tokens `ids` after `cache`: (last hidden state (H,), the longer cache)."""
        runner, extra = (
            (self._sessions.plain, None) if self.factors is None else (self._sessions.lora, self._lora_feeds)
        )
        hidden, cache = runner.run(ids, cache, extra)
        return hidden.reshape(-1), cache

    def _prefill(self, ids: list[int]) -> tuple[np.ndarray, list[np.ndarray]]:
        """The prompt through the decoder, its shared instruction's cache reused when it has one."""
        prefixes = self._sessions.base_prefixes if self.factors is None else self.factors.prefix_cache
        for head in self._heads.values():
            n = len(head)
            if n < len(ids) and ids[:n] == head:
                key = tuple(head)
                if key not in prefixes:
                    prefixes[key] = self._run(head, self._sessions.plain.empty_cache())[1]
                return self._run(ids[n:], prefixes[key])
        return self._run(ids, self._sessions.plain.empty_cache())

    @torch.inference_mode()
    def generate_motion(
        self,
        texts: list[str],
        seed: int = 0,
        seconds: float | None = None,
        adapter_names: list[str] | None = None,
        config: GenerationConfig | None = None,
    ) -> list[np.ndarray]:
        """Motion codes for each text, as `MotionLanguageModel.generate_motion` (rows one at a time)."""
        if adapter_names is not None:
            raise ValueError(NOT_BY_NAME)
        return [self.stream_motion(text, seed, seconds, config).codes() for text in texts]

    def stream_motion(
        self, text: str, seed: int = 0, seconds: float | None = None, config: GenerationConfig | None = None
    ) -> MotionStream:
        """The codes of one text as they are decoded (iterate), or all at once (`codes()`)."""
        return MotionStream(self, text, seed, seconds, config or self.config)

    @torch.inference_mode()
    def caption(
        self, motions: list[np.ndarray], adapter_names: list[str] | None = None, config: GenerationConfig | None = None
    ) -> list[str]:
        """A greedy caption for each sequence of motion codes, as `MotionLanguageModel.caption`."""
        if adapter_names is not None:
            raise ValueError(NOT_BY_NAME)
        config = config or self.config
        vocabulary, s = self.vocabulary, self._sessions
        eos = self.tokenizer.eos_token_id
        banned = np.array(vocabulary.motion_ids)
        captions = []
        for codes in motions:
            hidden, cache = self._prefill(self._ids(m2t_prompt(vocabulary, codes)))
            tokens: list[int] = []
            for _ in range(config.max_caption_tokens):
                logits = s.head @ hidden
                logits[banned] = -np.inf
                token = int(np.argmax(logits))
                if token == eos:
                    break
                tokens.append(token)
                hidden, cache = self._run([token], cache)
            captions.append(self.tokenizer.decode(tokens, skip_special_tokens=True).strip())
        return captions


class MotionStream:
    """One text's motion codes, decoded lazily: iterating yields each code as soon as it is chosen, so a
    caller can decode and publish the motion in chunks while the rest is still being generated."""

    def __init__(self, lm: OnnxLanguageModel, text: str, seed: int, seconds: float | None, config: GenerationConfig):
        self.lm, self.text, self.seed, self.config = lm, text, seed, config
        self.lo, self.hi = config.token_bounds(seconds if seconds is not None else requested_seconds(text))

    def __iter__(self):
        lm, config = self.lm, self.config
        vocabulary, s = lm.vocabulary, lm._sessions
        size = vocabulary.codebook_size  # index of end-of-motion among the candidate rows
        generator = torch.Generator().manual_seed(self.seed)
        with torch.inference_mode():
            hidden, cache = lm._prefill(lm._ids(t2m_prompt(self.text)) + [vocabulary.start_id])
            for step in range(self.hi + 1):
                logits = torch.from_numpy(s.motion_rows @ hidden)[None]
                code = int(_choose(logits, step, self.lo, self.hi, config, generator)[0])
                if code == size:
                    return
                yield code
                if step + 1 >= self.hi:  # the next choice is the forced end: nothing to run for it
                    return
                hidden, cache = lm._run([vocabulary.first_id + code], cache)

    def codes(self) -> np.ndarray:
        return np.asarray(list(self), dtype=np.int64)
