"""Writing a corpus in the HumanML3D layout (the reader is humanml3d.py): what the procedural corpus
(synth/corpus.py) and a team's imported clips (clips.py) both write, one way.

    new_joints/<id>.npy      (T, 22, 3) joints, metres, +Y up, 20 fps
    new_joint_vecs/<id>.npy  (T - 1, 263) features (motion_agent.motion.features)
    texts/<id>.txt           caption#tokens#0.0#0.0 per line
    train/val/test/all.txt   motion ids
    Mean.npy, Std.npy        over the train split
    metadata.json            {id: {...}}; corpus.json: what made the corpus
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from motion_agent.motion.features import FeatureConfig, joints_to_features, mean_std

LAYOUT_FOLDERS = ("new_joints", "new_joint_vecs", "texts")


def tokens(caption: str) -> str:
    """HumanML3D's `word/TAG` token field; the tag is not used by this project's models."""
    words = caption.lower().replace(",", " ").replace(".", " ").split()
    return " ".join(f"{word}/X" for word in words)


def write_motion(
    out: Path, motion_id: str, joints: np.ndarray, captions: list[str], features: FeatureConfig
) -> np.ndarray:
    """One motion's joints, features and captions; returns its features."""
    for sub in LAYOUT_FOLDERS:
        (out / sub).mkdir(parents=True, exist_ok=True)
    vectors = joints_to_features(joints, features)
    np.save(out / "new_joints" / f"{motion_id}.npy", np.asarray(joints, dtype=np.float32))
    np.save(out / "new_joint_vecs" / f"{motion_id}.npy", vectors)
    lines = [f"{caption}#{tokens(caption)}#0.0#0.0" for caption in captions]
    (out / "texts" / f"{motion_id}.txt").write_text("\n".join(lines) + "\n")
    return vectors


def write_index(
    out: Path,
    vectors: dict[str, np.ndarray],
    metadata: dict[str, dict],
    splits: dict[str, list[str]],
    about: dict,
    features: FeatureConfig,
) -> None:
    """The split files, the train split's Mean/Std, metadata.json and corpus.json."""
    for name, ids in {**splits, "all": sorted(metadata)}.items():
        (out / f"{name}.txt").write_text("".join(f"{i}\n" for i in ids))
    mean, std = mean_std([vectors[i] for i in splits["train"] or sorted(vectors)], features)
    np.save(out / "Mean.npy", mean)
    np.save(out / "Std.npy", std)
    (out / "metadata.json").write_text(json.dumps(metadata, indent=1, sort_keys=True) + "\n")
    (out / "corpus.json").write_text(json.dumps(about, indent=1, sort_keys=True) + "\n")
