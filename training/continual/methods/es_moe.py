"""es-moe: ES-MoE (lifelong empathic motion generation), a mixture of LoRA experts weighted per request.

Each task adds a LoRA expert and an orthogonal key. A request's prompt tokens, as the frozen base model
sees them, go through the causal-guided emotion decoupling block (`training.continual.emotion_decoupling`,
global dictionary from K-means over the first task's prompt tokens) to the emotion-highlighted input h;
the key gate (`training.continual.routers.KeyGate`) turns h into weights over the experts (top-k, softmax),
and the request runs with the experts' LoRA updates summed by those weights. Training minimises the
language-model loss plus lambda times an emotion classification loss on h; only the new expert's LoRA,
the gate's query projection and the block learn, and each earlier expert is hidden from the gate at
random so the new one does not lean on them. Keys stay as initialised (orthogonal), a simplification
of the paper, which also trains the new key.

Serving blends the top-k experts as an adapter of their own (`training.continual.blends`), the same
weighted sum the training forward computes.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from scipy.cluster.vq import kmeans2

from motion_agent.experts.expert_set import running_adapters, weighted_experts
from motion_agent.model.language_model import request_prompts
from training.base.train import IGNORE, Example
from training.continual.blends import Blends
from training.continual.emotion_decoupling import DecouplingConfig, EmotionDecoupling
from training.continual.methods.base import Direction
from training.continual.methods.o_lora import OLoRA
from training.continual.router_training import router_prompts
from training.continual.routers import KeyGate
from training.continual.tasks import TaskData
from training.data.synth.emotions import EMOTIONS

GATE_DIR, EMOTION_DIR = "gate", "emotion"  # beside adapter/ in an expert folder


class ESMoE(OLoRA):
    name = "es-moe"
    reads = ("o_lora", "es_moe")
    emotion_classes = tuple(EMOTIONS)

    def __init__(self, lm, config) -> None:
        super().__init__(lm, config)
        s = config.es_moe
        self.gate = KeyGate(lm.model.config.hidden_size, s.gate_rank, s.key_dim, s.top_k, s.seed)
        self.block: EmotionDecoupling | None = None
        self.blends = Blends()

    # ---- training -----------------------------------------------------------------------------------

    def begin_task(self, index: int, task: str) -> None:
        super().begin_task(index, task)
        self.gate.add_expert(self.names[-1])
        self.gate.train()
        if self.block is not None:
            self.block.train()

    def training_examples(self, index: int, tasks: Sequence[TaskData]) -> list[Example]:
        if self.block is None:  # the global dictionary is compressed from the first task's data
            s = self.config.es_moe
            size = DecouplingConfig(self.lm.model.config.hidden_size, s.hidden, s.dictionary, len(EMOTIONS))
            self.block = EmotionDecoupling(size, self._dictionary(tasks[index].train)).train()
        return tasks[index].train

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        return super().trainable_parameters() + list(self.gate.parameters()) + list(self.block.parameters())

    def loss(self, model, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        emotions = batch.pop("emotion_labels")
        prompt = batch["attention_mask"].bool() & (batch["labels"] == IGNORE)
        h, emotion_logits = self.block(self._token_states(batch["input_ids"], batch["attention_mask"]), prompt)
        weights = self.gate(h, self._visible(len(h)))
        with weighted_experts(self.model, self.names, weights):
            task_loss = model(**batch).loss
        parts = {"task": float(task_loss.detach())}
        total = task_loss
        if (emotions != IGNORE).any():
            emotion = torch.nn.functional.cross_entropy(emotion_logits, emotions.to(h.device), ignore_index=IGNORE)
            total = total + self.config.es_moe.emotion_weight * emotion
            parts["emotion"] = float(emotion.detach())
        return total, parts

    def _visible(self, count: int) -> torch.Tensor:
        """(count, E) which experts the gate may pick: the new one always, each earlier one unless masked."""
        visible = torch.ones(count, len(self.names), dtype=torch.bool)
        visible[:, :-1] = torch.rand(count, len(self.names) - 1) >= self.config.es_moe.mask_probability
        return visible

    @torch.no_grad()
    def _token_states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The frozen base model's last hidden states of every token (no expert active)."""
        with running_adapters(self.lm.model, []):
            out = self.lm.model(
                input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True, logits_to_keep=1
            )
        return out.hidden_states[-1].float()

    def _prompt_states(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        batch = self.lm.tokenizer(
            prompts, return_tensors="pt", padding=True, padding_side="right", add_special_tokens=False
        )
        ids, mask = batch["input_ids"].to(self.model.device), batch["attention_mask"].to(self.model.device)
        return self._token_states(ids, mask), mask.bool()

    def _dictionary(self, examples: list[Example]) -> torch.Tensor:
        """K-means centroids of prompt tokens (both directions) of `examples`."""
        s = self.config.es_moe
        prompts = router_prompts(self.lm, examples)
        tokens = []
        for start in range(0, len(prompts), 32):
            states, mask = self._prompt_states(prompts[start : start + 32])
            tokens.append(states[mask].cpu().numpy())
        points = np.concatenate(tokens)
        rng = np.random.default_rng(s.seed)
        points = points[rng.permutation(len(points))[: s.kmeans_tokens]].astype(np.float64)
        centroids, _ = kmeans2(points, min(s.dictionary, len(points)), seed=s.seed, minit="++")
        if len(centroids) < s.dictionary:  # fewer tokens than entries: repeat
            centroids = np.resize(centroids, (s.dictionary, centroids.shape[1]))
        return torch.as_tensor(centroids, dtype=torch.float32)

    # ---- persistence --------------------------------------------------------------------------------

    def save_expert(self, task: str, folder: Path) -> None:
        super().save_expert(task, folder)
        self.gate.save(folder / GATE_DIR)
        self.block.save(folder / EMOTION_DIR)

    def restore(self, finished: Sequence[str], experts: Path) -> None:
        super().restore(finished, experts)
        if finished:  # the gate and block as the last finished task left them
            self.gate = KeyGate.load(experts / finished[-1] / GATE_DIR)
            self.block = EmotionDecoupling.load(experts / finished[-1] / EMOTION_DIR)

    # ---- serving ------------------------------------------------------------------------------------

    def prepare_inference(self) -> None:
        self.blends.drop(self.model)
        super().prepare_inference()
        self.model.eval()  # per-sample adapter_names run in eval mode only
        self.gate.eval()
        self.block.eval()

    def weights(self, direction: Direction, inputs: Sequence) -> torch.Tensor:
        """(N, E) the gate's weights over the experts for each request."""
        prompts = request_prompts(self.lm.vocabulary, direction, inputs)
        rows = []
        with torch.no_grad():
            for start in range(0, len(prompts), 32):
                states, mask = self._prompt_states(prompts[start : start + 32])
                rows.append(self.gate(self.block(states, mask)[0]))
        return torch.cat(rows)

    def route(self, direction: Direction, inputs: Sequence) -> list[str] | None:
        if not self.names:
            return None
        self.blends.new_batch(self.model)
        return [
            self.blends.adapter(self.model, dict(zip(self.names, row.tolist())))
            for row in self.weights(direction, inputs)
        ]

    def novelty(self, direction: Direction, inputs: Sequence) -> np.ndarray | None:
        """1 - the gate's largest weight: a gate spread over experts has seen nothing like the request."""
        if not self.names:
            return None
        return (1.0 - self.weights(direction, inputs).max(dim=1).values).numpy()
