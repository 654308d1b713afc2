"""Evaluation metrics on cases whose answers are known: hand-worked numbers in the comments."""

import math

import numpy as np
import pytest
from scipy.special import gammaln

from training.evaluation.metrics import (
    average_after_last,
    backward_transfer,
    bleu,
    cider,
    diversity,
    fid,
    forgetting_rate,
    forward_transfer,
    mm_dist,
    multimodality,
    r_precision,
    rouge_l,
    routing_accuracy,
    tokenize,
    unknown_auroc,
    weighted_f1,
)


def _normal(*shape: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape)


# ----------------------------------------------------------------------------- FID


def test_fid_of_identical_sets_is_zero():
    x = _normal(500, 8)
    assert fid(x, x) == pytest.approx(0.0, abs=1e-6)


def test_fid_of_shifted_set_is_squared_shift_norm():
    x = _normal(500, 8)
    shift = np.array([1.0, 2.0, 0, 0, 0, 0, 0, -2.0])  # same covariance, |shift|^2 = 1 + 4 + 4
    assert fid(x, x + shift) == pytest.approx(9.0, abs=1e-6)


def test_fid_one_dimensional_by_hand():
    # real: mean 0, sample variance ((-1)^2 + 1^2) / 1 = 2; generated: mean 3, variance (4 + 4) / 1 = 8
    # FID = 3^2 + 2 + 8 - 2 sqrt(2 * 8) = 11
    assert fid(np.array([[-1.0], [1.0]]), np.array([[1.0], [5.0]])) == pytest.approx(11.0)


def test_fid_rejects_bad_inputs():
    with pytest.raises(ValueError, match="generated"):
        fid(_normal(10, 4), _normal(10, 5))
    with pytest.raises(ValueError, match="real"):
        fid(_normal(1, 4), _normal(10, 4))
    with pytest.raises(ValueError, match="real"):
        fid(_normal(10), _normal(10, 1))


# ----------------------------------------------------------------------------- R-Precision, MM-Dist


def test_r_precision_of_perfect_matches_is_one():
    x = _normal(100, 8)
    np.testing.assert_array_equal(r_precision(x, x), [1.0, 1.0, 1.0])


def test_r_precision_of_unrelated_pairs_is_chance():
    # 100 pools of 32: top-k chance is k / 32, standard error of top-1 about 0.003
    result = r_precision(_normal(3200, 16, seed=1), _normal(3200, 16, seed=2))
    np.testing.assert_allclose(result, np.arange(1, 4) / 32, atol=0.015)


def test_r_precision_is_cumulative_and_reaches_one_at_full_pool():
    result = r_precision(_normal(70, 4, seed=1), _normal(70, 4, seed=2), top_k=32)
    assert len(result) == 32
    assert np.all(np.diff(result) >= 0) and result[-1] == 1.0


def test_r_precision_by_hand():
    # text 0 is 0.9 from its motion and 0.1 from the other one, text 1 likewise: both rank 2nd
    text, motion = np.array([[0.0], [1.0]]), np.array([[0.9], [0.1]])
    np.testing.assert_allclose(r_precision(text, motion, pool=2, top_k=2), [0.0, 1.0])


def test_r_precision_rejects_bad_inputs():
    with pytest.raises(ValueError, match="pool=32"):
        r_precision(_normal(31, 4), _normal(31, 4))
    with pytest.raises(ValueError, match="same shape"):
        r_precision(_normal(40, 4), _normal(40, 5))
    with pytest.raises(ValueError, match="top_k"):
        r_precision(_normal(40, 4), _normal(40, 4), top_k=33)


def test_mm_dist_by_hand():
    # distances 5 (3-4-5 triangle) and 0
    assert mm_dist(np.array([[0.0, 0.0], [1.0, 1.0]]), np.array([[3.0, 4.0], [1.0, 1.0]])) == 2.5


# ----------------------------------------------------------------------------- Diversity, MultiModality


def test_diversity_of_identical_rows_is_zero():
    assert diversity(np.ones((400, 8))) == 0.0


def test_diversity_matches_expected_gaussian_distance():
    # x - y ~ N(0, 2 I) in D = 64: E|x - y| = sqrt(2) * E[chi_64] = 2 Gamma(32.5) / Gamma(32) ~ 11.27
    expected = 2 * math.exp(gammaln(32.5) - gammaln(32))
    assert diversity(_normal(2000, 64)) == pytest.approx(expected, abs=0.3)


def test_diversity_uses_all_rows_when_fewer_than_samples():
    x = _normal(20, 4)
    assert diversity(x, seed=3) == diversity(x, seed=3) > 0
    with pytest.raises(ValueError, match="embeddings"):
        diversity(x[:1])


