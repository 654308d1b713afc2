"""Offline training: data, task streams, tokenizer, language model, continual methods, evaluation.

Training code may import `motion_agent` (the runtime); the runtime never imports `training`.
"""
