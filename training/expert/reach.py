"""Can the robot's motion tokenizer write the new clips at all?

An expert generates motion tokens; the frozen motion tokenizer turns them into motion. Motions the
tokenizer cannot reconstruct are out of every expert's reach, however long it trains: on the new-scenario
benchmark's fitness clips (jumping jacks, squats, lunges) the shipped tokenizer's reconstruction error
was 2.9 times that on the corpus it was trained on, and no expert beat the base model's R-Precision.
So the expert command measures it first: the root-aligned joint error (MPJPE) of the new held-out clips
through encode and decode, beside the same figure on motions of the scenarios the robot already serves.
"""

from __future__ import annotations

import numpy as np

from motion_agent.model.tokenizer import MotionTokenizer
from training.data.humanml3d import MotionClip
from training.tokenizer.evaluate import joint_errors, reconstruct

REACH_WARNING_RATIO = 1.5  # new clips' MPJPE over the deployed motions' above which the report warns
REFERENCE_CLIPS = 64  # deployed-scenario clips measured for the comparison


def mpjpe_mm(tokenizer: MotionTokenizer, clips: list[MotionClip]) -> float | None:
    """Mean root-aligned joint error of the clips through the tokenizer, in millimetres."""
    errors = [float(np.mean(joint_errors(*reconstruct(tokenizer, clip.features)[:2])[0])) for clip in clips]
    return round(1000.0 * float(np.mean(errors)), 1) if errors else None


def tokenizer_reach(tokenizer: MotionTokenizer, new: list[MotionClip], deployed: list[MotionClip]) -> dict:
    """{new_mpjpe_mm, deployed_mpjpe_mm, ratio, warning}; warning is a sentence, or None."""
    new_mm, known_mm = mpjpe_mm(tokenizer, new), mpjpe_mm(tokenizer, deployed[:REFERENCE_CLIPS])
    ratio = round(new_mm / known_mm, 2) if new_mm is not None and known_mm else None
    warning = None
    if ratio is not None and ratio > REACH_WARNING_RATIO:
        warning = (
            f"the motion tokenizer reconstructs these clips with {new_mm:.0f} mm joint error, {ratio:.1f}x its "
            f"{known_mm:.0f} mm on motions the robot already serves: an expert cannot generate what the tokenizer "
            "cannot write, so expect little gain; a tokenizer (and base model) trained with such motions is the remedy"
        )
    return {"new_mpjpe_mm": new_mm, "deployed_mpjpe_mm": known_mm, "ratio": ratio, "warning": warning}
