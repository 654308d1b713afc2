"""Procedural emotional motion corpus: scenarios x action programs x emotions, with paraphrased
captions, written in the HumanML3D layout so that every trainer reads it like the real data set."""