def test_multimodality_of_identical_repeats_is_zero():
    groups = np.repeat(_normal(5, 1, 8), 30, axis=1)
    assert multimodality(groups) == 0.0


def test_multimodality_scales_with_spread_of_repeats():
    base, noise = np.repeat(_normal(5, 1, 8), 30, axis=1), _normal(5, 30, 8, seed=1)
    single = multimodality(base + noise)
    assert single > 0
    assert multimodality(base + 2 * noise) == pytest.approx(2 * single)


def test_multimodality_rejects_bad_shapes():
    with pytest.raises(ValueError, match="groups"):
        multimodality(_normal(5, 8))
    with pytest.raises(ValueError, match="groups"):
        multimodality(_normal(5, 1, 8))


# ----------------------------------------------------------------------------- classification


def test_weighted_f1_by_hand():
    # a: tp 2, 3 true, 2 predicted -> F1 = 2*2 / (3+2) = 4/5
    # b: tp 1, 2 true, 2 predicted -> 2/4 = 1/2;  c: tp 1, 1 true, 2 predicted -> 2/3
    # weighted by support 3, 2, 1: (3 * 4/5 + 2 * 1/2 + 2/3) / 6 = 61/90
    true, predicted = list("aaabbc"), list("aabbcc")
    assert weighted_f1(true, predicted) == pytest.approx(61 / 90)


def test_weighted_f1_ignores_classes_only_predicted():
    # class 0: tp 1, 2 true, 1 predicted -> 2/3; class 1: perfect -> 1; class 2 has no support
    assert weighted_f1([0, 0, 1, 1], [0, 2, 1, 1]) == pytest.approx((2 * 2 / 3 + 2 * 1) / 4)
    assert weighted_f1([1, 2, 3], [1, 2, 3]) == 1.0


def test_routing_accuracy_and_label_checks():
    assert routing_accuracy([0, 1, 2, 1], [0, 1, 1, 1]) == 0.75
    with pytest.raises(ValueError, match="true"):
        routing_accuracy([], [])
    with pytest.raises(ValueError, match="predicted"):
        weighted_f1([0, 1], [0])


def test_unknown_auroc():
    assert unknown_auroc([0.0, 1.0, 2.0], [3.0, 4.0]) == 1.0
    assert unknown_auroc([3.0, 4.0], [0.0, 1.0, 2.0]) == 0.0
    assert unknown_auroc([0.5] * 4, [0.5] * 3) == 0.5
    # pairs (unknown, known): 0.4>0.1, 0.4=0.4 (half), 0.8>0.1, 0.8>0.4 -> 3.5 / 4
    assert unknown_auroc([0.1, 0.4], [0.4, 0.8]) == 0.875
    with pytest.raises(ValueError, match="scores_unknown"):
        unknown_auroc([0.1], [])


# ----------------------------------------------------------------------------- captions


def test_tokenize():
    assert tokenize("A person, walks forward-then LEFT!") == ["a", "person", "walks", "forward", "then", "left"]


def test_bleu_of_identical_caption_is_one():
    text = "a person walks forward slowly"
    assert bleu([text], [[text, "someone runs"]]) == pytest.approx([1.0] * 4)


def test_bleu_by_hand_with_brevity_penalty():
    # hypothesis: 4 words; closest reference length 6 -> brevity penalty exp(1 - 6/4) = exp(-0.5)
    # 1-grams: "the" clipped to 1 of 2 -> 3/4; 2-grams: "the person", "person walks" -> 2/3;
    # 3-grams: "the person walks" -> 1/2; 4-grams: 0/1, smoothed to 1e-15
    refs = [["the person walks in a circle", "a person is walking around slowly there"]]
    scores = bleu(["The the person walks."], refs)
    bp = math.exp(-0.5)
    expected = [0.75 * bp, math.sqrt(0.75 * 2 / 3) * bp, (0.25) ** (1 / 3) * bp, (0.25e-15) ** 0.25 * bp]
    assert scores == pytest.approx(expected, rel=1e-6)


def test_bleu_sums_counts_over_corpus():
    # 1-grams: 4 + 0 matches of 6 -> 2/3 (sentence average would be 1/2); 2-grams: 3 + 0 of 4
    scores = bleu(["a person walks forward", "he jumps"], [["a person walks forward"], ["she sits"]], max_n=2)
    assert scores == pytest.approx([2 / 3, math.sqrt(2 / 3 * 3 / 4)], rel=1e-6)


