"""The data a trainer sees: the HumanML3D reader, the procedural corpus and the task streams."""

import filecmp
import json
from pathlib import Path

import numpy as np
import pytest

from motion_agent.motion.features import CONTACT_SLICE, FEATURE_DIM, FeatureConfig, canonicalize
from motion_agent.motion.skeleton import LEFT_FOOT_JOINTS, RIGHT_FOOT_JOINTS, bone_lengths
from training.data.cli import main as data_main
from training.data.humanml3d import DatasetError, HumanML3D
from training.data.streams import StreamConfig, read_stream, write_stream
from training.data.synth.actions import ACTIONS, SCENARIOS
from training.data.synth.corpus import CorpusConfig, write_corpus
from training.data.synth.emotions import EMOTIONS

CORPUS_MOTIONS = 264  # every (action, emotion) pair once, and a few more


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return write_corpus(tmp_path_factory.mktemp("corpus"), CorpusConfig(motions=CORPUS_MOTIONS, seed=7), progress=False)


def test_generator_covers_scenarios_actions_and_emotions(corpus):
    assert len(SCENARIOS) >= 8 and len(ACTIONS) >= 30 and len(EMOTIONS) >= 6
    meta = json.loads((corpus / "metadata.json").read_text())
    assert {m["scenario"] for m in meta.values()} == set(SCENARIOS)
    assert {m["action"] for m in meta.values()} == set(ACTIONS)
    assert {m["emotion"] for m in meta.values()} == set(EMOTIONS)


def test_an_unseen_scenario_is_performed_only_when_named_and_never_enters_the_v1_corpus(corpus, tmp_path):
    """The new-scenario benchmark's clips: motions and words no embedded model was trained on."""
    from training.data.synth.corpus import perform
    from training.data.synth.unseen import UNSEEN_ACTIONS, UNSEEN_SCENARIOS

    assert not set(UNSEEN_SCENARIOS) & set(SCENARIOS) and not set(UNSEEN_ACTIONS) & set(ACTIONS)
    about = json.loads((corpus / "corpus.json").read_text())
    assert "scenarios" not in about["config"] and about["scenarios"] == sorted(SCENARIOS)  # v1 as it was
    fitness = write_corpus(
        tmp_path / "fitness", CorpusConfig(motions=30, seed=1, scenarios=("fitness",)), progress=False
    )
    meta = json.loads((fitness / "metadata.json").read_text())
    assert {m["action"] for m in meta.values()} == {p.__name__ for p in UNSEEN_SCENARIOS["fitness"]} and len(meta) == 30
    texts = " ".join((fitness / "texts" / f"{i}.txt").read_text() for i in meta)
    assert "jumping jacks" in texts and "squats" in texts and "lunges" in texts
    gestures = write_corpus(
        tmp_path / "gestures", CorpusConfig(motions=10, seed=1, scenarios=("gestures",)), progress=False
    )
    assert {m["scenario"] for m in json.loads((gestures / "metadata.json").read_text()).values()} == {"gestures"}
    config = CorpusConfig(scenarios=("fitness",))
    rng = np.random.default_rng(0)
    jacks, squats = perform("jumping_jacks", "neutral", 4.0, rng, config), perform("squat", "neutral", 4.0, rng, config)
    assert jacks[..., 1].min(axis=1).max() > 0.05  # both feet leave the floor
    assert np.ptp(squats[:, 0, 1]) > 0.25  # the pelvis goes down and comes back up
    with pytest.raises(ValueError, match="unknown scenario.*yoga.*known: daily_life"):
        CorpusConfig(scenarios=("fitness", "yoga"))


def test_reader_loads_the_generated_corpus(corpus):
    data = HumanML3D(corpus)
    clips = data.clips("train")
    assert len(clips) == len(data.ids("train")) > 0
    for clip in clips[:20]:
        assert 40 <= len(clip.features) <= 196 and clip.features.shape[1] == FEATURE_DIM
        assert len(clip.captions) == 3 and clip.emotion in EMOTIONS and clip.scenario in SCENARIOS
        assert clip.captions[0].text.endswith(".") and clip.captions[0].tokens
    normalized = data.normalize(clips[0].features)
    np.testing.assert_allclose(data.denormalize(normalized), clips[0].features, atol=1e-5)


