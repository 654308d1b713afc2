"""Scenarios outside the corpus: no embedded model has seen their motions or their words.

Corpus v1 (`actions.SCENARIOS`) is what every shipped base model and expert was trained on, so a
scenario taken from it is not new to a deployed robot: its base model already performs it. The
scenarios here stand in for a team's own clips of something the robot has never done: the
new-scenario benchmark writes them as motion files with captions (`corpus.CorpusConfig(scenarios=...)`,
then `clips.export_scenario_clips`), and an evaluator that scores them is trained on a corpus that holds
them beside the v1 scenarios. `gestures` (arm and head gestures) lies within the shipped motion
tokenizer's reach; `fitness` (jumping jacks, squats, lunges: legs spread and deep knee bends the corpus
never has) does not, and shows what `training.expert.reach` warns about.
"""

from __future__ import annotations

import numpy as np

from training.data.synth.actions import Action
from training.data.synth.take import (
    HEAD,
    L_COLLAR,
    L_ELBOW,
    L_HIP,
    L_KNEE,
    L_SHOULDER,
    R_COLLAR,
    R_ELBOW,
    R_HIP,
    R_KNEE,
    R_SHOULDER,
    SPINE1,
    SPINE2,
    SPINE3,
    Take,
    X,
    Y,
    Z,
    arms_up,
)

# --- fitness ------------------------------------------------------------------------------------


def jumping_jacks(k: Take) -> None:
    """Hop while the arms swing overhead and the legs apart, then both back in."""
    crouch = k.hops(hz=1.0, height=0.12)
    spread = 0.5 * (1 + k.cycle(1.0))
    arms_up(k, 2.6 * spread)
    k.angle(L_HIP, Z, 0.35 * spread)
    k.angle(R_HIP, Z, -0.35 * spread)
    k.angle(L_KNEE, X, 0.4 * crouch)
    k.angle(R_KNEE, X, 0.4 * crouch)


def squat(k: Take) -> None:
    """Deep squats in a row, arms reaching forward as the hips go down."""
    down = 0.5 * (1 - k.cycle(0.5))
    k.angle(L_HIP, X, -1.4 * down)
    k.angle(R_HIP, X, -1.4 * down)
    k.angle(L_KNEE, X, 1.7 * down)
    k.angle(R_KNEE, X, 1.7 * down)
    k.angle(SPINE1, X, 0.3 * down)
    k.angle(L_SHOULDER, X, -1.4 * down)
    k.angle(R_SHOULDER, X, -1.4 * down)


def lunge(k: Take) -> None:
    """Lunges in place, one leg forward then the other, hands on the hips."""
    wave = k.cycle(0.4)
    for sign, (hip, knee, other_hip, other_knee) in (
        (1.0, (L_HIP, L_KNEE, R_HIP, R_KNEE)),
        (-1.0, (R_HIP, R_KNEE, L_HIP, L_KNEE)),
    ):
        front = np.clip(sign * wave, 0, None)
        k.angle(hip, X, -1.1 * front)
        k.angle(knee, X, 1.3 * front)
        k.angle(other_hip, X, 0.4 * front)
        k.angle(other_knee, X, 1.1 * front)
    k.angle(L_SHOULDER, Z, 0.5)
    k.angle(R_SHOULDER, Z, -0.5)
    k.angle(L_ELBOW, X, -1.4)
    k.angle(R_ELBOW, X, -1.4)


def arm_circles(k: Take) -> None:
    """Arms held out to the sides, drawing small circles."""
    arms_up(k, 1.5)
    k.angle(L_SHOULDER, X, 0.35 * k.cycle(1.2))
    k.angle(R_SHOULDER, X, 0.35 * k.cycle(1.2))
    k.angle(L_SHOULDER, Z, 0.3 * k.cycle(1.2, np.pi / 2))
    k.angle(R_SHOULDER, Z, -0.3 * k.cycle(1.2, np.pi / 2))


def toe_touch(k: Take) -> None:
    """Bend down to the toes, then stand and reach overhead, again and again."""
    wave = k.cycle(0.4)
    down, up = np.clip(wave, 0, None), np.clip(-wave, 0, None)
    k.pitch += 1.2 * down  # the body folds forward at the hips: the legs stay upright
    for joint in (SPINE1, SPINE2, SPINE3):
        k.angle(joint, X, 0.15 * down)
    k.aa[:, [L_HIP, R_HIP], X] -= 1.2 * down[:, None]  # not scaled by the style: it undoes the pitch
    k.angle(L_SHOULDER, X, -1.2 * down)
    k.angle(R_SHOULDER, X, -1.2 * down)
    arms_up(k, 2.8 * up)


# --- gestures: what people do with their arms and head while they talk -----------------------------


