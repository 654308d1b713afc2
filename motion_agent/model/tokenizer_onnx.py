"""The tokenizer's exported ONNX decoder, run by onnxruntime, and the choice of decoder backend.

A robot decodes motion tokens with either the torch VQ-VAE (`tokenizer.MotionTokenizer`) or the ONNX
file the exporter wrote beside it (`training/tokenizer/export.py`); `agent.decoder_backend` picks one.
Both give the same features; the ONNX one needs no torch compute.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from motion_agent.config import load_yaml
from motion_agent.model.tokenizer import (
    BACKENDS,
    CONFIG_FILE,
    DECODER_ONNX,
    ONNX_STAMP,
    MotionTokenizer,
    TokenizerConfig,
    check_tokens,
    folder_fingerprint,
    load_stats,
)


class StaleExport(ValueError):
    """The folder's exported decoder was made from other tokenizer weights than it holds now."""


class OnnxTokenDecoder:
    """The exported decoder run by onnxruntime: same `decode` as MotionTokenizer, without torch compute.

    `decode` returns a torch tensor when given one and a numpy array otherwise. It refuses ONNX files
    exported from a different tokenizer than the folder's weights (the stamp in `onnx.json`).
    """

    def __init__(self, folder: str | Path, providers: list[str] | None = None, threads: int = 1) -> None:
        """`threads`: onnxruntime's intra-op threads. One by default: a 4 s motion decodes in about 1 ms on one
        core as on two, and a second pool of spinning threads would compete with the language model's."""
        import onnxruntime

        self.folder = Path(folder)
        stamp_path = self.folder / ONNX_STAMP
        if not stamp_path.is_file() or not (self.folder / DECODER_ONNX).is_file():
            raise FileNotFoundError(
                f"{self.folder} has no exported decoder ({DECODER_ONNX}, {ONNX_STAMP}); export it first"
            )
        self.config = load_yaml(TokenizerConfig, self.folder / CONFIG_FILE)
        self.mean, self.std = load_stats(self.folder, self.config)
        self._fingerprint = folder_fingerprint(self.folder)
        stamp = json.loads(stamp_path.read_text())
        if stamp.get("fingerprint") != self._fingerprint:
            raise StaleExport(
                f"{self.folder / DECODER_ONNX} was exported from tokenizer {stamp.get('fingerprint')}, "
                f"but the folder holds {self._fingerprint}; export it again"
            )
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        self.session = onnxruntime.InferenceSession(
            str(self.folder / DECODER_ONNX), options, providers=providers or ["CPUExecutionProvider"]
        )
        self.input_name = self.session.get_inputs()[0].name

    @property
    def downsampling(self) -> int:
        return self.config.downsampling

    def fingerprint(self) -> str:
        return self._fingerprint

    def decode(self, tokens: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
        """Tokens (B, N) -> normalised features (B, N * downsampling, 263), float32."""
        as_torch = isinstance(tokens, torch.Tensor)
        array = tokens.detach().cpu().numpy() if as_torch else np.asarray(tokens)
        check_tokens(array, self.config.codebook_size)
        (features,) = self.session.run(None, {self.input_name: array.astype(np.int64)})
        return torch.from_numpy(features) if as_torch else features

    def denormalize(self, features: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
        if isinstance(features, torch.Tensor):
            return features * torch.as_tensor(self.std) + torch.as_tensor(self.mean)
        return np.asarray(features, dtype=np.float32) * self.std + self.mean


def load_decoder(
    folder: str | Path, backend: str = "auto", torch_decoder: MotionTokenizer | None = None
) -> MotionTokenizer | OnnxTokenDecoder:
    """The decoder a runtime config selects: "torch" (MotionTokenizer), "onnx" (OnnxTokenDecoder), or "auto":
    onnx where the folder holds a current export (every tokenizer `motion-agent-train tokenizer` writes),
    torch where the export is missing or stale. `torch_decoder`: the folder's MotionTokenizer when the
    caller has it loaded already (then it is returned rather than loaded again)."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown tokenizer backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if backend == "onnx":
        return OnnxTokenDecoder(folder)
    if backend == "auto":
        try:
            return OnnxTokenDecoder(folder)
        except (FileNotFoundError, StaleExport):
            pass
    return torch_decoder if torch_decoder is not None else MotionTokenizer.load(folder)
