"""Action programs: joint-angle trajectories, travel and flight for 43 actions in 8 scenarios, and the
registry of actions by scenario. Each program fills a `take.Take`; the emotion's `Style` shapes it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from training.data.synth.take import (
    HALF_PI,
    HEAD,
    L_ANKLE,
    L_COLLAR,
    L_ELBOW,
    L_HIP,
    L_KNEE,
    L_SHOULDER,
    MAX_JUMP_HEIGHT,
    PI,
    R_ANKLE,
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
    gait,
)

# --- daily life -------------------------------------------------------------------------------


def walk(k: Take) -> None:
    gait(k, hz=0.9, speed=1.2)


def turn(k: Take) -> None:
    gait(k, hz=0.9, speed=0.25, stride=0.25)
    direction = k.rng.choice([-1.0, 1.0])
    k.yaw_rate += direction * PI / max(k.t[-1] * 0.6, 1e-6) * k.pulse(0.1, 0.9) * 2


def sit_down(k: Take) -> None:
    down = k.ramp(0.15, 0.55)
    k.angle(L_HIP, X, -1.5 * down)
    k.angle(R_HIP, X, -1.5 * down)
    k.angle(L_KNEE, X, 1.5 * down)
    k.angle(R_KNEE, X, 1.5 * down)
    k.angle(SPINE1, X, 0.3 * k.pulse(0.1, 0.6))
    k.angle(L_SHOULDER, X, -0.3 * down)
    k.angle(R_SHOULDER, X, -0.3 * down)


def wave(k: Take) -> None:
    up = k.ramp(0.05, 0.25) * (1 - k.ramp(0.8, 0.98))
    k.angle(R_SHOULDER, Z, -2.5 * up)
    k.angle(R_ELBOW, Z, -(0.5 + 0.45 * k.cycle(1.6)) * up)
    k.angle(HEAD, Y, -0.2 * up)


def bow(k: Take) -> None:
    down = k.pulse(0.15, 0.85)
    for joint in (SPINE1, SPINE2, SPINE3):
        k.angle(joint, X, 0.35 * down)
    k.angle(L_HIP, X, -0.4 * down)
    k.angle(R_HIP, X, -0.4 * down)
    k.angle(HEAD, X, 0.3 * down)
    k.angle(R_SHOULDER, X, -0.6 * down)
    k.angle(R_ELBOW, X, -1.2 * down)


def pick_up(k: Take) -> None:
    down = k.pulse(0.1, 0.9)
    k.angle(L_HIP, X, -1.1 * down)
    k.angle(R_HIP, X, -1.1 * down)
    k.angle(L_KNEE, X, 1.6 * down)
    k.angle(R_KNEE, X, 1.6 * down)
    k.angle(SPINE1, X, 0.5 * down)
    k.angle(SPINE2, X, 0.3 * down)
    k.angle(L_SHOULDER, X, -1.0 * down)
    k.angle(R_SHOULDER, X, -1.0 * down)


# --- sports -------------------------------------------------------------------------------------


def jog(k: Take) -> None:
    gait(k, hz=1.4, speed=2.6, stride=0.6, knee=1.2, arms=0.6, elbow=1.3)


def kick(k: Take) -> None:
    kicks = np.clip(k.cycle(0.6), 0, None)
    k.angle(R_HIP, X, -1.3 * kicks)
    k.angle(R_KNEE, X, 0.9 * (1 - kicks) * np.clip(k.cycle(0.6, -0.8), 0, None))
    k.angle(L_SHOULDER, Z, 0.6 * kicks)
    k.angle(R_SHOULDER, X, 0.5 * kicks)
    k.angle(SPINE1, X, -0.2 * kicks)


def throw(k: Take) -> None:
    wind = k.cycle(0.5)
    k.angle(R_SHOULDER, Z, -1.6)
    k.angle(R_SHOULDER, X, 1.0 * wind)
    k.angle(R_ELBOW, X, -0.8 - 0.5 * wind)
    k.angle(SPINE2, Y, -0.4 * wind)
    k.angle(L_SHOULDER, X, -0.7 * np.clip(wind, 0, None))
    k.angle(R_HIP, X, 0.2 * wind)
    k.angle(L_HIP, X, -0.3 * wind)


def punch(k: Take) -> None:
    left = np.clip(k.cycle(1.0), 0, None)
    right = np.clip(k.cycle(1.0, PI), 0, None)
    for shoulder, elbow, jab in ((L_SHOULDER, L_ELBOW, left), (R_SHOULDER, R_ELBOW, right)):
        k.angle(shoulder, X, -0.6 - 0.9 * jab)
        k.angle(elbow, X, -2.0 + 1.8 * jab)
    k.angle(SPINE2, Y, 0.3 * (left - right))
    k.angle(L_KNEE, X, 0.25)
    k.angle(R_KNEE, X, 0.25)


def stretch(k: Take) -> None:
    up = k.ramp(0.05, 0.3)
    arms_up(k, 2.8 * up)
    k.angle(SPINE2, Z, 0.35 * k.cycle(0.25) * up)
    k.angle(SPINE3, Z, 0.2 * k.cycle(0.25) * up)


# --- dance --------------------------------------------------------------------------------------


def spin(k: Take) -> None:
    direction = k.rng.choice([-1.0, 1.0])
    k.yaw_rate += direction * 2 * PI / 1.4 * k.style.tempo * k.ramp(0.05, 0.2)
    arms_up(k, 1.4)
    k.angle(L_HIP, X, -0.3 * np.clip(k.cycle(1.0), 0, None))
    k.angle(R_HIP, X, -0.3 * np.clip(k.cycle(1.0, PI), 0, None))


def sway(k: Take) -> None:
    s = k.cycle(0.5)
    k.side += 0.4 * s
    k.angle(SPINE1, Z, 0.2 * s)
    k.angle(SPINE3, Z, -0.15 * s)
    arms_up(k, 0.5 + 0.3 * s)
    k.angle(L_KNEE, X, 0.2 + 0.2 * np.clip(s, 0, None))
    k.angle(R_KNEE, X, 0.2 + 0.2 * np.clip(-s, 0, None))


def disco_point(k: Take) -> None:
    s = k.cycle(0.8)
    k.angle(R_SHOULDER, Z, -1.4 - 1.0 * s)
    k.angle(R_SHOULDER, X, -0.5)
    k.angle(L_SHOULDER, X, -0.3)
    k.angle(L_ELBOW, X, -1.2)
    k.angle(SPINE1, Z, 0.15 * s)
    k.angle(L_KNEE, X, 0.3 * np.clip(s, 0, None))


def step_touch(k: Take) -> None:
    s = k.cycle(0.7)
    k.side += 0.6 * s
    k.angle(L_HIP, Z, 0.3 * np.clip(s, 0, None))
    k.angle(R_HIP, Z, -0.3 * np.clip(-s, 0, None))
    k.angle(L_SHOULDER, X, -0.8 * np.clip(s, 0, None))
    k.angle(R_SHOULDER, X, -0.8 * np.clip(-s, 0, None))
    k.angle(L_ELBOW, X, -1.0)
    k.angle(R_ELBOW, X, -1.0)


def shimmy(k: Take) -> None:
    k.angle(SPINE3, Y, 0.35 * k.cycle(2.5))
    k.angle(L_COLLAR, Z, 0.2 * k.cycle(2.5))
    k.angle(R_COLLAR, Z, 0.2 * k.cycle(2.5))
    k.angle(L_KNEE, X, 0.5)
    k.angle(R_KNEE, X, 0.5)
    k.angle(L_HIP, X, -0.4)
    k.angle(R_HIP, X, -0.4)
    arms_up(k, 0.7)


# --- shows --------------------------------------------------------------------------------------


def present(k: Take) -> None:
    open_ = k.pulse(0.1, 0.9)
    k.angle(L_SHOULDER, X, -0.7 * open_)
    k.angle(R_SHOULDER, X, -0.7 * open_)
    arms_up(k, 1.2 * open_)
    k.angle(SPINE1, X, 0.25 * k.pulse(0.55, 0.95))
    k.angle(HEAD, X, -0.2 * open_)


def salute(k: Take) -> None:
    up = k.ramp(0.1, 0.3) * (1 - k.ramp(0.75, 0.95))
    k.angle(R_SHOULDER, Z, -1.5 * up)
    k.angle(R_SHOULDER, X, -0.4 * up)
    k.angle(R_ELBOW, Y, 2.2 * up)
    k.angle(HEAD, X, -0.1 * up)


def march(k: Take) -> None:
    gait(k, hz=0.9, speed=0.7, stride=0.3, knee=0.3, arms=0.8, elbow=0.1)
    k.angle(L_HIP, X, -1.0 * np.clip(k.cycle(0.9, PI), 0, None))
    k.angle(R_HIP, X, -1.0 * np.clip(k.cycle(0.9), 0, None))
    k.angle(L_KNEE, X, 1.4 * np.clip(k.cycle(0.9, PI), 0, None))
    k.angle(R_KNEE, X, 1.4 * np.clip(k.cycle(0.9), 0, None))


def cheer(k: Take) -> None:
    crouch = k.hops(1.1, 0.12)
    arms_up(k, 2.6)
    k.angle(L_ELBOW, Z, 0.7 * np.clip(k.cycle(1.1), 0, None))
    k.angle(R_ELBOW, Z, -0.7 * np.clip(k.cycle(1.1), 0, None))
    k.angle(L_KNEE, X, 0.8 * crouch)
    k.angle(R_KNEE, X, 0.8 * crouch)
    k.angle(L_HIP, X, -0.5 * crouch)
    k.angle(R_HIP, X, -0.5 * crouch)


def clap(k: Take) -> None:
    s = k.cycle(1.5)
    k.angle(L_SHOULDER, X, -1.1)
    k.angle(R_SHOULDER, X, -1.1)
    k.angle(L_SHOULDER, Z, 0.35 + 0.3 * s)
    k.angle(R_SHOULDER, Z, -0.35 - 0.3 * s)
    k.angle(L_ELBOW, X, -0.7)
    k.angle(R_ELBOW, X, -0.7)


def juggle(k: Take) -> None:
    for elbow, shoulder, phase in ((L_ELBOW, L_SHOULDER, 0.0), (R_ELBOW, R_SHOULDER, PI)):
        k.angle(shoulder, X, -0.4 - 0.25 * k.cycle(1.8, phase))
        k.angle(elbow, X, -1.4 - 0.4 * k.cycle(1.8, phase))
    k.angle(HEAD, X, -0.35)


# --- game ---------------------------------------------------------------------------------------


def jump(k: Take) -> None:
    crouch = k.hops(0.8, 0.35)
    k.angle(L_HIP, X, -0.9 * crouch)
    k.angle(R_HIP, X, -0.9 * crouch)
    k.angle(L_KNEE, X, 1.5 * crouch)
    k.angle(R_KNEE, X, 1.5 * crouch)
    k.angle(L_SHOULDER, X, 0.8 * crouch - 1.2 * (k.air > 0.05))
    k.angle(R_SHOULDER, X, 0.8 * crouch - 1.2 * (k.air > 0.05))


def crouch(k: Take) -> None:
    down = k.ramp(0.1, 0.4) * (1 - k.ramp(0.8, 1.0))
    k.angle(L_HIP, X, -1.3 * down)
    k.angle(R_HIP, X, -1.3 * down)
    k.angle(L_KNEE, X, 2.0 * down)
    k.angle(R_KNEE, X, 2.0 * down)
    k.angle(SPINE1, X, 0.4 * down)
    k.angle(L_SHOULDER, X, -0.6 * down)
    k.angle(R_SHOULDER, X, -0.6 * down)


def dodge(k: Take) -> None:
    s = k.cycle(0.6)
    k.side += 1.0 * s
    k.angle(SPINE1, Z, -0.35 * s)
    k.angle(L_KNEE, X, 0.5)
    k.angle(R_KNEE, X, 0.5)
    k.angle(L_HIP, X, -0.4)
    k.angle(R_HIP, X, -0.4)
    k.angle(L_SHOULDER, X, -0.5)
    k.angle(R_SHOULDER, X, -0.5)


def aim(k: Take) -> None:
    k.angle(L_SHOULDER, X, -1.5)
    k.angle(R_SHOULDER, X, -1.3)
    k.angle(R_SHOULDER, Z, 0.3)
    k.angle(R_ELBOW, X, -1.6)
    k.angle(HEAD, Z, 0.15)
    k.yaw_rate += 0.5 * k.cycle(0.2)


def sneak(k: Take) -> None:
    gait(k, hz=0.5, speed=0.5, stride=0.35, knee=0.5, arms=0.1, elbow=1.0)
    k.angle(L_KNEE, X, 0.6)
    k.angle(R_KNEE, X, 0.6)
    k.angle(SPINE1, X, 0.4)
    k.angle(L_SHOULDER, X, -0.6)
    k.angle(R_SHOULDER, X, -0.6)


# --- animation ----------------------------------------------------------------------------------


def tiptoe(k: Take) -> None:
    gait(k, hz=1.3, speed=0.5, stride=0.2, knee=0.3, arms=0.1, elbow=1.6)
    k.angle(L_ANKLE, X, 0.6)
    k.angle(R_ANKLE, X, 0.6)
    k.angle(L_SHOULDER, Z, 0.4)
    k.angle(R_SHOULDER, Z, -0.4)


def stomp(k: Take) -> None:
    gait(k, hz=0.6, speed=0.6, stride=0.3, knee=0.2, arms=0.2, elbow=0.8)
    k.angle(L_HIP, X, -1.1 * np.clip(k.cycle(0.6, PI), 0, None) ** 2)
    k.angle(R_HIP, X, -1.1 * np.clip(k.cycle(0.6), 0, None) ** 2)
    k.angle(L_KNEE, X, 1.2 * np.clip(k.cycle(0.6, PI), 0, None) ** 2)
    k.angle(R_KNEE, X, 1.2 * np.clip(k.cycle(0.6), 0, None) ** 2)


def flap(k: Take) -> None:
    arms_up(k, 1.2 + 0.9 * k.cycle(1.6))
    k.angle(HEAD, X, -0.2 * k.cycle(1.6))
    k.angle(L_KNEE, X, 0.2 + 0.2 * k.cycle(1.6))
    k.angle(R_KNEE, X, 0.2 + 0.2 * k.cycle(1.6))


def robot_walk(k: Take) -> None:
    square = np.sign(k.cycle(0.7))
    k.angle(L_HIP, X, -0.35 * square)
    k.angle(R_HIP, X, 0.35 * square)
    k.angle(L_SHOULDER, X, 0.6 * square)
    k.angle(R_SHOULDER, X, -0.6 * square)
    k.angle(L_ELBOW, X, -HALF_PI)
    k.angle(R_ELBOW, X, -HALF_PI)
    k.angle(HEAD, Y, 0.4 * np.sign(k.cycle(0.25)))
    k.speed += 0.6 * k.style.tempo


def zombie_walk(k: Take) -> None:
    gait(k, hz=0.45, speed=0.4, stride=0.25, knee=0.2, arms=0.0, elbow=0.0)
    k.angle(L_SHOULDER, X, -1.5)
    k.angle(R_SHOULDER, X, -1.5)
    k.angle(HEAD, Z, 0.4)
    k.angle(SPINE2, Z, 0.1 * k.cycle(0.45))


# --- instrument play ----------------------------------------------------------------------------


def drum(k: Take) -> None:
    k.angle(L_SHOULDER, X, -0.5)
    k.angle(R_SHOULDER, X, -0.5)
    k.angle(L_ELBOW, X, -1.3 - 0.5 * k.cycle(2.0))
    k.angle(R_ELBOW, X, -1.3 - 0.5 * k.cycle(2.0, PI))
    k.angle(HEAD, X, 0.15 + 0.1 * k.cycle(1.0))
    k.angle(L_KNEE, X, 0.2)
    k.angle(R_KNEE, X, 0.2)


def guitar(k: Take) -> None:
    k.angle(L_SHOULDER, X, -0.6)
    k.angle(L_SHOULDER, Z, 0.8)
    k.angle(L_ELBOW, X, -1.0)
    k.angle(R_SHOULDER, X, -0.3)
    k.angle(R_ELBOW, X, -1.4 - 0.3 * k.cycle(3.0))
    k.angle(HEAD, X, 0.35)
    k.angle(L_KNEE, X, 0.15 + 0.15 * np.clip(k.cycle(1.0), 0, None))


def violin(k: Take) -> None:
    k.angle(L_SHOULDER, X, -1.2)
    k.angle(L_SHOULDER, Z, 0.5)
    k.angle(L_ELBOW, X, -1.6)
    k.angle(HEAD, Z, 0.4)
    k.angle(R_SHOULDER, Z, -0.8 - 0.4 * k.cycle(0.8))
    k.angle(R_SHOULDER, X, -0.6)
    k.angle(R_ELBOW, X, -0.8 - 0.6 * k.cycle(0.8))
    k.angle(SPINE2, Y, 0.1 * k.cycle(0.4))


def piano(k: Take) -> None:
    k.angle(L_SHOULDER, X, -0.9)
    k.angle(R_SHOULDER, X, -0.9)
    k.angle(L_ELBOW, X, -0.9)
    k.angle(R_ELBOW, X, -0.9)
    k.angle(L_SHOULDER, Z, 0.25 * k.cycle(0.5) + 0.1 * k.cycle(4.0))
    k.angle(R_SHOULDER, Z, 0.25 * k.cycle(0.5) - 0.1 * k.cycle(4.0, 1.0))
    k.angle(SPINE1, Z, 0.1 * k.cycle(0.5))
    k.angle(HEAD, X, 0.3)


def trumpet(k: Take) -> None:
    k.angle(L_SHOULDER, X, -1.1)
    k.angle(R_SHOULDER, X, -1.1)
    k.angle(L_ELBOW, X, -2.0)
    k.angle(R_ELBOW, X, -2.0)
    k.angle(HEAD, X, -0.25 + 0.1 * k.cycle(1.0))
    k.angle(SPINE2, X, -0.15 + 0.1 * k.cycle(0.5))
    k.angle(L_KNEE, X, 0.2 + 0.15 * np.clip(k.cycle(1.0), 0, None))
    k.angle(R_KNEE, X, 0.2 + 0.15 * np.clip(k.cycle(1.0), 0, None))


# --- acrobatics ---------------------------------------------------------------------------------


def cartwheel(k: Take) -> None:
    direction = k.rng.choice([-1.0, 1.0])
    k.roll += 2 * PI * k.ramp(0.2, 0.8) * direction
    k.side -= 1.2 * k.pulse(0.2, 0.8) * direction
    arms_up(k, 2.8 * k.pulse(0.1, 0.9))
    k.angle(L_HIP, Z, 0.6 * k.pulse(0.15, 0.85))
    k.angle(R_HIP, Z, -0.6 * k.pulse(0.15, 0.85))


def backflip(k: Take) -> None:
    start, end = k.flight(0.5, float(np.clip(0.6 * k.style.amplitude, 0.4, MAX_JUMP_HEIGHT)))
    crouch = k.pulse(start - 0.25, start + 0.02)
    k.pitch -= 2 * PI * k.ramp(start + 0.02, end - 0.02)
    tuck = k.pulse(start, end)
    for hip, knee in ((L_HIP, L_KNEE), (R_HIP, R_KNEE)):
        k.angle(hip, X, -1.0 * crouch - 1.6 * tuck)
        k.angle(knee, X, 1.5 * crouch + 2.0 * tuck)
    arms_up(k, 2.6 * k.pulse(0.25, 0.5))


def handstand(k: Take) -> None:
    up = k.ramp(0.05, 0.45) * (1 - k.ramp(0.6, 0.98))
    k.pitch += PI * up
    arms_up(k, 2.9 * k.ramp(0.05, 0.25) * (1 - k.ramp(0.8, 1.0)))
    k.angle(L_HIP, X, -0.3 * k.cycle(0.4) * up)
    k.angle(R_HIP, X, 0.3 * k.cycle(0.4) * up)


def forward_roll(k: Take) -> None:
    tuck = k.pulse(0.05, 0.95)
    k.pitch += 2 * PI * k.ramp(0.25, 0.75)
    k.speed += 1.0 * k.pulse(0.25, 0.75)
    for hip, knee in ((L_HIP, L_KNEE), (R_HIP, R_KNEE)):
        k.angle(hip, X, -1.8 * tuck)
        k.angle(knee, X, 2.2 * tuck)
    k.angle(SPINE1, X, 0.5 * tuck)
    k.angle(HEAD, X, 0.6 * tuck)


def split_jump(k: Take) -> None:
    crouch = k.hops(0.6, 0.4, duty=0.5)
    spread = np.clip(k.air / max(k.air.max(), 1e-6), 0, 1)
    k.angle(L_HIP, X, -1.3 * spread - 0.8 * crouch)
    k.angle(R_HIP, X, 1.0 * spread - 0.8 * crouch)
    k.angle(L_KNEE, X, 1.2 * crouch)
    k.angle(R_KNEE, X, 1.2 * crouch + 0.3 * spread)
    arms_up(k, 1.5 * spread + 0.3)


@dataclass(frozen=True)
class Action:
    name: str
    scenario: str
    program: Callable[[Take], None]


SCENARIOS: dict[str, tuple[Callable[[Take], None], ...]] = {
    "daily_life": (walk, turn, sit_down, wave, bow, pick_up),
    "sports": (jog, kick, throw, punch, stretch),
    "dance": (spin, sway, disco_point, step_touch, shimmy),
    "shows": (present, salute, march, cheer, clap, juggle),
    "game": (jump, crouch, dodge, aim, sneak),
    "animation": (tiptoe, stomp, flap, robot_walk, zombie_walk),
    "instrument_play": (drum, guitar, violin, piano, trumpet),
    "acrobatics": (cartwheel, backflip, handstand, forward_roll, split_jump),
}
ACTIONS: dict[str, Action] = {
    program.__name__: Action(program.__name__, scenario, program)
    for scenario, programs in SCENARIOS.items()
    for program in programs
}
