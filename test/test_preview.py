"""The 3D previews as a person reads them: the pictures are opened and their pixels checked, so the
tests hold what a reader relies on (left and right told apart by colour, the figure filling the view,
the key frames side by side), not how matplotlib was called."""

import numpy as np
import pytest
from matplotlib.colors import to_rgb
from PIL import Image

from motion_agent.motion.demo import demo_motion
from motion_agent.motion.preview import (
    CENTRE,
    DEFAULT_STYLE,
    LEFT,
    RIGHT,
    SMPL_BODY,
    Body,
    write_gif,
    write_keyframes,
)

SMPL_LEFT = (1, 4, 7, 10, 13, 16, 18, 20)  # left_hip ... left_wrist, from motion_agent.motion.skeleton
SMPL_RIGHT = (2, 5, 8, 11, 14, 17, 19, 21)
TOLERANCE = 40  # of each RGB channel: GIF palettes and anti-aliasing shift colours a little


def colour_mask(image: np.ndarray, colour: str) -> np.ndarray:
    target = np.array(to_rgb(colour)) * 255
    return (np.abs(image[..., :3].astype(float) - target) <= TOLERANCE).all(axis=-1)


def gif_frames(path) -> list[np.ndarray]:
    with Image.open(path) as gif:
        frames = []
        for index in range(gif.n_frames):
            gif.seek(index)
            frames.append(np.asarray(gif.convert("RGB")))
        return frames


def test_smpl_bones_take_the_side_of_the_joint_they_end_at():
    sides = dict(zip((child for _, child in SMPL_BODY.bones), SMPL_BODY.sides))
    assert {j for j, s in sides.items() if s == LEFT} == set(SMPL_LEFT)
    assert {j for j, s in sides.items() if s == RIGHT} == set(SMPL_RIGHT)
    assert {j for j, s in sides.items() if s == CENTRE} == {3, 6, 9, 12, 15}
    assert len({DEFAULT_STYLE.colour(s) for s in (LEFT, RIGHT, CENTRE)}) == 3


@pytest.mark.parametrize("kind", ["jump", "walk"])
def test_gif_draws_left_and_right_limbs_in_their_colours_and_the_figure_fills_the_view(tmp_path, kind):
    """A jump in place and a walk across the floor both fill the picture, and every frame shows both
    sides of the body, each in its own colour."""
    joints = demo_motion(kind, seconds=2.0)
    path = write_gif(joints, tmp_path / "m.gif", fps=20.0, title=f"a person does a {kind}", subtitle="expert: base")
    frames = gif_frames(path)
    assert len(frames) == 20  # 40 motion frames thinned to 10 fps
    spans = []
    for image in frames:
        left, right = colour_mask(image, DEFAULT_STYLE.left_colour), colour_mask(image, DEFAULT_STYLE.right_colour)
        assert left.sum() > 100 and right.sum() > 100, "both sides of the body are drawn"
        body = left | right | colour_mask(image, DEFAULT_STYLE.centre_colour)
        rows = np.flatnonzero(body[: int(0.92 * image.shape[0])].any(axis=1))  # above the legend
        spans.append((rows.max() - rows.min()) / image.shape[0])
    if kind == "jump":  # a motion in place: the figure itself is most of the picture's height
        assert min(spans) > 0.5, spans
    else:  # a walk of 2.4 m: the figure is smaller, the whole path stays in view
        assert min(spans) > 0.25, spans


def test_the_whole_motion_stays_in_view(tmp_path):
    """A 4-metre walk: the figure is inside the picture (not cut at its edges) in its first and last frame."""
    frames = gif_frames(write_gif(demo_motion("walk", seconds=3.5), tmp_path / "walk.gif"))
    for image in (frames[0], frames[-1]):
        body = colour_mask(image, DEFAULT_STYLE.left_colour) | colour_mask(image, DEFAULT_STYLE.right_colour)
        rows, cols = np.flatnonzero(body.any(axis=1)), np.flatnonzero(body.any(axis=0))
        assert rows.min() > 2 and cols.min() > 2 and cols.max() < image.shape[1] - 3


def test_keyframe_strip_shows_each_key_frame_with_both_sides(tmp_path):
    path = write_keyframes(demo_motion("turn", 2.0), tmp_path / "k.png", frames=4, title="a person turns")
    with Image.open(path) as png:
        image = np.asarray(png.convert("RGB"))
    assert image.shape[1] > 2 * image.shape[0]  # a strip: four panels side by side
    for panel in np.array_split(image, 4, axis=1):
        assert colour_mask(panel, DEFAULT_STYLE.left_colour).sum() > 50
        assert colour_mask(panel, DEFAULT_STYLE.right_colour).sum() > 50


def test_bad_motions_and_bodies_are_refused_naming_the_problem(tmp_path):
    with pytest.raises(ValueError, match=r"\(frames, 22, 3\)"):
        write_gif(np.zeros((5, 24, 3)), tmp_path / "x.gif")
    nan = demo_motion("walk", 1.0)
    nan[3, 4] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        write_keyframes(nan, tmp_path / "x.png")
    with pytest.raises(ValueError, match="sides must be"):
        Body("robot", 2, ((0, 1),), ("port",))
