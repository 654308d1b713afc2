"""`motion_speech`: microphone audio -> Whisper tiny.en -> std_msgs/String on `speech_transcript`.

Optional: it needs `pip install 'motion_agent[speech]'` and starts with the others only when
`speech.enabled` is true in the agent YAML (console script motion-agent-speech).

In: std_msgs/Int16MultiArray on `speech.audio_topic` (default `audio`): signed 16-bit PCM samples,
16 kHz, mono, in `data`, chunks of any length up to `speech.max_chunk_s` (20-100 ms is typical).
`layout` may be left empty; when it has two dimensions (samples, channels) the second must have size 1.
QoS: reliable, keep last `speech.queue_depth` chunks, so a burst is buffered rather than lost;
`speech.best_effort: true` matches a sensor-data (best-effort) publisher instead.

The chunks are cut into utterances by their energy (motion_agent.speech.UtteranceSegmenter): an
utterance ends after `speech.end_silence_ms` of silence, or when the audio stops arriving for that long.
Each utterance is transcribed in a worker thread, so the executor keeps taking audio meanwhile; a
newer utterance replaces one still waiting (latest wins, as for text requests).

Out: std_msgs/String on `speech.transcript_topic` (default `speech_transcript`, which the agent node
serves as a text request), reliable, depth 10: one message per utterance with words in it.
/diagnostics (diagnostic_msgs/DiagnosticArray): OK per transcript (text, audio seconds, latency); WARN
for an utterance without words or one superseded; ERROR for a chunk that is refused (wrong layout, too
long) or a failed transcription. The node never dies on input.

Parameters: config (agent YAML; sections `node` for the diagnostics topic and `speech`).
Run: python -m motion_agent.nodes.speech_node --ros-args -p config:=FILE  (or motion-agent-speech).
"""

from __future__ import annotations

import itertools
import time

import numpy as np
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from std_msgs.msg import Int16MultiArray, String

from motion_agent.nodes.common import guarded, read_settings, run_node
from motion_agent.nodes.diagnostics import Diagnostics
from motion_agent.nodes.worker import LatestWinsWorker, Outcome
from motion_agent.speech import AudioError, SpeechConfig, Transcriber, Transcript, Utterance, load_speech_config

NODE_NAME = "motion_speech"
IDLE_CHECK_S = 0.1  # how often the node looks for audio that stopped mid-utterance


def chunk_samples(message: Int16MultiArray) -> np.ndarray:
    """The int16 samples of an audio chunk; AudioError when it is empty, when its layout says it is not
    mono, or when the layout contradicts the data (a producer whose layout lies is sending something
    else than it thinks)."""
    dims = message.layout.dim
    if len(dims) > 2 or (len(dims) == 2 and dims[1].size != 1):
        shape = " x ".join(f"{d.size} {d.label or '?'}" for d in dims)
        raise AudioError(f"audio must be mono 16 kHz PCM: the layout says {shape}; send (samples) or (samples, 1)")
    if not len(message.data):
        raise AudioError("the audio chunk is empty")
    if dims and dims[0].size != len(message.data):
        raise AudioError(f"the layout says {dims[0].size} samples but the chunk holds {len(message.data)}")
    if message.layout.data_offset:
        raise AudioError(f"the layout's data_offset is {message.layout.data_offset}; audio starts at 0")
    return np.frombuffer(message.data, dtype=np.int16)


