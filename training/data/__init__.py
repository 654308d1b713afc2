"""Data: the procedural corpus, the HumanML3D layout, task streams, sentence embeddings."""
