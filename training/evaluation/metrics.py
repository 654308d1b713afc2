"""Every evaluation metric of the project, in one place, with the convention each one follows.

Motion generation (HumanML3D / T2M evaluation, Guo et al. 2022, "Generating Diverse and Natural 3D
Human Motions from Text"): `fid`, `r_precision`, `mm_dist`, `diversity` and `multimodality` work on
embeddings from the text/motion evaluator, one row per sample, (N, D) float arrays. Row i of a text
array and row i of a motion array form a matched pair. Distances are Euclidean. Random subsets are
drawn with `numpy.random.default_rng(seed)`, so a figure is reproducible for a given seed; the
reference code draws from the global numpy generator and reports the mean over 20 repetitions,
which a caller gets by averaging over seeds.

Motion captioning (coco-caption, Chen et al. 2015, the `pycocoevalcap` code): `bleu`, `rouge_l` and
`cider` take one hypothesis string per sample and a non-empty list of reference strings per sample.
Every string goes through the one shared `tokenize` (lowercase, punctuation to spaces, split on
whitespace), standing in for coco-caption's PTB tokenizer. BLEU is corpus-level (counts summed over
the set, not sentence scores averaged); ROUGE-L and CIDEr-D are per-sentence scores averaged over
the set, as coco-caption reports them.

Classification: `weighted_f1` (scikit-learn's average="weighted"), `routing_accuracy`, and
`unknown_auroc` (higher score = more likely an unknown task; Mann-Whitney U, ties count half).

Continual learning: `matrix` is a (T, T) array with matrix[i, j] = score on task j after training
task i (zero-based; the task order of the stream). The final figures (AR, AF, AD, ...: whatever the
score is) are `average_after_last`, the mean of the last row. `forgetting_rate` follows the ES-MoE
convention (best score a task ever had before the last task was trained, minus its final score),
`backward_transfer` and `forward_transfer` the GEM ones (Lopez-Paz & Ranzato 2017). Entries above
the diagonal (tasks not trained yet) are read only by `forward_transfer`, and only on the first
superdiagonal, so they may be NaN otherwise.

Wrong shapes, mismatched lengths and empty inputs raise ValueError naming the argument.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence

import numpy as np
from scipy import linalg
from scipy.spatial.distance import cdist
from scipy.stats import rankdata

DEFAULT_SEED = 0
R_PRECISION_POOL = 32  # T2M evaluator batch: each text is ranked against 32 motions
R_PRECISION_TOP_K = 3
DIVERSITY_SAMPLES = 300  # T2M diversity_times
MULTIMODALITY_SAMPLES = 10  # T2M mm_times
FID_EPS = 1e-6  # diagonal offset when sqrtm of the covariance product is not finite (pytorch-fid)
FID_IMAG_ATOL = 1e-3  # largest imaginary part on the diagonal of sqrtm that counts as rounding
BLEU_MAX_N = 4
BLEU_TINY = 1e-15  # coco-caption bleu_scorer smoothing: numerator ...
BLEU_SMALL = 1e-9  # ... and denominator of every precision and of the length ratio
ROUGE_BETA = 1.2  # coco-caption Rouge: recall weighted 1.2 times precision
CIDER_N = 4
CIDER_SIGMA = 6.0  # CIDEr-D gaussian length penalty
CIDER_SCALE = 10.0  # CIDEr-D multiplies the score by 10

Label = str | int
_NOT_WORD = re.compile(r"[^\w\s]|_")


# ----------------------------------------------------------------------------- input checks


def _as_matrix(x: np.ndarray, name: str, min_rows: int = 1) -> np.ndarray:
    """`x` as a float (N, D) array with at least `min_rows` rows, or ValueError naming `name`."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (N, D) array, got shape {x.shape}")
    if len(x) < min_rows or x.shape[1] == 0:
        raise ValueError(f"{name} needs at least {min_rows} row(s) and 1 column, got shape {x.shape}")
    return x


def _as_vector(x: Sequence[float] | np.ndarray, name: str) -> np.ndarray:
    """`x` as a non-empty float 1-D array, or ValueError naming `name`."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 1 or len(x) == 0:
        raise ValueError(f"{name} must be a non-empty 1-D sequence, got shape {x.shape}")
    return x


def _matched_pairs(text: np.ndarray, motion: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Text and motion embeddings as (N, D) arrays of the same shape: row i of each is a pair."""
    text, motion = _as_matrix(text, "text"), _as_matrix(motion, "motion")
    if text.shape != motion.shape:
        raise ValueError(f"text {text.shape} and motion {motion.shape} must have the same shape")
    return text, motion


