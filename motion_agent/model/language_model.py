"""Motion-language model: one causal LM that reads and writes both text and motion tokens.

The motion tokenizer's codes become ordinary vocabulary entries (`<motion_id_k>`, bracketed by start- and
end-of-motion tokens), so text-to-motion (T2M) and motion-to-text (M2T) are both next-token prediction
under an instruction, as in MotionGPT and ES-MoE. T2M decoding samples among motion tokens only (and
end-of-motion), which makes every generated sequence decodable; M2T decoding is free text.

The prompt format lives here, not in training, because the robot must build exactly the prompts the
model was trained on.
"""

from __future__ import annotations

import inspect
import math
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from typing import Literal

import numpy as np
import torch

MOTION_TOKEN = "<motion_id_{}>"
START_OF_MOTION = "<start_of_motion>"
END_OF_MOTION = "<end_of_motion>"
T2M_INSTRUCTION = "Generate a motion sequence that aligns with the following emotional text description: {text}"
M2T_INSTRUCTION = "Describe this motion: {motion}"
ANSWER = "\nAnswer: "
# what every T2M / M2T prompt starts with: its instruction up to the colon, the same tokens in every request
T2M_HEAD, M2T_HEAD = (instruction.split("{")[0].rstrip() for instruction in (T2M_INSTRUCTION, M2T_INSTRUCTION))
Direction = Literal["t2m", "m2t"]  # what a request asks: a motion for a text, or a caption for a motion
DIRECTIONS: tuple[Direction, ...] = ("t2m", "m2t")