def test_reader_applies_humanml3d_rules_on_a_handmade_folder(tmp_path):
    (tmp_path / "new_joint_vecs").mkdir()
    (tmp_path / "texts").mkdir()
    rng = np.random.default_rng(0)
    np.save(tmp_path / "new_joint_vecs" / "long.npy", rng.normal(size=(150, FEATURE_DIM)).astype(np.float32))
    np.save(tmp_path / "new_joint_vecs" / "short.npy", rng.normal(size=(30, FEATURE_DIM)).astype(np.float32))
    (tmp_path / "texts" / "long.txt").write_text(
        "a man walks.#a/DET man/NOUN walk/VERB#0.0#0.0\n"
        "then he jumps.#then/ADV he/PRON jump/VERB#2.5#5.0\n"  # frames 50..100: a 50-frame sub-clip
        "he waves.#he/PRON wave/VERB#6.0#7.0\n"  # 20 frames: too short, dropped
    )
    (tmp_path / "texts" / "short.txt").write_text("a twitch.#a/DET twitch/NOUN#0.0#0.0\n")
    np.save(tmp_path / "Mean.npy", np.zeros(FEATURE_DIM, np.float32))
    np.save(tmp_path / "Std.npy", np.ones(FEATURE_DIM, np.float32))
    (tmp_path / "train.txt").write_text("long\nshort\nmissing\n")
    clips = HumanML3D(tmp_path).clips("train")
    assert [c.clip_id for c in clips] == ["long", "long#2.5#5"]
    assert len(clips[0].features) == 150 and [c.text for c in clips[0].captions] == ["a man walks."]
    np.testing.assert_array_equal(clips[1].features, np.load(tmp_path / "new_joint_vecs" / "long.npy")[50:100])
    assert clips[0].emotion is None  # no metadata.json: plain HumanML3D
    (tmp_path / "texts" / "long.txt").write_text("no separators here\n")
    with pytest.raises(DatasetError, match="long.txt:1"):
        HumanML3D(tmp_path).clips("train")


def test_reader_names_what_is_missing(tmp_path):
    with pytest.raises(DatasetError, match="new_joint_vecs"):
        HumanML3D(tmp_path)


def test_bodies_are_plausible(corpus):
    worst_bone, worst_jump = 0.0, 0.0
    for path in sorted((corpus / "new_joints").glob("*.npy")):
        joints = np.load(path).astype(np.float64)
        lengths = bone_lengths(joints)
        worst_bone = max(worst_bone, np.abs(lengths - lengths[0]).max())
        worst_jump = max(worst_jump, np.linalg.norm(np.diff(joints[:, 0], axis=0), axis=-1).max())
        assert joints[..., 1].min() > -1e-4  # nothing under the floor
    assert worst_bone < 1e-3, f"a bone changes length by {worst_bone * 1000:.2f} mm"
    assert worst_jump < 0.2, f"the root jumps {worst_jump:.3f} m in one frame"


def test_standing_feet_are_on_the_ground_and_contacts_agree_with_height(corpus):
    config = FeatureConfig()
    feet = list(LEFT_FOOT_JOINTS + RIGHT_FOOT_JOINTS)
    agree, total = 0, 0
    meta = json.loads((corpus / "metadata.json").read_text())
    for motion_id in sorted(meta)[:80]:
        joints = canonicalize(np.load(corpus / "new_joints" / f"{motion_id}.npy")).numpy()
        contacts = np.load(corpus / "new_joint_vecs" / f"{motion_id}.npy")[:, CONTACT_SLICE].astype(bool)
        height = joints[:-1, feet, 1]
        assert (height[contacts] < config.foot_height_threshold).all()  # a foot in contact is low
        still = (np.diff(joints[:, feet], axis=0) ** 2).sum(-1) < config.foot_velocity_threshold
        planted = still & (height < 0.02)
        agree += (contacts[planted]).sum()
        total += planted.sum()
        if meta[motion_id]["scenario"] != "acrobatics":
            assert joints[..., 1].min(axis=-1).max() < 0.5  # someone is always near the floor
    assert total > 0 and agree == total  # a still foot on the floor is always in contact


