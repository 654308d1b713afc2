"""Foot contacts of a human motion, and foot targets that stay still while a foot is planted.

A generated motion's planted foot often slides a little (the decoder does not know about friction); a
robot that copies the slide scuffs its foot or loses balance. So while the human foot is planted, the
robot's foot target is pinned where the plant began, on the floor and flat at the heading it landed
with; after lift-off it glides back to the human foot over `release_s`, so the target never jumps.
"""

from __future__ import annotations

import numpy as np

from motion_agent.motion.robots.config import ContactConfig


def planted(height: np.ndarray, speed: np.ndarray, config: ContactConfig) -> np.ndarray:
    """(T, 2) bool: which feet are planted, from (T, 2) heights of each foot's lowest joint above the
    motion's floor (metres) and (T, 2) horizontal speeds (m/s).

    A foot is planted when it is low and slow. A body on the floor stands on a foot, though: where both
    feet are low and neither is slow (a shuffling or skating gait, as procedural and generated motions
    have), the slower one is planted, so the robot steps instead of skating. Plants shorter than
    `min_frames` are dropped."""
    low = height < config.height_m
    contact = low & (speed < config.speed_m_s)
    unsupported = ~contact.any(axis=1) & low.any(axis=1)
    slower = np.where(low[:, 0] & (~low[:, 1] | (speed[:, 0] <= speed[:, 1])), 0, 1)
    contact[unsupported, slower[unsupported]] = True
    for side in range(contact.shape[1]):
        for start, stop in runs(contact[:, side]):
            if stop - start < config.min_frames:
                contact[start:stop, side] = False
    return contact


def runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) index ranges where `flags` is true."""
    padded = np.concatenate([[False], np.asarray(flags, dtype=bool), [False]])
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    return list(zip(edges[::2].tolist(), edges[1::2].tolist()))


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def pin_feet(
    position: np.ndarray,
    yaw: np.ndarray,
    contact: np.ndarray,
    floor_height: float,
    release_frames: int,
    swing_height: float,
) -> tuple[np.ndarray, np.ndarray]:
    """One foot's targets with every plant pinned: (T, 3) positions and (T,) headings.

    During a plant the target holds the plant's first position (at `floor_height`, the foot's height when
    it stands on the floor) and heading; for `release_frames` frames after it the target blends back to
    the free one. Free targets never go below the floor, and every stretch between plants (a step) lifts
    the foot at least `swing_height` at its middle, so a swing never scuffs the floor."""
    position = position.copy()
    yaw = np.unwrap(yaw)
    position[:, 2] = np.maximum(position[:, 2], floor_height)
    free_position, free_yaw = position.copy(), yaw.copy()
    count = len(position)
    plants = runs(contact)
    for start, stop in plants:
        # where the target is when the plant begins (free, or still gliding back from the last plant)
        anchor = np.array([position[start, 0], position[start, 1], floor_height])
        heading = yaw[start]
        position[start:stop] = anchor
        yaw[start:stop] = heading
        end = min(count, stop + release_frames)
        if end > stop:
            weight = _smoothstep((np.arange(stop, end) - stop + 1) / (release_frames + 1))[:, None]
            position[stop:end] = anchor + weight * (free_position[stop:end] - anchor)
            yaw[stop:end] = heading + weight[:, 0] * (free_yaw[stop:end] - heading)
    for lift, land in runs(~np.asarray(contact, dtype=bool)):
        arc = np.sin(np.pi * (np.arange(lift, land) - lift + 1) / (land - lift + 1))
        position[lift:land, 2] = np.maximum(position[lift:land, 2], floor_height + swing_height * arc)
    return position, yaw


def shift_plant(position: np.ndarray, start: int, stop: int, offset: np.ndarray, release_frames: int) -> None:
    """Move one plant [start, stop) of a foot's (T, 3) targets by `offset` (x, y) in place, and its
    release glide by a share that fades out, so the foot lands where it is rather than where the human's
    is (the robot then never slides to catch up with its own target)."""
    position[start:stop, :2] += offset
    end = min(len(position), stop + release_frames)
    if end > stop:
        fade = 1.0 - _smoothstep((np.arange(stop, end) - stop + 1) / (release_frames + 1))
        position[stop:end, :2] += fade[:, None] * offset
