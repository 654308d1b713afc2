"""Motion-language model: one causal LM that reads and writes both text and motion tokens.

The motion tokenizer's codes become ordinary vocabulary entries (`<motion_id_k>`, bracketed by start- and
end-of-motion tokens), so text-to-motion (T2M) and motion-to-text (M2T) are both next-token prediction
under an instruction, as in MotionGPT and ES-MoE. T2M decoding is constrained to motion tokens (a logits
mask), which makes every generated sequence decodable; M2T decoding is free text.

The prompt format lives here, not in training, because the robot must build exactly the prompts the
model was trained on.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
import torch

MOTION_TOKEN = "<motion_id_{}>"
START_OF_MOTION = "<start_of_motion>"
END_OF_MOTION = "<end_of_motion>"
T2M_INSTRUCTION = "Generate a motion sequence that aligns with the following emotional text description: {text}"
M2T_INSTRUCTION = "Describe this motion: {motion}"
ANSWER = "\nAnswer: "

_NUMBER_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
                 "nine": 9, "ten": 10, "a": 1, "half a": 0.5}
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


def requested_seconds(text: str) -> float | None:
    """The duration a request asks for ("... for 3 seconds", "for two secs"), or None."""
    match = _DURATION.search(text)
    if not match:
        return None
    value = match.group(1).lower()
    return float(_NUMBER_WORDS.get(value, value))


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
    def of(cls, tokenizer, codebook_size: int) -> "MotionVocabulary":
        """Read the ids back from a tokenizer that already holds the motion tokens."""
        ids = tokenizer.convert_tokens_to_ids(cls.token_strings(codebook_size))
        first = ids[0]
        if ids[:codebook_size] != list(range(first, first + codebook_size)) or tokenizer.unk_token_id in ids:
            raise ValueError(f"the tokenizer does not hold {codebook_size} contiguous motion tokens")
        return cls(first, codebook_size, ids[-2], ids[-1])

    @property
    def code_ids(self) -> range:
        return range(self.first_id, self.first_id + self.codebook_size)

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


class MotionOnlyLogits:
    """Logits mask for T2M: only motion codes, and end-of-motion once `min_tokens` codes are out;
    after `max_tokens` codes only end-of-motion. With min == max the length is exact."""

    def __init__(self, vocabulary: MotionVocabulary, prompt_length: int, min_tokens: int, max_tokens: int) -> None:
        self.vocabulary, self.prompt_length = vocabulary, prompt_length
        self.min_tokens, self.max_tokens = min_tokens, max_tokens

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        produced = input_ids.shape[1] - self.prompt_length
        allowed = torch.full_like(scores, -math.inf)
        vocab = self.vocabulary
        if produced < self.max_tokens:
            allowed[:, vocab.first_id : vocab.first_id + vocab.codebook_size] = 0.0
        if produced >= self.min_tokens:
            allowed[:, vocab.end_id] = 0.0
        return scores + allowed


class MotionLanguageModel:
    """A (frozen) causal LM with motion tokens; experts are peft adapters selected per sample."""

    def __init__(self, model, tokenizer, vocabulary: MotionVocabulary, config: GenerationConfig = GenerationConfig(),
                 fingerprint: str = "") -> None:
        self.model, self.tokenizer, self.vocabulary, self.config = model, tokenizer, vocabulary, config
        self.fingerprint = fingerprint  # of the frozen base model; experts and bundles must name the same

    def _encode(self, prompts: list[str]) -> dict[str, torch.Tensor]:
        batch = self.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        return {k: v.to(self.model.device) for k, v in batch.items()}

    def _sampling(self, config: GenerationConfig) -> dict:
        if config.temperature == 0:
            return {"do_sample": False}
        return {"do_sample": True, "temperature": config.temperature, "top_k": config.top_k or None}

    @torch.inference_mode()
    def generate_motion(
        self, texts: list[str], seed: int = 0, seconds: float | None = None,
        adapter_names: list[str] | None = None, config: GenerationConfig | None = None,
    ) -> list[np.ndarray]:
        """Motion codes for each text. A duration (the argument, else one named in the text) fixes the
        number of tokens; otherwise the model decides between the configured bounds."""
        from transformers import LogitsProcessorList

        config = config or self.config
        durations = [seconds if seconds is not None else requested_seconds(t) for t in texts]
        if len(set(durations)) > 1:  # one length rule per batch: split by requested duration
            return self._by_duration(texts, durations, seed, adapter_names, config)
        lo, hi = config.min_motion_tokens, config.max_motion_tokens
        if durations[0] is not None:
            lo = hi = config.tokens_for(durations[0])
        batch = self._encode([t2m_prompt(t) for t in texts])
        prefix = torch.full((len(texts), 1), self.vocabulary.start_id, device=batch["input_ids"].device)
        batch["input_ids"] = torch.cat([batch["input_ids"], prefix], dim=1)
        batch["attention_mask"] = torch.cat([batch["attention_mask"], torch.ones_like(prefix)], dim=1)
        mask = MotionOnlyLogits(self.vocabulary, batch["input_ids"].shape[1], lo, hi)
        extra = {"adapter_names": adapter_names} if adapter_names is not None else {}
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            out = self.model.generate(
                **batch, **extra, **self._sampling(config), max_new_tokens=hi + 1,
                logits_processor=LogitsProcessorList([mask]), eos_token_id=self.vocabulary.end_id,
                pad_token_id=self.tokenizer.pad_token_id,
            )
        new = out[:, batch["input_ids"].shape[1]:].tolist()
        return [self.vocabulary.codes_from_ids(ids) for ids in new]

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
    def caption(self, motions: list[np.ndarray], adapter_names: list[str] | None = None,
                config: GenerationConfig | None = None) -> list[str]:
        """A caption for each sequence of motion codes (greedy decoding: one answer per motion)."""
        config = config or self.config
        batch = self._encode([m2t_prompt(self.vocabulary, codes) for codes in motions])
        extra = {"adapter_names": adapter_names} if adapter_names is not None else {}
        out = self.model.generate(
            **batch, **extra, do_sample=False, max_new_tokens=config.max_caption_tokens,
            eos_token_id=self.tokenizer.eos_token_id, pad_token_id=self.tokenizer.pad_token_id,
            suppress_tokens=list(self.vocabulary.code_ids) + [self.vocabulary.start_id, self.vocabulary.end_id],
        )
        new = out[:, batch["input_ids"].shape[1]:]
        return [text.strip() for text in self.tokenizer.batch_decode(new, skip_special_tokens=True)]