def _matched_labels(true: Sequence[Label], predicted: Sequence[Label]) -> tuple[list, list]:
    """Two equally long, non-empty label lists."""
    true, predicted = list(true), list(predicted)
    if not true:
        raise ValueError("true is empty")
    if len(true) != len(predicted):
        raise ValueError(f"true ({len(true)}) and predicted ({len(predicted)}) differ in length")
    return true, predicted


def _positive(value: int, name: str) -> int:
    if value < 1:
        raise ValueError(f"{name} must be at least 1, got {value}")
    return value


# ----------------------------------------------------------------------------- motion generation


def _gaussian(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (D, D) sample covariance of the rows, as the T2M evaluator fits them."""
    return x.mean(axis=0), np.atleast_2d(np.cov(x, rowvar=False))


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Fréchet distance |mu1-mu2|^2 + tr(S1 + S2 - 2 sqrt(S1 S2)) between two Gaussians.

    Numerics as the reference (pytorch-fid, copied into the T2M evaluator): when sqrtm is not
    finite (singular product) it is retried with FID_EPS * I added to both covariances; imaginary
    parts from rounding are dropped, and large ones (a broken covariance, usually far fewer
    samples than dimensions) raise instead of giving a meaningless number.
    """
    diff = mu1 - mu2
    covmean = linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        offset = np.eye(len(sigma1)) * FID_EPS
        covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=FID_IMAG_ATOL):
            raise ValueError(f"sqrtm of the covariance product has imaginary part {np.abs(covmean.imag).max():g}")
        covmean = covmean.real
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def fid(real: np.ndarray, generated: np.ndarray) -> float:
    """FID: Fréchet distance between Gaussians fitted to real and generated (N, D) embeddings.

    The two sets may differ in size but not in D; each needs two rows for a covariance.
    """
    real, generated = _as_matrix(real, "real", 2), _as_matrix(generated, "generated", 2)
    if real.shape[1] != generated.shape[1]:
        raise ValueError(f"real has D={real.shape[1]} but generated has D={generated.shape[1]}")
    return frechet_distance(*_gaussian(real), *_gaussian(generated))


def _own_rank(distances: np.ndarray) -> np.ndarray:
    """For each row i of a square distance matrix, the 0-based rank of column i in that row.

    Ties are broken by column position (stable sort), which only matters for degenerate
    embeddings; the T2M code's plain argsort leaves tie order unspecified.
    """
    order = np.argsort(distances, axis=1, kind="stable")
    return np.argmax(order == np.arange(len(distances))[:, None], axis=1)


def r_precision(
    text: np.ndarray,
    motion: np.ndarray,
    pool: int = R_PRECISION_POOL,
    top_k: int = R_PRECISION_TOP_K,
    seed: int = DEFAULT_SEED,
) -> np.ndarray:
    """HumanML3D R-Precision: fraction of texts whose own motion is among the k nearest in its pool.

    As the T2M evaluator does with its shuffled, drop_last loader of batch 32: pairs are shuffled
    with `seed`, cut into consecutive pools of `pool` pairs (the remainder is dropped), and each
    text is ranked against the `pool` motions of its pool by Euclidean distance. Returns the
    cumulative fractions for top-1 .. top-`top_k` (chance level is k / pool).
    """
    text, motion = _matched_pairs(text, motion)
    _positive(pool, "pool")
    if not 1 <= top_k <= pool:
        raise ValueError(f"top_k must be in [1, pool={pool}], got {top_k}")
    if len(text) < pool:
        raise ValueError(f"text/motion need at least pool={pool} pairs, got {len(text)}")
    n_used = len(text) // pool * pool
    pools = np.random.default_rng(seed).permutation(len(text))[:n_used].reshape(-1, pool)
    ranks = np.concatenate([_own_rank(cdist(text[idx], motion[idx])) for idx in pools])
    return np.array([(ranks < k).mean() for k in range(1, top_k + 1)])


def mm_dist(text: np.ndarray, motion: np.ndarray) -> float:
    """MM-Dist (T2M "matching score"): mean Euclidean distance between matched text/motion rows."""
    text, motion = _matched_pairs(text, motion)
    return float(np.linalg.norm(text - motion, axis=1).mean())


