"""Emotions as movement styles: how people move when happy, sad, angry, fearful or surprised.

Each emotion changes posture (spine lean, head pitch, shoulder height, knee bend), amplitude, tempo,
smoothness and tremor, following the qualities reported in studies of emotional gait and gesture:
sad motion is slow, small, smooth and slumped with the head down; angry motion is fast, large and
jerky with a forward lean; fear pulls the body in, raises the shoulders and adds tremor; happiness is
upright, bouncy and expansive; surprise leans back with the head up and the arms flung out early on.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np


@dataclass(frozen=True)
class Style:
    """Movement qualities an action program reads; angles in radians, lengths in metres."""

    amplitude: float = 1.0  # scales every joint excursion of the action
    tempo: float = 1.0  # scales frequencies and travel speed
    lean: float = 0.0  # forward spine flexion (negative leans back)
    head_pitch: float = 0.0  # positive looks down
    shrug: float = 0.0  # shoulder (collar) elevation
    knee_bend: float = 0.0  # constant knee flexion (a guarded, lowered stance)
    arms_in: float = 0.0  # arms pulled towards the body (negative: spread out)
    sharpness: float = 1.0  # exponent on oscillations: < 1 jerky and square, > 1 soft
    tremor: float = 0.0  # amplitude of 6-10 Hz shaking of arms and head
    bounce: float = 0.0  # vertical bob of the whole body
    startle: float = 0.0  # arms flung up and out at the start of the motion

    def jittered(self, rng: np.random.Generator, spread: float) -> Style:
        """The same emotion acted by another person: every quality varies a little."""

        def vary(value: float, scale: float) -> float:
            return float(value + rng.normal(0.0, spread * scale))

        return replace(
            self,
            amplitude=max(0.3, vary(self.amplitude, 0.5)),
            tempo=max(0.4, vary(self.tempo, 0.5)),
            lean=vary(self.lean, 0.3),
            head_pitch=vary(self.head_pitch, 0.3),
            shrug=vary(self.shrug, 0.2),
            knee_bend=max(0.0, vary(self.knee_bend, 0.2)),
            arms_in=vary(self.arms_in, 0.2),
            sharpness=float(np.clip(vary(self.sharpness, 0.4), 0.5, 2.5)),
            tremor=max(0.0, vary(self.tremor, 0.05)),
            bounce=max(0.0, vary(self.bounce, 0.03)),
            startle=max(0.0, vary(self.startle, 0.3)),
        )


EMOTIONS: dict[str, Style] = {
    "neutral": Style(),
    "happy": Style(amplitude=1.25, tempo=1.2, lean=-0.08, head_pitch=-0.18, arms_in=-0.15, bounce=0.035),
    "sad": Style(amplitude=0.55, tempo=0.7, lean=0.38, head_pitch=0.5, shrug=-0.12, sharpness=1.7),
    "angry": Style(amplitude=1.35, tempo=1.25, lean=0.18, head_pitch=0.1, shrug=0.2, sharpness=0.55),
    "fearful": Style(
        amplitude=0.7, tempo=1.05, lean=0.2, head_pitch=0.22, shrug=0.38, knee_bend=0.35, arms_in=0.35, tremor=0.05
    ),
    "surprised": Style(amplitude=1.1, tempo=1.0, lean=-0.22, head_pitch=-0.3, shrug=0.15, arms_in=-0.2, startle=1.0),
}