_NUMBER_WORDS = {
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "a": 1,
    "half a": 0.5,
}
_DURATION = re.compile(
    r"\bfor\s+(?:about\s+)?(\d+(?:\.\d+)?|" + "|".join(sorted(_NUMBER_WORDS, key=len, reverse=True)) + r")\s*"
    r"(?:seconds?|secs?|s)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class GenerationConfig:
    """Decoding settings; temperature 0 means greedy."""

    temperature: float = 1.0
    top_k: int = 0  # 0: no top-k cut
    min_motion_tokens: int = 10  # 2 s at one token per 4 frames of 20 fps
    max_motion_tokens: int = 49  # 196 frames, the longest motion in HumanML3D-style data
    max_caption_tokens: int = 40
    fps: float = 20.0
    downsampling: int = 4  # frames per motion token (the tokenizer's)

    def __post_init__(self) -> None:
        if self.temperature < 0 or self.top_k < 0:
            raise ValueError(f"temperature ({self.temperature}) and top_k ({self.top_k}) must be >= 0")
        if not 1 <= self.min_motion_tokens <= self.max_motion_tokens:
            raise ValueError("need 1 <= min_motion_tokens <= max_motion_tokens")

    def tokens_for(self, seconds: float) -> int:
        wanted = round(seconds * self.fps / self.downsampling)
        return int(min(max(wanted, self.min_motion_tokens), self.max_motion_tokens))

    def token_bounds(self, seconds: float | None) -> tuple[int, int]:
        """(fewest, most) motion tokens to decode: a duration fixes the number, else the model decides
        between the configured bounds."""
        if seconds is None:
            return self.min_motion_tokens, self.max_motion_tokens
        return self.tokens_for(seconds), self.tokens_for(seconds)


def requested_seconds(text: str) -> float | None:
    """The duration a request asks for ("... for 3 seconds", "for two secs"), or None."""
    match = _DURATION.search(text)
    if not match:
        return None
    value = match.group(1).lower()
    return float(_NUMBER_WORDS.get(value, value))


def without_duration(text: str) -> str:
    """The request without its duration phrase: what the motion is, which is what routing looks at
    (the training captions an expert's router learnt from never say how long)."""
    stripped = re.sub(r"\s+", " ", _DURATION.sub(" ", text)).strip()
    stripped = re.sub(r"\s+([,.;:!?])", r"\1", stripped).lstrip(",;: ")
    return stripped if stripped.strip(".!? ") else text


@dataclass(frozen=True)
class MotionVocabulary:
    """Where the motion tokens sit in the language model's vocabulary."""

    first_id: int  # id of <motion_id_0>; codes are contiguous
    codebook_size: int
    start_id: int
    end_id: int

    @staticmethod
    def token_strings(codebook_size: int) -> list[str]:
        return [MOTION_TOKEN.format(k) for k in range(codebook_size)] + [START_OF_MOTION, END_OF_MOTION]

    @classmethod
    def of(cls, tokenizer, codebook_size: int) -> MotionVocabulary:
        """Read the ids back from a tokenizer that already holds the motion tokens."""
        ids = tokenizer.convert_tokens_to_ids(cls.token_strings(codebook_size))
        first = ids[0]
        if ids[:codebook_size] != list(range(first, first + codebook_size)) or tokenizer.unk_token_id in ids:
            raise ValueError(f"the tokenizer does not hold {codebook_size} contiguous motion tokens")
        return cls(first, codebook_size, ids[-2], ids[-1])

    @property
    def code_ids(self) -> range:
        return range(self.first_id, self.first_id + self.codebook_size)

    @property
    def motion_ids(self) -> list[int]:
        """Every motion token (codes, start and end of motion): what a caption never contains."""
        return [*self.code_ids, self.start_id, self.end_id]

    def motion_text(self, codes: np.ndarray) -> str:
        return START_OF_MOTION + "".join(MOTION_TOKEN.format(int(c)) for c in codes) + END_OF_MOTION

    def codes_from_ids(self, ids: list[int]) -> np.ndarray:
        """Motion codes in generated ids, up to the end-of-motion token."""
        codes = []
        for token in ids:
            if token == self.end_id:
                break
            if self.first_id <= token < self.first_id + self.codebook_size:
                codes.append(token - self.first_id)
        return np.asarray(codes, dtype=np.int64)


def add_motion_tokens(model, tokenizer, codebook_size: int) -> MotionVocabulary:
    """Extend the vocabulary (and the embedding matrix) with the motion tokens; idempotent."""
    tokenizer.add_tokens(MotionVocabulary.token_strings(codebook_size), special_tokens=True)
    if model.get_input_embeddings().num_embeddings < len(tokenizer):
        model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    return MotionVocabulary.of(tokenizer, codebook_size)


def t2m_prompt(text: str) -> str:
    return T2M_INSTRUCTION.format(text=text.strip()) + ANSWER


def m2t_prompt(vocabulary: MotionVocabulary, codes: np.ndarray) -> str:
    return M2T_INSTRUCTION.format(motion=vocabulary.motion_text(codes)) + ANSWER


def request_prompts(vocabulary: MotionVocabulary, direction: Direction, inputs) -> list[str]:
    """The prompts of requests as the model serves them: T2M texts or M2T motion-code arrays."""
    if direction == "t2m":
        return [t2m_prompt(text) for text in inputs]
    return [m2t_prompt(vocabulary, codes) for codes in inputs]


@cache
def _cache_keyword(model_class: type) -> str:
    return "cache" if "cache" in inspect.signature(model_class.forward).parameters else "past_key_values"


def with_cache(network, cache) -> dict:
    """{keyword: cache} for a Hugging Face model's forward: transformers 5 renamed `past_key_values` to
    `cache` and warns on every call that still uses the old name (twice per decoding step, into the
    node's log); older releases know only `past_key_values`."""
    return {_cache_keyword(type(network)): cache}


def returned_cache(output):
    """The KV cache a forward returned, under either name (see `with_cache`)."""
    cache = getattr(output, "cache", None)
    return cache if cache is not None else output.past_key_values


def _choose(
    candidates: torch.Tensor, step: int, lo: int, hi: int, config: GenerationConfig, generator: torch.Generator
) -> torch.Tensor:
    """One decoding step over [codes..., end]: end is barred before `lo` codes and forced at `hi`;
    then greedy (temperature 0) or a temperature / top-k sample."""
    end = candidates.shape[1] - 1
    if step >= hi:
        return torch.full((len(candidates),), end, dtype=torch.long, device=candidates.device)
    if step < lo:
        candidates = candidates.clone()
        candidates[:, end] = -math.inf
    if config.temperature == 0:
        return candidates.argmax(dim=1)
    scaled = candidates / config.temperature
    if config.top_k:
        cut = torch.topk(scaled, min(config.top_k, scaled.shape[1]), dim=1).values[:, -1:]
        scaled = scaled.masked_fill(scaled < cut, -math.inf)
    return torch.multinomial(torch.softmax(scaled, dim=1), 1, generator=generator)[:, 0]


class MotionLanguageModel:
    """A (frozen) causal LM with motion tokens; experts are peft adapters selected per sample."""

    def __init__(
        self,
        model,
        tokenizer,
        vocabulary: MotionVocabulary,
        config: GenerationConfig = GenerationConfig(),
        fingerprint: str = "",
    ) -> None:
        self.model, self.tokenizer, self.vocabulary, self.config = model, tokenizer, vocabulary, config
        self.fingerprint = fingerprint  # of the frozen base model; experts and bundles must name the same

    def _encode(self, prompts: list[str]) -> dict[str, torch.Tensor]:
        batch = self.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        return {k: v.to(self.model.device) for k, v in batch.items()}

    @torch.inference_mode()
    def generate_motion(
        self,
        texts: list[str],
        seed: int = 0,
        seconds: float | None = None,
        adapter_names: list[str] | None = None,
        config: GenerationConfig | None = None,
    ) -> list[np.ndarray]:
        """Motion codes for each text. A duration (the argument, else one named in the text) fixes the
        number of tokens; otherwise the model decides between the configured bounds."""
        config = config or self.config
        durations = [seconds if seconds is not None else requested_seconds(t) for t in texts]
        if len(set(durations)) > 1:  # one length rule per batch: split by requested duration
            return self._by_duration(texts, durations, seed, adapter_names, config)
        lo, hi = config.token_bounds(durations[0])
        batch = self._encode([t2m_prompt(t) for t in texts])
        prefix = torch.full((len(texts), 1), self.vocabulary.start_id, device=batch["input_ids"].device)
        batch["input_ids"] = torch.cat([batch["input_ids"], prefix], dim=1)
        batch["attention_mask"] = torch.cat([batch["attention_mask"], torch.ones_like(prefix)], dim=1)
        extra = {"adapter_names": adapter_names} if adapter_names is not None else {}
        return self._sample_motion(batch, lo, hi, config, seed, extra)

    def _sample_motion(
        self, batch: dict[str, torch.Tensor], lo: int, hi: int, config: GenerationConfig, seed: int, extra: dict
    ) -> list[np.ndarray]:
        """Decode lo..hi motion codes per row with the KV cache, sampling among the motion codes and
        end-of-motion only. A loop of our own rather than `generate`: T2M needs the logits of 513 of
        ~50k tokens (with a small backbone the full vocabulary projection is most of the work) and a
        fixed-length answer."""
        ids, mask = batch["input_ids"], batch["attention_mask"]
        positions = (mask.cumsum(-1) - 1).clamp(min=0)  # left padding: each row counts its own tokens
        generator = torch.Generator(device=ids.device).manual_seed(seed)
        first, size = self.vocabulary.first_id, self.vocabulary.codebook_size
        rows: list[list[int]] = [[] for _ in range(len(ids))]
        finished = torch.zeros(len(ids), dtype=torch.bool, device=ids.device)
        with self.restricted_head([*self.vocabulary.code_ids, self.vocabulary.end_id]):
            out = self.model(
                input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True, logits_to_keep=1, **extra
            )
            position = positions[:, -1:]
            for step in range(hi + 1):
                choice = _choose(out.logits[:, -1].float(), step, lo, hi, config, generator)  # `size` = end
                for row, code in enumerate(choice.tolist()):
                    if not finished[row] and code < size:
                        rows[row].append(code)
                finished |= choice == size
                if bool(finished.all()):
                    break
                token = torch.where(choice == size, self.vocabulary.end_id, first + choice)
                mask = torch.cat([mask, torch.ones_like(token)[:, None]], dim=1)
                position = position + 1
                out = self.model(
                    input_ids=token[:, None],
                    attention_mask=mask,
                    position_ids=position,
                    use_cache=True,
                    **with_cache(self.network, returned_cache(out)),
                    **extra,
                )
        return [np.asarray(codes, dtype=np.int64) for codes in rows]

    @property
    def network(self):
        """The Hugging Face causal LM inside any peft wrapper (expert LoRA layers stay injected in it)."""
        return self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model

    @contextmanager
    def restricted_head(self, token_ids: list[int]) -> Iterator[None]:
        """Swap the output layer for its rows of `token_ids` (logits then index that list). With a small
        backbone the ~50k-row vocabulary projection costs more than the layers: motion decoding needs
        513 rows, routing features none of them."""
        model = self.network
        head = model.get_output_embeddings()
        rows = torch.tensor(token_ids, device=head.weight.device)
        restricted = torch.nn.Linear(
            head.in_features, len(rows), bias=head.bias is not None, device=head.weight.device, dtype=head.weight.dtype
        )
        restricted.weight = torch.nn.Parameter(head.weight.index_select(0, rows), requires_grad=False)
        if head.bias is not None:
            restricted.bias = torch.nn.Parameter(head.bias.index_select(0, rows), requires_grad=False)
        model.set_output_embeddings(restricted)
        try:
            yield
        finally:
            model.set_output_embeddings(head)

    def _by_duration(self, texts, durations, seed, adapter_names, config) -> list[np.ndarray]:
        results: list[np.ndarray] = [np.empty(0, dtype=np.int64)] * len(texts)
        for duration in dict.fromkeys(durations):
            rows = [i for i, d in enumerate(durations) if d == duration]
            names = [adapter_names[i] for i in rows] if adapter_names is not None else None
            codes = self.generate_motion([texts[i] for i in rows], seed, duration, names, config)
            for i, c in zip(rows, codes):
                results[i] = c
        return results

    @torch.inference_mode()
    def caption(
        self, motions: list[np.ndarray], adapter_names: list[str] | None = None, config: GenerationConfig | None = None
    ) -> list[str]:
        """A caption for each sequence of motion codes (greedy decoding: one answer per motion)."""
        config = config or self.config
        batch = self._encode([m2t_prompt(self.vocabulary, codes) for codes in motions])
        extra = {"adapter_names": adapter_names} if adapter_names is not None else {}
        out = self.model.generate(
            **batch,
            **extra,
            do_sample=False,
            max_new_tokens=config.max_caption_tokens,
            eos_token_id=self.tokenizer.eos_token_id,
            pad_token_id=self.tokenizer.pad_token_id,
            suppress_tokens=self.vocabulary.motion_ids,
        )
        new = out[:, batch["input_ids"].shape[1] :]
        return [text.strip() for text in self.tokenizer.batch_decode(new, skip_special_tokens=True)]