class SpeechNode(Node):
    def __init__(self, transcriber: Transcriber | None = None, **kwargs) -> None:
        super().__init__(NODE_NAME, **kwargs)
        settings = read_settings(self)
        self.config: SpeechConfig = load_speech_config(settings.config_path)
        self.diagnostics = Diagnostics(self, settings.node.diagnostics_topic)
        if self.config.transcript_topic not in settings.node.text_topics:
            self.get_logger().warning(
                f"{self.config.transcript_topic} is not among node.text_topics: "
                "the agent node will not hear the transcripts"
            )
        self.get_logger().info("loading the Whisper model" if transcriber is None else "using the given transcriber")
        self.transcriber = transcriber or Transcriber(self.config)
        self.publisher = self.create_publisher(String, self.config.transcript_topic, 10)
        self._ids = itertools.count(1)
        self.dropped = 0
        self.last_audio, self.idle_ticks = time.monotonic(), 0
        self.worker: LatestWinsWorker[tuple[int, Utterance]] = LatestWinsWorker(
            self._transcribe, self._report, "transcribe", discard_stale=False
        )
        reliability = ReliabilityPolicy.BEST_EFFORT if self.config.best_effort else ReliabilityPolicy.RELIABLE
        qos = QoSProfile(depth=self.config.queue_depth, reliability=reliability)
        self.subscription = self.create_subscription(
            Int16MultiArray, self.config.audio_topic, guarded(self, self._on_audio), qos
        )
        self.timer = self.create_timer(IDLE_CHECK_S, guarded(self, self._on_idle))
        self.get_logger().info(f"transcribing {self.config.audio_topic} -> {self.config.transcript_topic}")

    def _on_audio(self, message: Int16MultiArray) -> None:
        self.last_audio, self.idle_ticks = time.monotonic(), 0
        try:
            utterances = self.transcriber.segmenter.push(chunk_samples(message), self.config.sample_rate)
        except AudioError as error:
            self.dropped += 1
            self.diagnostics.publish(
                "audio",
                "ERROR",
                f"audio chunk dropped: {error}",
                {"samples": str(len(message.data)), "dropped": str(self.dropped)},
            )
            return
        for utterance in utterances:
            self.worker.submit((next(self._ids), utterance))

    def _on_idle(self) -> None:
        """The publisher stopped mid-utterance: end it as if silence had followed.

        Only on the second idle tick in a row: after a stall the executor may run this timer before the
        audio chunks that queued meanwhile, and those must reach the utterance first."""
        silent_s = time.monotonic() - self.last_audio
        idle = self.transcriber.segmenter.active and silent_s * 1000 >= self.config.end_silence_ms
        self.idle_ticks = self.idle_ticks + 1 if idle else 0
        if self.idle_ticks >= 2:
            self.idle_ticks = 0
            utterance = self.transcriber.segmenter.flush()
            if utterance is not None:
                self.worker.submit((next(self._ids), utterance))

    def _transcribe(self, job: tuple[int, Utterance]) -> Transcript:
        return self.transcriber.transcribe(job[1])

    def _report(self, outcome: Outcome[tuple[int, Utterance]]) -> None:
        number, utterance = outcome.job.item
        name = f"utterance {number}"
        values = {
            "utterance": str(number),
            "audio_s": f"{utterance.seconds:.2f}",
            "speech_s": f"{utterance.speech_s:.2f}",
            "ended_by": utterance.ended_by,
        }
        if outcome.superseded:
            self.diagnostics.publish(name, "WARN", f"superseded: {outcome.superseded}", values)
        elif outcome.error is not None:
            reason = f"transcription failed: {type(outcome.error).__name__}: {outcome.error}"
            self.diagnostics.publish(name, "ERROR", reason, {**values, "reason": reason})
        elif not outcome.result.text:
            self.diagnostics.publish(name, "WARN", "no words heard", values)
        else:
            result: Transcript = outcome.result
            self.publisher.publish(String(data=result.text))
            self.diagnostics.publish(
                name,
                "OK",
                f"heard {result.text[:80]!r}",
                {
                    **values,
                    "text": result.text,
                    "latency_ms.transcribe": f"{result.latency_ms:.1f}",
                    "latency_ms.queue": f"{outcome.wait_ms:.1f}",
                },
            )

    def close(self) -> None:
        self.worker.close()


def main(args: list[str] | None = None) -> int:
    return run_node(SpeechNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