def _motion_statistics(joints: np.ndarray) -> np.ndarray:
    """Caption-free statistics of a motion: posture, speed, jerkiness, shaking, expansiveness."""
    j = canonicalize(joints).numpy()
    up = j[:, 12] - j[:, 0]
    lean = np.arctan2(np.linalg.norm(up[:, [0, 2]], axis=-1), up[:, 1])
    head = j[:, 15] - j[:, 12]
    head_pitch = np.arctan2(head[:, 1], np.linalg.norm(head[:, [0, 2]], axis=-1))
    shrug = j[:, [16, 17], 1].mean(-1) - j[:, 9, 1]
    velocity = np.diff(j, axis=0) * 20
    speed = np.linalg.norm(velocity, axis=-1).mean(-1)
    jerk = np.linalg.norm(np.diff(j, n=3, axis=0), axis=-1).mean()
    smooth = (j[:-2] + j[2:]) / 2
    shake = np.linalg.norm(j[1:-1] - smooth, axis=-1)[:, [15, 20, 21]].mean()
    spread = np.linalg.norm(j[:, [20, 21]] - j[:, [0]], axis=-1).mean()
    height = j[:, 15, 1].mean()
    return np.array(
        [
            lean.mean(),
            head_pitch.mean(),
            shrug.mean(),
            speed.mean(),
            speed.std(),
            np.log(jerk),
            np.log(shake),
            spread,
            height,
            np.abs(velocity).max(),
        ]
    )


