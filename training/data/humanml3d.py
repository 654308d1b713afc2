"""Reader for the HumanML3D layout, with HumanML3D's own rules, for the real data set and for the
procedural corpus alike.

    new_joint_vecs/<id>.npy   (T, 263) features at 20 fps
    texts/<id>.txt            one caption per line: caption#tokens#start#end (seconds; 0#0 = whole)
    Mean.npy, Std.npy         normalisation
    train.txt val.txt test.txt   motion ids, one per line
    metadata.json (optional)  {id: {"emotion": ..., "scenario": ..., ...}} for emotional corpora

Rules (HumanML3D's `Text2MotionDatasetV2`): motions shorter than 40 or at least 200 frames are
dropped; a caption with a start/end tag becomes its own sub-clip cut at start*20..end*20, kept only if
it too is 40..199 frames; clips longer than 196 frames are cropped when sampled for training.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from motion_agent.motion.features import FEATURE_DIM

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class ReaderConfig:
    fps: float = 20.0
    min_frames: int = 40
    max_frames: int = 196  # longest clip a model sees; HumanML3D drops motions of 200 frames or more
    drop_frames: int = 200


@dataclass
class Caption:
    text: str
    tokens: list[str]


@dataclass
class MotionClip:
    """One motion (or sub-clip) with every caption that describes it."""

    clip_id: str  # the motion id, or "<id>#<start>#<end>" for a sub-clip
    motion_id: str
    features: np.ndarray  # (T, 263), not normalised
    captions: list[Caption]
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def emotion(self) -> str | None:
        return self.metadata.get("emotion")

    @property
    def scenario(self) -> str | None:
        return self.metadata.get("scenario")


class DatasetError(ValueError):
    """A data folder that does not follow the HumanML3D layout; the message names the file."""


def split_ids(ids: list[str], fractions: tuple[float, float, float], seed: list[int]) -> dict[str, list[str]]:
    """Shuffle ids with `seed` and cut them into train / val / test by `fractions` (each sorted)."""
    order = np.random.default_rng(seed).permutation(len(ids))
    n_train = int(round(fractions[0] * len(ids)))
    n_val = int(round(fractions[1] * len(ids)))
    shuffled = [ids[i] for i in order]
    return {
        "train": sorted(shuffled[:n_train]),
        "val": sorted(shuffled[n_train : n_train + n_val]),
        "test": sorted(shuffled[n_train + n_val :]),
    }


def parse_text_line(line: str, where: str) -> tuple[Caption, float, float]:
    parts = line.strip().split("#")
    if len(parts) != 4:
        raise DatasetError(f"{where}: expected 'caption#tokens#start#end', got {line.strip()!r}")
    caption, tokens, start, end = parts
    try:
        f_tag, to_tag = float(start or 0), float(end or 0)
    except ValueError as error:
        raise DatasetError(f"{where}: start/end must be numbers in {line.strip()!r}") from error
    return (
        Caption(text=caption.strip(), tokens=tokens.split()),
        (0.0 if np.isnan(f_tag) else f_tag),
        (0.0 if np.isnan(to_tag) else to_tag),
    )


class HumanML3D:
    """A HumanML3D-layout folder: split ids, clips with captions, Mean/Std and optional metadata."""

    def __init__(self, root: str | Path, config: ReaderConfig = ReaderConfig()) -> None:
        self.root = Path(root)
        self.config = config
        self._require_folder("new_joint_vecs")
        self.mean = self._load_array("Mean.npy")
        self.std = self._load_array("Std.npy")
        if (self.std <= 0).any():
            raise DatasetError(f"{self.root / 'Std.npy'} has non-positive entries")
        meta_path = self.root / "metadata.json"
        self.metadata: dict[str, dict[str, str]] = json.loads(meta_path.read_text()) if meta_path.is_file() else {}

    def _require_folder(self, name: str) -> None:
        if not (self.root / name).is_dir():
            raise DatasetError(f"{self.root} is not in HumanML3D layout: it has no {name}/ folder")

    def _load_features(self, path: Path) -> np.ndarray:
        features = np.load(path, allow_pickle=False)
        if features.ndim != 2 or features.shape[1] != FEATURE_DIM:
            raise DatasetError(f"{path} must have shape (frames, {FEATURE_DIM}), has {features.shape}")
        if not np.isfinite(features).all():
            raise DatasetError(f"{path} holds NaN or infinite values")
        return features.astype(np.float32)

    def _load_array(self, name: str) -> np.ndarray:
        path = self.root / name
        if not path.is_file():
            raise DatasetError(f"{path} is missing")
        array = np.load(path, allow_pickle=False)
        if array.shape != (FEATURE_DIM,) or not np.isfinite(array).all():
            raise DatasetError(f"{path} must hold {FEATURE_DIM} finite values, has shape {array.shape}")
        return array.astype(np.float32)

    def ids(self, split: str) -> list[str]:
        path = self.root / f"{split}.txt"
        if not path.is_file():
            raise DatasetError(f"{path} is missing (splits: {', '.join(SPLITS)})")
        return [line.strip() for line in path.read_text().splitlines() if line.strip()]

    def features(self, split: str, min_frames: int) -> list[tuple[str, np.ndarray]]:
        """(id, whole-motion features) of a split, for training a tokenizer: no captions needed, and
        every motion of at least `min_frames` frames is kept, as T2M-GPT's tokenizer loader does."""
        motions = []
        for motion_id in self.ids(split):
            path = self.root / "new_joint_vecs" / f"{motion_id}.npy"
            if path.is_file():
                features = self._load_features(path)
                if len(features) >= min_frames:
                    motions.append((motion_id, features))
        return motions

    def clips(self, split: str | None = None, ids: list[str] | None = None) -> list[MotionClip]:
        """Every usable clip of a split (or of the given ids), HumanML3D's length rules applied."""
        self._require_folder("texts")
        if ids is None:
            ids = self.ids(split or "train")
        clips: list[MotionClip] = []
        for motion_id in ids:
            clips += self.motion_clips(motion_id)
        return clips

    def motion_clips(self, motion_id: str) -> list[MotionClip]:
        vec_path = self.root / "new_joint_vecs" / f"{motion_id}.npy"
        text_path = self.root / "texts" / f"{motion_id}.txt"
        if not vec_path.is_file() or not text_path.is_file():
            return []  # HumanML3D's split files name a few motions that were never processed
        features = self._load_features(vec_path)
        cfg = self.config
        meta = self.metadata.get(motion_id, {})
        whole: list[Caption] = []
        subclips: list[MotionClip] = []
        for number, line in enumerate(text_path.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            caption, start, end = parse_text_line(line, f"{text_path}:{number}")
            if start == 0.0 and end == 0.0:
                whole.append(caption)
                continue
            cut = features[int(start * cfg.fps) : int(end * cfg.fps)]
            if cfg.min_frames <= len(cut) < cfg.drop_frames:
                subclips.append(MotionClip(f"{motion_id}#{start:g}#{end:g}", motion_id, cut, [caption], meta))
        if whole and cfg.min_frames <= len(features) < cfg.drop_frames:
            subclips.insert(0, MotionClip(motion_id, motion_id, features, whole, meta))
        return subclips

    def normalize(self, features: np.ndarray) -> np.ndarray:
        return (features - self.mean) / self.std

    def denormalize(self, features: np.ndarray) -> np.ndarray:
        return features * self.std + self.mean
