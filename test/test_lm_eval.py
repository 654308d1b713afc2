"""T2M / M2T scoring of a language model through the evaluator: the figures a report needs are there,
in range, and the ground truth scores its own real pairs far above a shuffled pairing."""

import math

import numpy as np
import pytest
import torch

from motion_agent.model.base_model import load_base_model, tokenizer_folder
from motion_agent.model.tokenizer import MotionTokenizer
from training.data.humanml3d import HumanML3D
from training.data.synth.emotions import EMOTIONS
from training.evaluation.evaluator import Evaluator, EvaluatorConfig, EvaluatorModelConfig
from training.evaluation.lm_eval import EvalSettings, evaluate_m2t, evaluate_t2m, ground_truth

CLIPS = 12
SETTINGS = EvalSettings(mm_captions=3, mm_repeats=2, r_precision_seeds=2)


@pytest.fixture(scope="module")
def parts(tiny_base_model):
    corpus = HumanML3D(tiny_base_model.parent / "corpus")
    clips = corpus.clips("train")[:CLIPS]
    torch.manual_seed(0)
    config = EvaluatorConfig(
        model=EvaluatorModelConfig(latent_dim=32, motion_hidden=32, text_hidden=32, emotions=tuple(EMOTIONS))
    )
    evaluator = Evaluator(config, corpus.mean, corpus.std).eval()
    lm = load_base_model(tiny_base_model)
    return lm, MotionTokenizer.load(tokenizer_folder(tiny_base_model)), evaluator, clips


def test_t2m_reports_every_figure_in_range(parts):
    lm, tokenizer, evaluator, clips = parts
    figures = evaluate_t2m(lm, tokenizer, evaluator, clips, SETTINGS)
    for key in ("r_precision_top1", "r_precision_top2", "r_precision_top3"):
        assert 0.0 <= figures[key] <= 1.0
    assert figures["r_precision_top1"] <= figures["r_precision_top2"] <= figures["r_precision_top3"]
    for key in ("fid", "diversity", "mm_dist", "multimodality", "emotion_f1"):
        assert math.isfinite(figures[key]) and figures[key] >= 0.0, key


def test_m2t_scores_captions_against_references(parts):
    lm, tokenizer, evaluator, clips = parts
    figures = evaluate_m2t(lm, tokenizer, evaluator, clips, SETTINGS)
    for key in ("bleu1", "bleu4", "rouge_l", "r_precision_top3"):
        assert 0.0 <= figures[key] <= 1.0, key
    assert figures["cider"] >= 0.0
    assert figures["examples"] and figures["examples"][0]["reference"] == clips[0].captions[0].text


def test_ground_truth_is_the_ceiling(parts):
    _, _, evaluator, clips = parts
    truth = ground_truth(evaluator, clips, SETTINGS)
    assert truth["t2m"]["fid"] == 0.0
    assert truth["m2t"]["r_precision_top3"] == truth["t2m"]["r_precision_top3"]
    assert set(truth["t2m"]) >= {"r_precision_top1", "r_precision_top3", "diversity", "mm_dist"}
    assert np.isnan(truth["t2m"]["multimodality"])
