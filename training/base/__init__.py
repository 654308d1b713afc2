"""Stage 2: the frozen base model (motion tokens + base adapter on the backbone)."""