def beckon(k: Take) -> None:
    """The right arm held forward, the hand curling in again and again: come here."""
    up = k.ramp(0.05, 0.2) * (1 - k.ramp(0.85, 1.0))
    k.angle(R_SHOULDER, X, -1.2 * up)
    k.angle(R_ELBOW, X, -(0.3 + 0.9 * np.clip(k.cycle(1.2), 0, None)) * up)
    k.angle(HEAD, X, -0.1 * up)


def shrug(k: Take) -> None:
    """Shoulders up, forearms forward and out, palms up; and down again."""
    lift = np.clip(k.cycle(0.5), 0, None)
    k.angle(L_COLLAR, Z, 0.35 * lift)
    k.angle(R_COLLAR, Z, -0.35 * lift)
    k.angle(L_SHOULDER, Z, 0.4 * lift)
    k.angle(R_SHOULDER, Z, -0.4 * lift)
    k.angle(L_ELBOW, X, -1.3 * lift)
    k.angle(R_ELBOW, X, -1.3 * lift)
    k.angle(HEAD, Z, 0.2 * lift)


def cross_arms(k: Take) -> None:
    """Both forearms folded across the chest, held."""
    hold = k.ramp(0.1, 0.3) * (1 - k.ramp(0.85, 1.0))
    k.angle(L_SHOULDER, X, -0.4 * hold)
    k.angle(R_SHOULDER, X, -0.4 * hold)
    k.angle(L_ELBOW, X, -2.0 * hold)  # forearms up in front ...
    k.angle(R_ELBOW, X, -2.0 * hold)
    k.angle(L_SHOULDER, Y, -1.0 * hold)  # ... and swung across the chest
    k.angle(R_SHOULDER, Y, 1.0 * hold)
    k.angle(HEAD, X, -0.1 * hold)


def facepalm(k: Take) -> None:
    """The right hand brought up to the face, the head bowed into it, a slow shake."""
    up = k.ramp(0.1, 0.3) * (1 - k.ramp(0.8, 0.98))
    k.angle(R_SHOULDER, X, -1.5 * up)
    k.angle(R_SHOULDER, Z, 0.3 * up)
    k.angle(R_ELBOW, X, -2.3 * up)
    k.angle(HEAD, X, 0.35 * up)
    k.angle(HEAD, Y, 0.2 * k.cycle(0.8) * up)


def point_left(k: Take) -> None:
    """The left arm straight out to the side, the head turned to look where it points."""
    up = k.pulse(0.1, 0.9)
    k.angle(L_SHOULDER, Z, 1.5 * up)
    k.angle(L_SHOULDER, X, -0.3 * up)
    k.angle(HEAD, Y, 0.6 * up)
    k.angle(SPINE2, Y, 0.2 * up)


UNSEEN_SCENARIOS = {
    "fitness": (jumping_jacks, squat, lunge, arm_circles, toe_touch),
    "gestures": (beckon, shrug, cross_arms, facepalm, point_left),
}
UNSEEN_ACTIONS: dict[str, Action] = {
    program.__name__: Action(program.__name__, scenario, program)
    for scenario, programs in UNSEEN_SCENARIOS.items()
    for program in programs
}
UNSEEN_VERB_PHRASES: dict[str, tuple[str, ...]] = {
    "jumping_jacks": (
        "does jumping jacks",
        "jumps, opening and closing the arms and legs",
        "does star jumps",
        "does a set of jumping jacks",
    ),
    "squat": ("does squats", "squats down and up with the arms forward", "does a set of squats", "does deep squats"),
    "lunge": (
        "does lunges",
        "lunges forward with one leg, then the other",
        "does alternating lunges with the hands on the hips",
        "does lunges in place",
    ),
    "arm_circles": (
        "does arm circles",
        "circles the arms held out to the sides",
        "rotates the outstretched arms in small circles",
        "makes circles with both arms",
    ),
    "toe_touch": (
        "touches the toes",
        "bends down to touch the toes and reaches up",
        "does toe touches",
        "reaches for the toes, then overhead",
    ),
    "beckon": (
        "beckons someone over",
        "waves someone to come closer",
        "signals come here with the right hand",
        "beckons with a curling hand",
    ),
    "shrug": ("shrugs", "shrugs the shoulders", "shrugs with the palms up", "lifts the shoulders in a shrug"),
    "cross_arms": (
        "crosses the arms",
        "folds the arms over the chest",
        "stands with the arms crossed",
        "crosses both arms in front",
    ),
    "facepalm": ("facepalms", "covers the face with a hand", "puts a hand over the face", "does a facepalm"),
    "point_left": (
        "points to the left",
        "points off to the side with the left arm",
        "shows the way to the left",
        "points left",
    ),
}
