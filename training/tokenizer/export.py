"""ONNX export of a trained tokenizer, so a robot can decode tokens with onnxruntime alone.

The decoder graph is `MotionTokenizer.decode_tokens` (codebook lookup + decoder convolutions) with a
dynamic batch and token axis; the encoder graph reads normalised features with a dynamic frame axis
and returns code indices. Both land in the tokenizer folder next to `onnx.json`, which stamps them
with the fingerprint of the weights they came from, so a stale ONNX file is refused at load.

The exporter is torch's TorchScript-based one (`dynamo=False`): it needs no packages beyond torch and
handles the dynamic axes of these plain convolutional graphs; the `onnx` package is only used here,
to check the written files.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from motion_agent.model.tokenizer import DECODER_ONNX, ENCODER_ONNX, ONNX_STAMP, MotionTokenizer
from motion_agent.model.tokenizer_onnx import OnnxTokenDecoder

OPSET = 17  # supported by every onnxruntime the project allows (>= 1.18)
EXAMPLE_TOKENS = 8  # length of the tracing example; the exported axis is dynamic anyway


class _DecoderGraph(nn.Module):
    def __init__(self, tokenizer: MotionTokenizer) -> None:
        super().__init__()
        self.tokenizer = tokenizer

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.tokenizer.decode_tokens(tokens)


class _EncoderGraph(nn.Module):
    def __init__(self, tokenizer: MotionTokenizer) -> None:
        super().__init__()
        self.tokenizer = tokenizer

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.tokenizer.encode_features(features)


def _export(module: nn.Module, example: torch.Tensor, path: Path, names: tuple[str, str], axes: dict) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's deprecation notices are not actionable here
        torch.onnx.export(
            module,
            (example,),
            str(path),
            dynamo=False,
            input_names=[names[0]],
            output_names=[names[1]],
            dynamic_axes=axes,
            opset_version=OPSET,
        )
    import onnx

    onnx.checker.check_model(onnx.load(str(path)))


def export_onnx(tokenizer: MotionTokenizer, folder: str | Path, encoder: bool = True) -> list[Path]:
    """Save the tokenizer into `folder` (if it is not there yet) and export its decoder (and encoder)."""
    folder = Path(folder)
    tokenizer = tokenizer.cpu().eval()
    tokenizer.save(folder)
    fingerprint = tokenizer.fingerprint()
    written = [folder / DECODER_ONNX]
    tokens = torch.zeros(1, EXAMPLE_TOKENS, dtype=torch.long)
    _export(
        _DecoderGraph(tokenizer),
        tokens,
        written[0],
        ("tokens", "features"),
        {"tokens": {0: "batch", 1: "tokens"}, "features": {0: "batch", 1: "frames"}},
    )
    if encoder:
        written.append(folder / ENCODER_ONNX)
        frames = torch.zeros(1, EXAMPLE_TOKENS * tokenizer.downsampling, tokenizer.config.feature_dim)
        _export(
            _EncoderGraph(tokenizer),
            frames,
            written[1],
            ("features", "tokens"),
            {"features": {0: "batch", 1: "frames"}, "tokens": {0: "batch", 1: "tokens"}},
        )
    stamp = {"fingerprint": fingerprint, "opset": OPSET, "files": [p.name for p in written]}
    (folder / ONNX_STAMP).write_text(json.dumps(stamp, indent=2) + "\n")
    return written


def onnx_max_abs_diff(
    tokenizer: MotionTokenizer, folder: str | Path, trials: int = 4, max_tokens: int = 50, seed: int = 0
) -> float:
    """Largest |torch - onnxruntime| over decoded random token sequences of random lengths."""
    decoder = OnnxTokenDecoder(folder)
    generator = np.random.default_rng(seed)
    worst = 0.0
    for _ in range(trials):
        length = int(generator.integers(1, max_tokens + 1))
        tokens = generator.integers(0, tokenizer.config.codebook_size, size=(2, length))
        reference = tokenizer.decode(torch.as_tensor(tokens)).cpu().numpy()
        worst = max(worst, float(np.abs(decoder.decode(tokens) - reference).max()))
    return worst
