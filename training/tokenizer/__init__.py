"""Stage 1: the VQ-VAE motion tokenizer (training, evaluation, ONNX export, CLI)."""