def diversity(embeddings: np.ndarray, samples: int = DIVERSITY_SAMPLES, seed: int = DEFAULT_SEED) -> float:
    """Diversity: mean distance between the rows of two random index sets of size `samples`.

    As T2M: each set is drawn without replacement from all rows, independently, and row a_i is
    paired with row b_i (the same row may be drawn in both, giving 0, as in the reference). The
    reference requires more rows than `samples`; here fewer rows means both sets are all the
    rows (two random permutations), so small evaluation sets still give a figure.
    """
    x = _as_matrix(embeddings, "embeddings", 2)
    n = min(_positive(samples, "samples"), len(x))
    rng = np.random.default_rng(seed)
    first, second = rng.choice(len(x), n, replace=False), rng.choice(len(x), n, replace=False)
    return float(np.linalg.norm(x[first] - x[second], axis=1).mean())


def multimodality(groups: np.ndarray, samples: int = MULTIMODALITY_SAMPLES, seed: int = DEFAULT_SEED) -> float:
    """MultiModality: mean distance between random pairs of generations for the same text.

    `groups` is (n_texts, n_repeats, D). As T2M: two index sets of size `samples` are drawn
    without replacement from the repeats, once, and used for every text; the distances are
    averaged over texts and pairs. With fewer repeats than `samples` all repeats are used (two
    random permutations), as in `diversity`.
    """
    g = np.asarray(groups, dtype=np.float64)
    if g.ndim != 3 or g.shape[0] == 0 or g.shape[1] < 2 or g.shape[2] == 0:
        raise ValueError(f"groups must be (n_texts >= 1, n_repeats >= 2, D >= 1), got shape {g.shape}")
    n = min(_positive(samples, "samples"), g.shape[1])
    rng = np.random.default_rng(seed)
    first, second = rng.choice(g.shape[1], n, replace=False), rng.choice(g.shape[1], n, replace=False)
    return float(np.linalg.norm(g[:, first] - g[:, second], axis=2).mean())


# ----------------------------------------------------------------------------- classification


def weighted_f1(true: Sequence[Label], predicted: Sequence[Label]) -> float:
    """Support-weighted mean of per-class F1 over the classes present in `true`.

    scikit-learn's average="weighted": classes only ever predicted have weight 0 (but still count
    as false positives elsewhere). Per class F1 = 2 tp / (n_true + n_predicted), the same as
    2PR / (P + R) and 0 when there is no true positive.
    """
    true, predicted = _matched_labels(true, predicted)
    n_predicted = Counter(predicted)
    tp = Counter(t for t, p in zip(true, predicted) if t == p)
    support = Counter(true)
    total = sum(n * 2 * tp[c] / (n + n_predicted[c]) for c, n in support.items())
    return total / len(true)


def routing_accuracy(true: Sequence[Label], predicted: Sequence[Label]) -> float:
    """Fraction of samples routed to the right task / expert."""
    true, predicted = _matched_labels(true, predicted)
    return sum(t == p for t, p in zip(true, predicted)) / len(true)


def unknown_auroc(scores_known: Sequence[float], scores_unknown: Sequence[float]) -> float:
    """AUROC of telling unknown-task samples from known ones, a higher score meaning "unknown".

    Computed as the Mann-Whitney U statistic over all (known, unknown) pairs: the probability
    that an unknown sample scores higher than a known one, ties counting half (average ranks).
    """
    known, unknown = _as_vector(scores_known, "scores_known"), _as_vector(scores_unknown, "scores_unknown")
    ranks = rankdata(np.concatenate([known, unknown]))
    u = ranks[len(known) :].sum() - len(unknown) * (len(unknown) + 1) / 2
    return float(u / (len(known) * len(unknown)))


# ----------------------------------------------------------------------------- captioning


def tokenize(text: str) -> list[str]:
    """Lowercase, turn punctuation into spaces, split on whitespace: the one tokenizer of all
    caption metrics (a dependency-free stand-in for coco-caption's PTB tokenizer, which also
    lowercases and drops punctuation). Punctuation becomes a space rather than vanishing, so
    "forward,then" is two words."""
    return _NOT_WORD.sub(" ", text.lower()).split()


def _tokenized_captions(hypotheses: list[str], references: list[list[str]]) -> tuple[list, list]:
    """Tokenised hypotheses and reference lists, checked to be non-empty and paired."""
    if not hypotheses:
        raise ValueError("hypotheses is empty")
    if len(hypotheses) != len(references):
        raise ValueError(f"hypotheses ({len(hypotheses)}) and references ({len(references)}) differ in length")
    for i, refs in enumerate(references):
        if isinstance(refs, str) or not refs:
            raise ValueError(f"references[{i}] must be a non-empty list of strings, got {refs!r}")
    return [tokenize(h) for h in hypotheses], [[tokenize(r) for r in refs] for refs in references]