def _softmax_regression(x, y, classes, steps=2000, lr=0.5, l2=1e-3):
    w = np.zeros((x.shape[1], classes))
    onehot = np.eye(classes)[y]
    for _ in range(steps):
        logits = x @ w
        p = np.exp(logits - logits.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        w -= lr * (x.T @ (p - onehot) / len(x) + l2 * w)
    return w


def test_emotion_lives_in_the_motion_not_only_in_the_caption(tmp_path):
    corpus = write_corpus(tmp_path, CorpusConfig(motions=600, seed=11), progress=False)
    meta = json.loads((corpus / "metadata.json").read_text())
    names = sorted(EMOTIONS)
    ids = sorted(meta)
    x = np.stack([_motion_statistics(np.load(corpus / "new_joints" / f"{i}.npy")) for i in ids])
    y = np.array([names.index(meta[i]["emotion"]) for i in ids])
    train = np.arange(len(ids)) % 4 != 0
    mean, std = x[train].mean(0), x[train].std(0) + 1e-9
    features = np.hstack([(x - mean) / std, np.ones((len(x), 1))])
    w = _softmax_regression(features[train], y[train], len(names))
    predicted = (features[~train] @ w).argmax(1)
    recalls = [(predicted[y[~train] == c] == c).mean() for c in range(len(names))]
    assert np.mean(recalls) > 0.6, f"balanced accuracy {np.mean(recalls):.2f} (per emotion {np.round(recalls, 2)})"


def test_same_seed_gives_byte_identical_files(tmp_path):
    a = write_corpus(tmp_path / "a", CorpusConfig(motions=12, seed=3), progress=False)
    b = write_corpus(tmp_path / "b", CorpusConfig(motions=12, seed=3), progress=False)
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert len(files) > 40
    mismatch = [str(f) for f in files if not filecmp.cmp(a / f, b / f, shallow=False)]
    assert mismatch == []
    c = write_corpus(tmp_path / "c", CorpusConfig(motions=12, seed=4), progress=False)
    assert not filecmp.cmp(a / "new_joints" / "000000.npy", c / "new_joints" / "000000.npy", shallow=False)


def test_extra_test_motions_add_test_clips_and_change_nothing_a_model_trained_on(tmp_path):
    plain = write_corpus(tmp_path / "a", CorpusConfig(motions=12, seed=3), progress=False)
    more = write_corpus(tmp_path / "b", CorpusConfig(motions=12, seed=3, extra_test_motions=5), progress=False)
    for name in ("train.txt", "val.txt", "Mean.npy", "Std.npy", "new_joint_vecs/000011.npy", "texts/000011.txt"):
        assert filecmp.cmp(plain / name, more / name, shallow=False), name
    test, extra = (plain / "test.txt").read_text().split(), (more / "test.txt").read_text().split()
    assert extra == test + [f"{i:06d}" for i in range(12, 17)]
    assert len(json.loads((more / "metadata.json").read_text())) == 17


@pytest.mark.parametrize("kind", ["unseen", "mixed"])
def test_scenario_streams(corpus, tmp_path, kind):
    write_stream(corpus, tmp_path, StreamConfig(kind=kind, seed=1))
    stream = read_stream(tmp_path)
    assert len(stream) == len(SCENARIOS)
    meta = json.loads((corpus / "metadata.json").read_text())
    everything = [i for task in stream.values() for split in task.values() for i in split]
    assert sorted(everything) == sorted(meta)  # every motion in exactly one task and split
    for name, task in stream.items():
        members = [i for split in task.values() for i in split]
        share = np.mean([f"mostly_{meta[i]['scenario']}" == name or meta[i]["scenario"] == name for i in members])
        assert share == 1.0 if kind == "unseen" else 0.5 < share < 1.0
        assert len(task["train"]) > len(task["test"]) >= 1
    for split in ("train", "val", "test"):  # no stream test clip was trained on by the base or evaluator
        ids = set((corpus / f"{split}.txt").read_text().split())
        assert all(set(task[split]) <= ids for task in stream.values()), split


@pytest.mark.slow
def test_caption_clusters_make_k_tasks_and_a_similarity_report(corpus, tmp_path, capsys):
    assert (
        data_main(["streams", "--corpus", str(corpus), "--kind", "clusters", "--k", "5", "--out", str(tmp_path)]) == 0
    )
    stream = read_stream(tmp_path)
    assert len(stream) == 5 and all(len(t["train"]) > 0 for t in stream.values())
    report = json.loads((tmp_path / "cluster_report.json").read_text())
    similarity = np.array(report["centroid_cosine_similarity"])
    assert similarity.shape == (5, 5)
    np.testing.assert_allclose(np.diag(similarity), 1.0, atol=1e-3)
    assert all(report["top_words"][name] for name in stream)
    assert (tmp_path / "cluster_similarity.png").read_bytes()[:4] == b"\x89PNG"
    assert "centroid cosine similarity" in capsys.readouterr().out


def test_synth_cli_writes_a_corpus_and_the_emotion_preview(tmp_path, capsys):
    assert data_main(["synth", "--out", str(tmp_path), "--motions", "260", "--seed", "1"]) == 0
    assert (tmp_path / "emotions.png").read_bytes()[:4] == b"\x89PNG"
    assert "wrote 260 motions" in capsys.readouterr().out
    more = tmp_path / "more"
    assert data_main(["synth", "--out", str(more), "--motions", "260", "--seed", "1", "--extra-test-motions", "8"]) == 0
    for split in ("train", "val"):
        assert (more / f"{split}.txt").read_text() == (tmp_path / f"{split}.txt").read_text()
    assert len((more / "test.txt").read_text().split()) == len((tmp_path / "test.txt").read_text().split()) + 8
    assert (
        data_main(["streams", "--corpus", str(tmp_path / "nowhere"), "--kind", "unseen", "--out", str(tmp_path)]) == 1
    )
    small = tmp_path / "small"  # no action performed with every emotion: the preview still shows each emotion
    assert data_main(["synth", "--out", str(small), "--motions", "24"]) == 0
    assert (small / "emotions.png").read_bytes()[:4] == b"\x89PNG"


def test_your_own_clips_become_a_corpus_of_one_scenario(tmp_path, capsys):
    """BVH and HumanML3D files with a captions file: long clips cut into parts, short and unreadable clips
    skipped and named, splits by clip, and the corpus reads back with HumanML3D's rules."""
    from motion_agent.motion.demo import demo_motion
    from motion_agent.motion.export import write_bvh

    clips = tmp_path / "clips"
    clips.mkdir()
    for number in range(8):
        write_bvh(clips / f"greet_{number}.bvh", demo_motion(("walk", "turn", "jump")[number % 3], seconds=3.0))
    write_bvh(clips / "long_walk.bvh", demo_motion("walk", seconds=12.0))  # 240 frames: 196 + 44
    np.save(clips / "twitch.npy", demo_motion("jump", seconds=1.0).astype(np.float32))  # 20 frames
    (clips / "broken.bvh").write_text("HIERARCHY\n")
    lines = [f"greet_{n}.bvh\ta person greets you warmly." for n in range(8)]
    lines += ["greet_0.bvh\tsomeone says hello.", "long_walk\ta person walks up to you.", "twitch\ta twitch."]
    (tmp_path / "captions.tsv").write_text("# clip<TAB>caption\n" + "\n".join(lines + ["broken\tnothing."]) + "\n")
    out = tmp_path / "corpus"
    argv = ["import", "--clips", str(clips), "--scenario", "greeting", "--captions", str(tmp_path / "captions.tsv")]
    assert data_main([*argv, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "wrote 10 motions of 9 clips (greeting)" in printed and "skipped    twitch.npy: 20 frames" in printed
    assert "skipped    broken.bvh:" in printed
    metadata = json.loads((out / "metadata.json").read_text())
    assert {m["scenario"] for m in metadata.values()} == {"greeting"}
    long_parts = sorted(i for i, m in metadata.items() if m["source"] == "long_walk.bvh")
    assert [metadata[i]["frames"] for i in long_parts] == [[0, 196], [196, 240]]
    split_of = {i: s for s in ("train", "val", "test") for i in (out / f"{s}.txt").read_text().split()}
    assert len({split_of[i] for i in long_parts}) == 1  # both parts of a clip in one split
    data = HumanML3D(out)
    every = [clip for split in ("train", "val", "test") for clip in data.clips(split)]
    assert len(every) == 10 and all(c.features.shape[1] == FEATURE_DIM for c in every)
    first = next(c for c in every if metadata[c.motion_id]["source"] == "greet_0.bvh")
    assert [c.text for c in first.captions] == ["a person greets you warmly.", "someone says hello."]
    (tmp_path / "captions.tsv").write_text("greet_0.bvh\tonly one clip has a caption.\n")
    assert data_main([*argv, "--out", str(tmp_path / "again")]) == 1
    assert "10 of 11 clips have no caption: broken.bvh, greet_1.bvh, greet_2.bvh" in capsys.readouterr().err


def test_augmented_copies_swap_left_and_right_and_train_only(tmp_path):
    from motion_agent.motion.demo import demo_motion
    from motion_agent.motion.export import write_bvh
    from motion_agent.motion.skeleton import JOINT_NAMES
    from training.data.augment import mirror_caption, mirror_joints, retime

    walk = demo_motion("walk", seconds=3.0)
    mirrored = mirror_joints(walk)
    left, right = JOINT_NAMES.index("left_wrist"), JOINT_NAMES.index("right_wrist")
    np.testing.assert_allclose(mirrored[:, left, 0], -walk[:, right, 0])
    np.testing.assert_allclose(mirror_joints(mirrored), walk)
    assert mirror_caption("Wave with the left hand, then step right.") == "Wave with the right hand, then step left."
    assert mirror_caption("a bright leftover") == "a bright leftover"
    assert len(retime(walk, 0.8)) == 74 and len(retime(walk, 1.25)) == 48  # 2.95 s of motion: 3.69 s, 2.36 s

    clips = tmp_path / "clips"
    clips.mkdir()
    for number in range(10):
        write_bvh(clips / f"wave_{number}.bvh", demo_motion("walk", seconds=3.0))
        (clips / f"wave_{number}.txt").write_text("a person waves with the left hand.\n")
    out = tmp_path / "corpus"
    argv = ["import", "--clips", str(clips), "--scenario", "greeting", "--out", str(out), "--mirror", "--speeds", "0.8"]
    assert data_main([*argv, "--bodies", "1.1", "--split", "0.8,0,0.2"]) == 0
    metadata = json.loads((out / "metadata.json").read_text())
    train = set((out / "train.txt").read_text().split())
    held_out = set((out / "val.txt").read_text().split()) | set((out / "test.txt").read_text().split())
    assert not (out / "val.txt").read_text().split() and len(held_out) == 2  # --split 0.8,0,0.2 of 10 clips
    augmented = {i for i, m in metadata.items() if "augmented" in m}
    assert len(augmented) == 3 * 8 and augmented <= train and not augmented & held_out
    mirrored_id = next(i for i in augmented if metadata[i]["augmented"] == "mirror")
    assert (out / "texts" / f"{mirrored_id}.txt").read_text().startswith("a person waves with the right hand.#")


def test_a_reproportioned_copy_has_longer_limbs_the_same_bone_directions_and_its_feet_on_the_floor():
    from motion_agent.motion.demo import demo_motion
    from motion_agent.motion.skeleton import JOINT_NAMES, PARENTS, bone_lengths
    from training.data.augment import LIMB_JOINTS, reproportion

    walk = demo_motion("walk", seconds=3.0)
    tall = reproportion(walk, 1.2)
    ratio = bone_lengths(tall)[:, 1:] / bone_lengths(walk)[:, 1:]  # per frame, per bone (the pelvis has none)
    limbs = sorted(LIMB_JOINTS)
    assert {JOINT_NAMES[j] for j in limbs} >= {"left_knee", "right_ankle", "left_elbow", "right_wrist"}
    np.testing.assert_allclose(ratio[:, [j - 1 for j in limbs]], 1.2, rtol=1e-6)
    others = [j for j in range(1, len(PARENTS)) if j not in LIMB_JOINTS]
    np.testing.assert_allclose(ratio[:, [j - 1 for j in others]], 1.0, rtol=1e-6)  # hips, spine, collars, head
    elbow, shoulder = JOINT_NAMES.index("left_elbow"), JOINT_NAMES.index("left_shoulder")
    before, after = walk[:, elbow] - walk[:, shoulder], tall[:, elbow] - tall[:, shoulder]
    np.testing.assert_allclose(after, 1.2 * before, atol=1e-9)  # the upper arm points where it pointed
    assert tall[..., 1].min() == pytest.approx(walk[..., 1].min())  # on the floor
    assert tall[:, 0, 1].mean() > walk[:, 0, 1].mean()  # longer legs carry the pelvis higher
    travel = np.linalg.norm(walk[-1, 0, [0, 2]] - walk[0, 0, [0, 2]])
    assert np.linalg.norm(tall[-1, 0, [0, 2]] - tall[0, 0, [0, 2]]) == pytest.approx(1.2 * travel)


def test_import_refuses_augmentation_factors_and_splits_that_make_no_sense(tmp_path):
    argv = ["import", "--clips", str(tmp_path), "--scenario", "greeting", "--out", str(tmp_path / "out")]
    with pytest.raises(SystemExit, match="--bodies factors must be positive"):
        data_main([*argv, "--bodies", "1.1,-1"])
    with pytest.raises(SystemExit, match="--speeds takes numbers separated by commas"):
        data_main([*argv, "--speeds", "fast"])
    with pytest.raises(SystemExit, match="--split takes train,val,test fractions adding up to 1"):
        data_main([*argv, "--split", "0.8,0.3,0.1"])
