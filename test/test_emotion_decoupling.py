"""ES-MoE's causal-guided emotion decoupling block: masking, learning emotions from token features, and
its file. (Whether its emotions transfer to unseen scenarios is what the continual benchmark's AWF
measures; a small synthetic task does not settle it.)"""

import numpy as np
import pytest
import torch

from training.continual.emotion_decoupling import DecouplingConfig, EmotionDecoupling

DIM, TOKENS, EMOTIONS = 16, 8, 3


def requests(scenario: int, count: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Token features of one scenario: a strong scenario offset on every token (the confounder) and the
    emotion's cue on two random tokens only; the rest is noise."""
    rng = np.random.default_rng(seed)
    cues = np.random.default_rng(0).normal(size=(EMOTIONS, DIM)) * 2.0
    offset = np.random.default_rng(100 + scenario).normal(size=DIM) * 1.0
    labels = rng.integers(0, EMOTIONS, count)
    x = rng.normal(size=(count, TOKENS, DIM)) * 0.5 + offset
    for row, label in enumerate(labels):
        x[row, rng.choice(TOKENS, 2, replace=False)] += cues[label]
    mask = np.ones((count, TOKENS))
    mask[: count // 2, -2:] = 0  # half the requests are shorter (padding at the end)
    x[: count // 2, -2:] = 0.0
    return torch.tensor(x, dtype=torch.float32), torch.tensor(mask), torch.tensor(labels)


def test_padding_never_changes_a_request():
    torch.manual_seed(0)
    block = EmotionDecoupling(DecouplingConfig(features=DIM, hidden=8, dictionary=4, emotions=EMOTIONS)).eval()
    x, mask, _ = requests(0, 4, seed=1)
    short = x[:1, : TOKENS - 2]
    padded = torch.cat([short, torch.randn(1, 2, DIM) * 9.0], dim=1)  # garbage where the mask is 0
    with torch.no_grad():
        a, _ = block(short, torch.ones(1, TOKENS - 2))
        b, _ = block(padded, torch.tensor([[1.0] * (TOKENS - 2) + [0.0, 0.0]]))
    assert torch.allclose(a, b, atol=1e-5)


def test_it_learns_emotions_from_a_few_cue_tokens_under_a_scenario_offset():
    torch.manual_seed(0)
    train = [requests(s, 200, seed=s) for s in (0, 1)]
    x, mask, labels = (torch.cat(parts) for parts in zip(*train))
    centroids = x[mask.bool()][torch.randperm(int(mask.sum()))[:8]]  # stands in for K-means
    block = EmotionDecoupling(DecouplingConfig(features=DIM, hidden=16, dictionary=8, emotions=EMOTIONS), centroids)
    optimiser = torch.optim.Adam(block.parameters(), lr=3e-3)
    for _ in range(300):
        _, logits = block(x, mask)
        loss = torch.nn.functional.cross_entropy(logits, labels)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    held_x, held_mask, held_labels = requests(1, 200, seed=7)  # new requests of a trained scenario
    with torch.no_grad():
        accuracy = (block(held_x, held_mask)[1].argmax(1) == held_labels).float().mean().item()
    assert accuracy > 0.9, f"emotion accuracy {accuracy:.2f} on held-out requests"


def test_saved_block_loads_without_pickle_and_gives_the_same_output(tmp_path):
    torch.manual_seed(0)
    block = EmotionDecoupling(DecouplingConfig(features=DIM, hidden=8, dictionary=4, emotions=EMOTIONS)).eval()
    path = block.save(tmp_path)
    assert path.suffix == ".safetensors"
    again = EmotionDecoupling.load(tmp_path)
    x, mask, _ = requests(0, 5, seed=3)
    with torch.no_grad():
        assert torch.equal(block(x, mask)[1], again(x, mask)[1])
    assert again.config == block.config


def test_a_dictionary_of_the_wrong_shape_is_refused():
    with pytest.raises(ValueError, match="dictionary must be"):
        EmotionDecoupling(DecouplingConfig(features=DIM, dictionary=4), torch.zeros(5, DIM))