def _ngram_counts(tokens: list[str], max_n: int) -> Counter:
    """Counts of every 1..max_n-gram (as tuples) of a token list."""
    return Counter(tuple(tokens[i : i + n]) for n in range(1, max_n + 1) for i in range(len(tokens) - n + 1))


def _closest_length(hyp_len: int, ref_lens: list[int]) -> int:
    """coco-caption "closest" reference length: nearest to the hypothesis, the shorter on ties."""
    return min((abs(r - hyp_len), r) for r in ref_lens)[1]


def bleu(hypotheses: list[str], references: list[list[str]], max_n: int = BLEU_MAX_N) -> list[float]:
    """Corpus BLEU-1 .. BLEU-max_n exactly as coco-caption's bleu_scorer (option "closest").

    n-gram counts of each hypothesis are clipped to their maximum count in any one of its
    references, then summed over the corpus; BLEU-n is the geometric mean of the precisions
    1..n. Each precision (and the length ratio) is smoothed as (x + 1e-15) / (y + 1e-9), so a
    corpus without any 4-gram match gets a tiny BLEU-4, not 0 or a division error. The brevity
    penalty exp(1 - r/c) uses, per sentence, the reference length closest to the hypothesis.
    """
    hyps, refs = _tokenized_captions(hypotheses, references)
    _positive(max_n, "max_n")
    correct, guess = np.zeros(max_n), np.zeros(max_n)
    hyp_len = ref_len = 0
    for hyp, ref_set in zip(hyps, refs):
        max_ref = Counter()
        for ref in ref_set:
            max_ref |= _ngram_counts(ref, max_n)  # | keeps the maximum count per n-gram
        for gram, count in _ngram_counts(hyp, max_n).items():
            correct[len(gram) - 1] += min(count, max_ref[gram])
        guess += [max(0, len(hyp) - k) for k in range(max_n)]
        hyp_len += len(hyp)
        ref_len += _closest_length(len(hyp), [len(r) for r in ref_set])
    precisions = (correct + BLEU_TINY) / (guess + BLEU_SMALL)
    scores = np.cumprod(precisions) ** (1 / np.arange(1, max_n + 1))
    ratio = (hyp_len + BLEU_TINY) / (ref_len + BLEU_SMALL)
    penalty = math.exp(1 - 1 / ratio) if ratio < 1 else 1.0
    return [float(s * penalty) for s in scores]


def _lcs(a: list[str], b: list[str]) -> int:
    """Length of the longest common subsequence of two token lists (dynamic programming)."""
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b):
            current.append(previous[j] + 1 if x == y else max(previous[j + 1], current[j]))
        previous = current
    return previous[-1]


def _rouge_l_sentence(hyp: list[str], refs: list[list[str]]) -> float:
    """coco-caption Rouge.calc_score: F_beta of the best precision and the best recall, each
    maximised over the references separately (they may come from different references)."""
    if not hyp:
        return 0.0
    lcs = [_lcs(hyp, ref) for ref in refs]
    precision = max(n / len(hyp) for n in lcs)
    recall = max(n / len(ref) if ref else 0.0 for n, ref in zip(lcs, refs))
    if precision == 0 or recall == 0:
        return 0.0
    beta2 = ROUGE_BETA**2
    return (1 + beta2) * precision * recall / (recall + beta2 * precision)


def rouge_l(hypotheses: list[str], references: list[list[str]]) -> float:
    """ROUGE-L as coco-caption: LCS-based F-measure (beta = 1.2) per sentence, averaged."""
    hyps, refs = _tokenized_captions(hypotheses, references)
    return float(np.mean([_rouge_l_sentence(h, r) for h, r in zip(hyps, refs)]))


def _tfidf(counts: Counter, doc_freq: Counter, log_n_docs: float) -> tuple[list[dict], np.ndarray, int]:
    """coco-caption CIDEr-D counts2vec: per-order tf-idf vectors, their norms, and the length.

    idf = log(number of samples) - log(max(1, samples whose references contain the n-gram)).
    The length is the number of bigrams, as the reference code counts it (its `n == 1` is the
    bigram index); length differences equal word-count differences for sentences of 2+ words.
    """
    vectors: list[dict] = [{} for _ in range(CIDER_N)]
    for gram, tf in counts.items():
        vectors[len(gram) - 1][gram] = tf * (log_n_docs - math.log(max(1.0, doc_freq[gram])))
    norms = np.array([math.sqrt(sum(v * v for v in vec.values())) for vec in vectors])
    length = sum(tf for gram, tf in counts.items() if len(gram) == 2)
    return vectors, norms, length


