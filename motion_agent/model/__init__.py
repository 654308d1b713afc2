"""The networks: backbone, frozen base model, motion-language model, VQ-VAE tokenizer."""
