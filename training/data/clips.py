"""A team's own clips as a corpus: motion files (BVH, AMASS-style .npz, HumanML3D .npy, read by
motion_agent.motion.readers) and their captions, written in the HumanML3D layout the trainers read, as
one scenario (`motion-agent-data import`).

Captions come from a captions file (`clip name<TAB>caption` per line, a clip on several lines for
several captions) or, without one, from a `<clip>.txt` beside each file (one caption per line). Clips
longer than HumanML3D's reader keeps are cut into consecutive parts of at most MAX_FRAMES frames, each
with the clip's captions; parts and clips shorter than MIN_FRAMES are left out and named in the summary.
Splits go by clip, not by part, so no part of a test clip is trained on. Training clips can be
augmented (augment.py: mirrored, re-timed); held-out ones never are.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from motion_agent.motion.features import FeatureConfig
from motion_agent.motion.readers import MOTION_SUFFIXES, MotionFileError, SkeletonError, read_motion
from training.data.augment import augmentations
from training.data.humanml3d import DatasetError, HumanML3D, split_ids
from training.data.layout_writer import write_index, write_motion

MIN_FRAMES, MAX_FRAMES = 40, 196  # HumanML3D keeps clips of 40..199 frames and crops training ones to 196


@dataclass(frozen=True)
class ImportConfig:
    scenario: str
    split: tuple[float, float, float] = (0.8, 0.1, 0.1)
    seed: int = 0
    mirror: bool = False  # add a mirrored copy of every training clip (left/right words swapped)
    speeds: tuple[float, ...] = ()  # add re-timed copies of every training clip at these speeds
    bodies: tuple[float, ...] = ()  # add copies on bodies with arms and legs this many times as long


def read_captions(folder: Path, files: list[Path], captions_file: Path | None) -> dict[str, list[str]]:
    """clip file name (and its stem) -> captions; refuses a clip without one, naming it."""
    found: dict[str, list[str]] = {}
    if captions_file is not None:
        for number, line in enumerate(captions_file.read_text().splitlines(), 1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            name, tab, caption = line.partition("\t")
            if not tab or not caption.strip():
                raise DatasetError(f"{captions_file}:{number}: expected 'clip<TAB>caption', got {line[:80]!r}")
            found.setdefault(name.strip(), []).append(caption.strip())
    else:
        for path in files:
            sidecar = path.with_suffix(".txt")
            if sidecar.is_file():
                found[path.name] = [c.strip() for c in sidecar.read_text().splitlines() if c.strip()]
    captions = {path.name: found.get(path.name) or found.get(path.stem) for path in files}
    missing = [name for name, lines in captions.items() if not lines]
    if missing:
        where = captions_file or "CLIP.txt beside each clip"
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise DatasetError(f"{len(missing)} of {len(files)} clips have no caption: {shown} (looked in {where})")
    return captions


def parts(frames: int) -> list[tuple[int, int]]:
    """Consecutive [start, end) parts of at most MAX_FRAMES; a short tail joins no part."""
    return [
        (s, min(s + MAX_FRAMES, frames))
        for s in range(0, frames, MAX_FRAMES)
        if min(s + MAX_FRAMES, frames) - s >= MIN_FRAMES
    ]


def import_clips(
    folder: str | Path,
    out: str | Path,
    config: ImportConfig,
    captions_file: str | Path | None = None,
    features: FeatureConfig = FeatureConfig(),
) -> dict:
    """Write the corpus; returns a summary (clips, motions, skipped with reasons, splits)."""
    folder, out = Path(folder), Path(out)
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in MOTION_SUFFIXES and p.is_file())
    if not files:
        raise DatasetError(f"{folder} holds no motion file ({', '.join(MOTION_SUFFIXES)})")
    captions = read_captions(folder, files, Path(captions_file) if captions_file else None)
    vectors, metadata, by_clip, skipped = {}, {}, {}, {}
    for path in tqdm(files, desc="importing clips", unit="clip"):
        try:
            joints, info = read_motion(path)
        except (MotionFileError, SkeletonError) as error:
            skipped[path.name] = str(error)
            continue
        spans = parts(len(joints))
        if not spans:
            skipped[path.name] = f"{len(joints)} frames at 20 fps; at least {MIN_FRAMES} are needed"
            continue
        for start, end in spans:
            motion_id = f"{len(metadata):06d}"
            vectors[motion_id] = write_motion(out, motion_id, joints[start:end], captions[path.name], features)
            metadata[motion_id] = {"scenario": config.scenario, "source": path.name, "frames": [start, end],
                                   "format": info["format"], "emotion": "unlabelled"}  # fmt: skip
            by_clip.setdefault(path.name, []).append(motion_id)
    if not metadata:
        raise DatasetError(f"no clip of {folder} could be imported: {skipped}")
    clip_splits = split_ids(sorted(by_clip), config.split, [config.seed, 1])
    splits = {name: sorted(i for clip in clips for i in by_clip[clip]) for name, clips in clip_splits.items()}
    for motion_id in list(splits["train"]):  # augmented copies train only: held-out clips stay as recorded
        joints = np.load(out / "new_joints" / f"{motion_id}.npy")
        source = metadata[motion_id]
        copies = augmentations(joints, captions[source["source"]], config.mirror, config.speeds, config.bodies)
        for kind, copy, lines in copies:
            copy = copy[:MAX_FRAMES]  # a slowed copy may outgrow a part
            if len(copy) < MIN_FRAMES:
                continue
            new_id = f"{len(metadata):06d}"
            vectors[new_id] = write_motion(out, new_id, copy, lines, features)
            metadata[new_id] = {**source, "augmented": kind}
            splits["train"].append(new_id)
    splits["train"].sort()
    about = {"generator": "motion-agent-data import", "source": str(folder), "scenario": config.scenario,
             "clips": len(by_clip), "skipped": skipped}  # fmt: skip
    about["augmented"] = {"mirror": config.mirror, "speeds": list(config.speeds), "bodies": list(config.bodies)}
    write_index(out, vectors, metadata, splits, about, features)
    return {**about, "motions": len(metadata), "splits": {k: len(v) for k, v in splits.items()}}


def export_scenario_clips(corpus: str | Path, scenario: str, folder: str | Path, count: int | None = None) -> Path:
    """One scenario's motions of a corpus written out as BVH files with a captions file (captions.tsv):
    clips as a team would bring them, for the worked example, its test and the new-scenario benchmark."""
    from motion_agent.motion.export import write_bvh

    corpus, folder = Path(corpus), Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    data = HumanML3D(corpus)
    lines = []
    for clip in [c for c in data.clips("all") if c.scenario == scenario][:count]:
        joints = np.load(corpus / "new_joints" / f"{clip.motion_id}.npy")
        write_bvh(folder / f"{scenario}_{clip.motion_id}.bvh", joints)
        lines += [f"{scenario}_{clip.motion_id}.bvh\t{caption.text}" for caption in clip.captions]
    if not lines:
        raise DatasetError(f"{corpus} has no motion of scenario {scenario!r}")
    (folder / "captions.tsv").write_text("\n".join(lines) + "\n")
    return folder