def test_bleu_closest_reference_tie_takes_shorter():
    # hypothesis of 4 words, references of 3 and 5: closest is 3 (shorter on ties), so no penalty
    scores = bleu(["a person walks forward"], [["a person walks", "a person walks forward now"]])
    assert scores == pytest.approx([1.0] * 4)


def test_caption_metrics_reject_bad_references():
    with pytest.raises(ValueError, match=r"references\[0\]"):
        bleu(["a person walks"], ["a person walks"])
    with pytest.raises(ValueError, match="hypotheses"):
        rouge_l([], [])
    with pytest.raises(ValueError, match="references"):
        cider(["a", "b"], [["a"]])


def test_rouge_l_by_hand():
    # LCS 3: precision 3/3, recall 3/5, F = (1 + 1.44) * 0.6 / (0.6 + 1.44 * 1) = 1.464 / 2.04
    one_ref = 1.464 / 2.04
    assert rouge_l(["person walks forward"], [["a person walks forward slowly"]]) == pytest.approx(one_ref)
    # a second reference "person walks" has recall 2/2: best precision and best recall are 1 -> F = 1
    refs = [["a person walks forward slowly"], ["a person walks forward slowly", "person walks"]]
    assert rouge_l(["person walks forward"] * 2, refs) == pytest.approx((one_ref + 1.0) / 2)
    # non-contiguous LCS "a walks turns": 3 of 6 both ways -> 0.5
    assert rouge_l(["a man walks then turns left"], [["a person walks and turns right"]]) == pytest.approx(0.5)


CORPUS = ["a person walks forward", "someone jumps up high", "the man sits down slowly"]


def test_cider_of_captions_equal_to_references_is_ten():
    # no n-gram is shared between samples, so every cosine is 1 and there is no length penalty
    assert cider(CORPUS, [[c, c] for c in CORPUS]) == pytest.approx(10.0)


def test_cider_without_overlap_is_zero_and_partial_overlap_in_between():
    refs = [[c] for c in CORPUS]
    assert cider(CORPUS[1:] + CORPUS[:1], refs) == 0.0
    partial = cider(["a person walks backward", "someone jumps", "the man stands"], refs)
    assert 0.0 < partial < cider(CORPUS, refs)


def test_cider_by_hand():
    # 2 samples, every n-gram in one sample's references: the same idf log 2 everywhere, which cancels.
    # "person walks" vs "person walks fast": n=1 cosine 2 / (sqrt2 sqrt3), n=2 1 / (1 sqrt2), n=3,4 0;
    # bigram counts 1 and 2 -> penalty exp(-1 / 72); mean over n, times 10. The other sample scores 0.
    first = 10 * math.exp(-1 / 72) * (2 / math.sqrt(6) + 1 / math.sqrt(2)) / 4
    assert cider(["person walks", "x"], [["person walks fast"], ["someone sits"]]) == pytest.approx(first / 2)


# ----------------------------------------------------------------------------- continual learning

# r[i][j]: score on task j after training task i; task 0 improved when task 1 was trained
MATRIX = np.array(
    [
        [0.7, 0.1, 0.2],
        [0.9, 0.8, 0.3],
        [0.6, 0.6, 0.85],
    ]
)


def test_average_after_last():
    assert average_after_last(MATRIX) == pytest.approx((0.6 + 0.6 + 0.85) / 3)


def test_forgetting_rate_uses_best_earlier_score():
    # task 0: best of 0.7, 0.9 minus 0.6 = 0.3; task 1: 0.8 - 0.6 = 0.2
    assert forgetting_rate(MATRIX) == pytest.approx(0.25)


def test_backward_transfer():
    # (0.6 - 0.7 + 0.6 - 0.8) / 2
    assert backward_transfer(MATRIX) == pytest.approx(-0.15)


def test_forward_transfer():
    # task 1: 0.1 - 0.15; task 2: 0.3 - 0.1 -> (-0.05 + 0.2) / 2
    assert forward_transfer(MATRIX, [0.05, 0.15, 0.1]) == pytest.approx(0.075)


def test_continual_metrics_ignore_untrained_tasks_and_check_shapes():
    future = MATRIX.copy()
    future[0, 2] = np.nan  # never read by the final average, forgetting or backward transfer
    assert forgetting_rate(future) == pytest.approx(0.25)
    assert backward_transfer(future) == pytest.approx(-0.15)
    with pytest.raises(ValueError, match="matrix"):
        forgetting_rate(MATRIX[:2])
    with pytest.raises(ValueError, match="matrix"):
        backward_transfer(MATRIX[:1, :1])
    with pytest.raises(ValueError, match="baseline"):
        forward_transfer(MATRIX, [0.1, 0.2])
