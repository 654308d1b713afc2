"""The routers' feature trunk run by onnxruntime: the same features as `prompt_features.prompt_features`,
for a fraction of the cost per request.

Through transformers, routing one request spends most of its time in Python around a few small matrix
products (model wrappers, mask building, rotary embeddings, cache objects): about 2 ms on the tiny
backbone, more than the 5 % of a request's time that routing should take. The trunk's layers exported
once to an in-memory ONNX graph compute the same pooled hidden states (float rounding apart) in a
fraction of that (bench/bench_runtime.py reports both as `ratios.router_torch_over_onnx`).

The export happens when the agent first routes, from the frozen base model with no expert active; the
backbone never changes afterwards (experts are served merged into private copies of their layers, or as
LoRA wrappers left inactive here), so one graph serves the model's lifetime. The token embeddings stay
in torch (a lookup), so the graph holds only the trunk's layers.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
import torch
from torch import nn

from motion_agent.experts.prompt_features import INSTRUCTION_HEADS, router_trunk, shared_instruction
from motion_agent.model.language_model import MotionLanguageModel

FEATURES_BACKENDS = ("onnx", "torch")


class _PooledTrunk(nn.Module):
    """Trunk hidden states mean-pooled over the `content` positions: what gets exported."""

    def __init__(self, trunk: nn.Module) -> None:
        super().__init__()
        self.trunk = trunk

    def forward(self, embeds: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
        # rows are right-padded, so the causal mask alone keeps padding out of every real token's view;
        # given whole (4-D), it spares the graph transformers' mask building
        tokens = embeds.shape[1]
        causal = torch.ones(tokens, tokens, dtype=torch.bool, device=embeds.device).tril()[None, None]
        hidden = self.trunk(inputs_embeds=embeds, attention_mask=causal, use_cache=False).last_hidden_state
        weights = content.unsqueeze(-1).to(hidden.dtype)
        return (hidden * weights).sum(1) / weights.sum(1)


class OnnxPromptFeatures:
    """`prompt_features(lm, prompts)` for one frozen base model, run by onnxruntime.

    Build it with the base model exactly as routing sees it (no expert active). Prompts are tokenised as
    routing does (the shared instruction and the request's own text apart) and right-padded, so that a
    request's features do not depend on the batch it came in."""

    def __init__(self, lm: MotionLanguageModel, threads: int = 1) -> None:
        import onnxruntime

        self.tokenizer = lm.tokenizer
        self.embeddings = lm.network.get_input_embeddings()
        self.hidden_size = lm.network.config.hidden_size
        self._heads = {head: self._ids(head) for head in INSTRUCTION_HEADS}
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # leave the cores to torch
        self.session = onnxruntime.InferenceSession(_export(lm), options, providers=["CPUExecutionProvider"])

    def _ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def _split(self, prompt: str) -> tuple[list[int], list[int]]:
        """(instruction ids, content ids) as `prompt_features` tokenises them."""
        head = shared_instruction([prompt])
        return ([], self._ids(prompt)) if head is None else (self._heads[head], self._ids(prompt[len(head) :]))

    @torch.inference_mode()
    def __call__(self, prompts: list[str]) -> np.ndarray:
        """(N, hidden) float32 features of `prompts`."""
        if not prompts:
            return np.zeros((0, self.hidden_size), np.float32)
        rows = [self._split(p) for p in prompts]
        width = max(len(head) + len(content) for head, content in rows)
        pad = self.tokenizer.pad_token_id or 0
        ids = np.full((len(rows), width), pad, np.int64)
        content = np.zeros((len(rows), width), np.int64)
        for row, (head, body) in enumerate(rows):
            ids[row, : len(head) + len(body)] = head + body
            content[row, len(head) : len(head) + len(body)] = 1
        embeds = self.embeddings(torch.from_numpy(ids)).float().numpy()
        (features,) = self.session.run(None, {"embeds": embeds, "content": content})
        return features


def _export(lm: MotionLanguageModel) -> bytes:
    """The pooled trunk as an ONNX graph (bytes), batch and length dynamic."""
    module = _PooledTrunk(router_trunk(lm)).eval()
    ids = torch.tensor([lm.tokenizer("a person waves", add_special_tokens=False)["input_ids"]])
    embeds = lm.network.get_input_embeddings()(ids).float()
    content = torch.ones_like(ids)
    buffer = io.BytesIO()
    dynamic = {0: "batch", 1: "tokens"}
    with torch.no_grad(), warnings.catch_warnings():
        # transformers' branches on shapes become constants of the trace; those taken here hold for any
        # batch and length (tested against transformers' features)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        torch.onnx.export(  # TorchScript-based, as the tokenizer's decoder export: no packages beyond torch
            module,
            (embeds, content),
            buffer,
            dynamo=False,
            input_names=["embeds", "content"],
            output_names=["features"],
            dynamic_axes={"embeds": dynamic, "content": dynamic},
        )
    return buffer.getvalue()