def _cider_similarity(hyp: tuple, ref: tuple) -> np.ndarray:
    """CIDEr-D per-order similarity: cosine with hypothesis weights clipped to the reference's,
    times the gaussian length penalty exp(-delta^2 / (2 sigma^2))."""
    (vec_h, norm_h, len_h), (vec_r, norm_r, len_r) = hyp, ref
    values = np.zeros(CIDER_N)
    for n in range(CIDER_N):
        values[n] = sum(min(w, vec_r[n].get(g, 0.0)) * vec_r[n].get(g, 0.0) for g, w in vec_h[n].items())
        if norm_h[n] != 0 and norm_r[n] != 0:
            values[n] /= norm_h[n] * norm_r[n]
    return values * math.exp(-((len_h - len_r) ** 2) / (2 * CIDER_SIGMA**2))


def cider(hypotheses: list[str], references: list[list[str]]) -> float:
    """CIDEr-D as coco-caption's ciderD scorer, document frequencies taken from the references
    of the evaluated set itself.

    Per sample: the similarity to each reference averaged over n = 1..4, averaged over the
    references, times 10; the result is the mean over samples. Because idf comes from this set,
    an n-gram in every sample's references weighs nothing, and a set of one sample scores 0.
    """
    hyps, refs = _tokenized_captions(hypotheses, references)
    hyp_counts = [_ngram_counts(h, CIDER_N) for h in hyps]
    ref_counts = [[_ngram_counts(r, CIDER_N) for r in ref_set] for ref_set in refs]
    doc_freq = Counter(gram for ref_set in ref_counts for gram in set().union(*ref_set))
    log_n_docs = math.log(len(ref_counts))
    scores = []
    for counts, ref_set in zip(hyp_counts, ref_counts):
        vec_h = _tfidf(counts, doc_freq, log_n_docs)
        similarities = [_cider_similarity(vec_h, _tfidf(r, doc_freq, log_n_docs)).mean() for r in ref_set]
        scores.append(CIDER_SCALE * np.mean(similarities))
    return float(np.mean(scores))


# ----------------------------------------------------------------------------- continual learning


def _task_matrix(matrix: np.ndarray, min_tasks: int = 1) -> np.ndarray:
    """`matrix` as a float (T, T) array with T >= min_tasks."""
    m = np.asarray(matrix, dtype=np.float64)
    if m.ndim != 2 or m.shape[0] != m.shape[1] or len(m) < min_tasks:
        raise ValueError(f"matrix must be a square (T, T) array with T >= {min_tasks}, got shape {m.shape}")
    return m


def average_after_last(matrix: np.ndarray) -> float:
    """Mean score over all tasks after the last one was trained (the last row): the one average
    behind every "average" figure (AR, AF, AD, ...)."""
    return float(_task_matrix(matrix)[-1].mean())


def forgetting_rate(matrix: np.ndarray) -> float:
    """FR (ES-MoE convention): for each task j < T-1, the best score it had after training any
    task k in [j, T-2], minus its final score; averaged. Positive = forgotten."""
    m = _task_matrix(matrix, 2)
    last = len(m) - 1
    best = np.array([m[j:last, j].max() for j in range(last)])
    return float((best - m[last, :last]).mean())


def backward_transfer(matrix: np.ndarray) -> float:
    """BWT (GEM): mean over j < T-1 of final score minus the score right after training task j.
    Negative = forgetting."""
    m = _task_matrix(matrix, 2)
    return float((m[-1, :-1] - np.diagonal(m)[:-1]).mean())


def forward_transfer(matrix: np.ndarray, baseline: Sequence[float]) -> float:
    """FWT (GEM): mean over j > 0 of the score on task j just before training it, matrix[j-1, j],
    minus `baseline[j]` (e.g. the score of an untrained / independently initialised model)."""
    m = _task_matrix(matrix, 2)
    b = _as_vector(baseline, "baseline")
    if len(b) != len(m):
        raise ValueError(f"baseline has {len(b)} entries, matrix has T={len(m)} tasks")
    return float((np.diagonal(m, offset=1) - b[1:]).mean())
