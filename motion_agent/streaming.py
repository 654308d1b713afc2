"""Streaming a motion while it is decoded: joint frames committed chunk by chunk, never changed afterwards.

The motion tokenizer's decoder is convolutional with a wide receptive field (dilated residual blocks):
decoding the codes so far gives frames that move again, by up to tens of centimetres, once later codes
exist. A robot cannot take back a frame it has played, so the stream commits frames once and for all:

- every `every_tokens` new codes (the first chunk after `first_tokens`), the codes so far are decoded and
  their frames up to `margin_frames` before the end are committed, the least settled ones held back;
- where a new decode continues the committed frames it does not meet them exactly: the offset at the
  seam is carried into the new frames, the body's pose part faded out over `blend_frames` (continuous
  positions, no jump) and the horizontal root part kept (a root path integrated from velocities that
  started differently is the same walk displaced; pulling it back would slide the body along the floor);
- at the end of the motion the remaining frames are committed the same way.

Each chunk is the whole motion committed so far (its first frame is the motion's first). A consumer that
replaces its trajectory with each chunk, as ROS 2's JointTrajectoryController does with each message of
the same header stamp, plays it without a seam: the points it already passed are the same in every chunk.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

import numpy as np


@dataclass(frozen=True)
class StreamConfig:
    """When chunks are cut (section `agent.stream`)."""

    enabled: bool = True  # the node publishes chunks while decoding; false: one whole trajectory per request
    first_tokens: int = 3  # motion tokens before the first chunk (3 = 12 frames, 0.6 s at 20 fps)
    # new motion tokens per later chunk: each re-decodes and retargets every frame so far (~5 ms on 2 cores),
    # and the next must arrive before the robot plays out what it has (the first chunk's 0.4 s + start delay):
    # 20 SmolLM2-135M steps take ~150 ms here, so a 4 s motion comes in two chunks, an 8 s one in three
    every_tokens: int = 20
    margin_frames: int = 4  # newest decoded frames held back (they move most when more codes come)
    blend_frames: int = 8  # frames over which a new decode's offset from the committed ones fades out

    def __post_init__(self) -> None:
        for name in ("first_tokens", "every_tokens", "blend_frames"):
            if getattr(self, name) < 1:
                raise ValueError(f"stream.{name} must be >= 1, got {getattr(self, name)}")
        if self.margin_frames < 0:
            raise ValueError(f"stream.margin_frames must be >= 0, got {self.margin_frames}")


ROOT_HORIZONTAL = (0, [0, 2])  # frames are (F, 22, 3) joint positions, pelvis first, Y up: its x and z


class FrameCommitter:
    """The committed joint frames (F, 22, 3) of one motion, extended from successive decodes of its
    codes so far."""

    def __init__(self, config: StreamConfig) -> None:
        self.config = config
        self.frames: np.ndarray | None = None  # (F, ...) committed so far

    @property
    def count(self) -> int:
        return 0 if self.frames is None else len(self.frames)

    def extend(self, decoded: np.ndarray, final: bool) -> bool:
        """Commit the frames of `decoded` (the whole decode of the codes so far) beyond those committed,
        up to the margin unless `final`; True when any frame was committed."""
        end = len(decoded) if final else len(decoded) - self.config.margin_frames
        start = self.count
        if end <= start:
            return False
        new = np.array(decoded[start:end], dtype=np.float64)
        if start:
            offset = self.frames[-1] - decoded[start - 1]  # where the new decode stands off the committed
            joint, axes = ROOT_HORIZONTAL
            kept = np.zeros_like(offset)
            kept[:, axes] = offset[joint, axes]  # the whole body moved with the root's horizontal offset
            fade = np.clip(1.0 - np.arange(1, len(new) + 1) / (self.config.blend_frames + 1), 0.0, 1.0)
            new += kept + fade[:, None, None] * (offset - kept)
            self.frames = np.concatenate([self.frames, new])
        else:
            self.frames = new
        return True


PER_POINT = ("times", "positions", "velocities", "root_position", "root_yaw", "root_orientation", "base_twist")


def keep_sent(sent, new):
    """The trajectory `new` (retargeted from the committed frames so far) with the points of `sent` (the
    last chunk's) in place of its own: retargeting smooths over the whole sequence, so its earlier points
    move by a little when frames are added, and points a robot has been sent must not."""
    if sent is None:
        return new
    count = len(sent.times)
    spliced = {}
    for name in PER_POINT:
        old, fresh = getattr(sent, name), getattr(new, name)
        if old is not None and fresh is not None:
            spliced[name] = np.concatenate([old, fresh[count:]])
    return replace(new, **spliced)


def chunk_points(config: StreamConfig, codes: Iterable[int]) -> Iterable[tuple[list[int], bool]]:
    """(codes so far, final) at each point where a chunk is cut: after `first_tokens`, every
    `every_tokens` more, and once at the end."""
    so_far: list[int] = []
    next_cut = config.first_tokens
    for code in codes:
        so_far.append(code)
        if len(so_far) == next_cut:
            yield list(so_far), False
            next_cut += config.every_tokens
    yield so_far, True


def stream_frames(
    config: StreamConfig,
    codes: Iterable[int],
    decode: Callable[[np.ndarray], np.ndarray],
    on_frames: Callable[[np.ndarray, bool], None],
) -> tuple[np.ndarray, np.ndarray]:
    """Decode `codes` as they come, calling `on_frames(committed frames so far, final)` whenever more are
    committed; returns (all codes, all committed frames)."""
    committer = FrameCommitter(config)
    for so_far, final in chunk_points(config, codes):
        if committer.extend(decode(np.asarray(so_far, dtype=np.int64)), final) or final:
            on_frames(committer.frames, final)
    return np.asarray(so_far, dtype=np.int64), committer.frames
