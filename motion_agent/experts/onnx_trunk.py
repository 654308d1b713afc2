"""The routers' feature trunk run by onnxruntime: the same features as `prompt_features.prompt_features`,
for a fraction of the cost per request.

Through transformers, routing one request spends most of its time in Python around a few small matrix
products (model wrappers, mask building, rotary embeddings, cache objects). Here the trunk (the first half
of the frozen base's layers and its final norm) is the language model's own ONNX decoder graph
(motion_agent.model.onnx_decoder, float32, every token's hidden state out), and the instruction every
prompt of a direction starts with runs once: its keys and values are kept, so a request runs only its own
tokens through the trunk, as `prompt_features` does (bench/bench_runtime.py reports both backends as
`ratios.router_torch_over_onnx`).

The graph is built when the agent first routes, from the frozen base model with no expert active; the
backbone never changes afterwards, so one graph serves the model's lifetime.
"""

from __future__ import annotations

import numpy as np

from motion_agent.experts.prompt_features import INSTRUCTION_HEADS, router_trunk, shared_instruction
from motion_agent.model.language_model import MotionLanguageModel
from motion_agent.model.onnx_decoder import DecoderRunner, build_decoder

FEATURES_BACKENDS = ("onnx", "torch")


class OnnxPromptFeatures:
    """`prompt_features(lm, prompts)` for one frozen base model, run by onnxruntime one prompt at a time.

    Build it with the base model exactly as routing sees it (no expert active). Prompts are tokenised as
    routing does (the shared instruction and the request's own text apart)."""

    def __init__(self, lm: MotionLanguageModel, threads: int = 1) -> None:
        """`threads`: onnxruntime's intra-op threads (the agent gives the language model's: on 2 cores a
        SmolLM2-135M request routed in 12 ms with 2 against 18 with 1); they do not spin between runs."""
        import onnxruntime

        network = lm.network
        self.tokenizer = lm.tokenizer
        layers = len(router_trunk(lm).layers)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.log_severity_level = 3
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # leave the cores to the model
        graph = build_decoder(network, lora=False, layers=layers, all_tokens=True)
        self.runner = DecoderRunner(graph, network, options, layers)
        self._heads = {head: self._ids(head) for head in INSTRUCTION_HEADS}
        self._head_caches: dict[str, list[np.ndarray]] = {}

    def _ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def _cache(self, head: str | None) -> list[np.ndarray]:
        """The instruction's keys and values (made once per head), or an empty cache."""
        if head is None:
            return self.runner.empty_cache()
        if head not in self._head_caches:
            self._head_caches[head] = self.runner.run(self._heads[head], self.runner.empty_cache())[1]
        return self._head_caches[head]

    def __call__(self, prompts: list[str]) -> np.ndarray:
        """(N, hidden) float32 features of `prompts`: each prompt's own tokens, mean-pooled."""
        rows = []
        for prompt in prompts:
            head = shared_instruction([prompt])
            body = self._ids(prompt if head is None else prompt[len(head) :])
            hidden, _ = self.runner.run(body, self._cache(head))
            rows.append(hidden.mean(0))
        return np.stack(rows).astype(np.float32) if rows else np.zeros((0, self.runner.shape.hidden), np.float32)
