"""What an action program writes: a `Take` (local axis-angle rotations in the SMPL convention of
`motion_agent.motion.skeleton`, forward/sideways speed, turning rate, height above the ground, whole-body
pitch and roll), the joint indices and axes programs address, and the shared building blocks (`gait`,
`arms_up`). Angle conventions, body facing +Z with its left on +X:
  hips and shoulders swing forward with a negative X angle, knees and elbows bend with X (+ / -),
  arms rise sideways with +Z (left) / -Z (right), the spine bends forward with +X.
The emotion's `Style` scales and shapes every oscillation through `Take.cycle` and `Take.angle`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from training.data.synth.emotions import Style

(
    PELVIS,
    L_HIP,
    R_HIP,
    SPINE1,
    L_KNEE,
    R_KNEE,
    SPINE2,
    L_ANKLE,
    R_ANKLE,
    SPINE3,
    L_FOOT,
    R_FOOT,
    NECK,
    L_COLLAR,
    R_COLLAR,
    HEAD,
    L_SHOULDER,
    R_SHOULDER,
    L_ELBOW,
    R_ELBOW,
    L_WRIST,
    R_WRIST,
) = range(22)
X, Y, Z = 0, 1, 2
HALF_PI, PI = np.pi / 2, np.pi
GRAVITY = 9.81  # m/s^2: flights are ballistic, so take-off speed matches the height reached
MAX_JUMP_HEIGHT = 0.6  # metres; a 0.6 m jump already takes off at 3.4 m/s


@dataclass
class Take:
    """One performance of an action being written: time base, style and the output channels."""

    t: np.ndarray  # seconds, (T,)
    style: Style
    rng: np.random.Generator
    aa: np.ndarray = field(init=False)
    speed: np.ndarray = field(init=False)  # forward, m/s
    side: np.ndarray = field(init=False)  # towards the body's left, m/s
    yaw_rate: np.ndarray = field(init=False)  # rad/s
    air: np.ndarray = field(init=False)  # metres above the grounded height
    pitch: np.ndarray = field(init=False)  # whole-body rotation about X (flips)
    roll: np.ndarray = field(init=False)  # whole-body rotation about Z (cartwheels)

    def __post_init__(self) -> None:
        n = len(self.t)
        self.aa = np.zeros((n, 22, 3))
        self.speed, self.side, self.yaw_rate, self.air, self.pitch, self.roll = (np.zeros(n) for _ in range(6))
        self.offset = self.rng.uniform(0, 2 * np.pi)  # where in its cycle the performer starts

    @property
    def u(self) -> np.ndarray:
        """Normalised time, 0 at the first frame and 1 at the last."""
        return self.t / max(self.t[-1], 1e-9)

    def cycle(self, hz: float, phase: float = 0.0) -> np.ndarray:
        """An oscillation in [-1, 1] at `hz` x tempo, squared off or softened by the style."""
        s = np.sin(2 * np.pi * hz * self.style.tempo * self.t + self.offset + phase)
        return np.sign(s) * np.abs(s) ** self.style.sharpness

    def pulse(self, start: float, end: float) -> np.ndarray:
        """0 -> 1 -> 0 over the normalised time span [start, end], smooth at both ends."""
        x = np.clip((self.u - start) / max(end - start, 1e-6), 0, 1)
        return np.sin(np.pi * x) ** 2

    def ramp(self, start: float, end: float) -> np.ndarray:
        """0 -> 1 over [start, end] and held, with zero speed at both ends."""
        x = np.clip((self.u - start) / max(end - start, 1e-6), 0, 1)
        return x * x * (3 - 2 * x)

    def angle(self, joint: int, axis: int, value: np.ndarray | float) -> None:
        """Add an action angle, scaled by the style's amplitude."""
        self.aa[:, joint, axis] += self.style.amplitude * value

    def hops(self, hz: float, height: float, duty: float = 0.4) -> np.ndarray:
        """Repeated ballistic jumps: sets `air` and returns a crouch signal for the legs."""
        period = 1.0 / (hz * self.style.tempo)
        wanted = 2 * np.sqrt(2 * min(height * self.style.amplitude, MAX_JUMP_HEIGHT) / GRAVITY)
        duty = min(duty, wanted / period)
        phase = np.mod(self.t / period + self.offset / (2 * np.pi), 1.0)
        time_in_air = np.clip(phase - (1 - duty), 0, None) * period
        self.air += np.where(time_in_air > 0, GRAVITY / 2 * time_in_air * (duty * period - time_in_air), 0.0)
        return np.exp(-(((phase - (1 - duty) * 0.6) / 0.12) ** 2))

    def flight(self, center: float, height: float) -> tuple[float, float]:
        """One ballistic flight peaking at normalised time `center`; returns its span in normalised time."""
        duration = 2 * np.sqrt(2 * height / GRAVITY)
        start = self.t[-1] * center - duration / 2
        time_in_air = np.clip(self.t - start, 0, duration)
        self.air += GRAVITY / 2 * time_in_air * (duration - time_in_air)
        return start / self.t[-1], (start + duration) / self.t[-1]


def gait(
    k: Take, hz: float, speed: float, stride: float = 0.45, knee: float = 0.6, arms: float = 0.35, elbow: float = 0.3
) -> None:
    """A walking-family cycle: legs in antiphase, arms opposite to the legs."""
    swing = k.cycle(hz)
    k.angle(L_HIP, X, -stride * swing)
    k.angle(R_HIP, X, stride * swing)
    k.angle(L_KNEE, X, 0.1 + knee * np.clip(k.cycle(hz, 1.2), 0, None))
    k.angle(R_KNEE, X, 0.1 + knee * np.clip(k.cycle(hz, 1.2 + PI), 0, None))
    k.angle(L_SHOULDER, X, arms * swing)
    k.angle(R_SHOULDER, X, -arms * swing)
    k.aa[:, [L_ELBOW, R_ELBOW], X] -= elbow
    k.speed += speed * k.style.tempo * k.style.amplitude**0.5


def arms_up(k: Take, lift: np.ndarray | float, spread: float = 0.0) -> None:
    """Raise both arms sideways by `lift` radians (pi: straight overhead)."""
    k.angle(L_SHOULDER, Z, lift + spread)
    k.angle(R_SHOULDER, Z, -lift - spread)
