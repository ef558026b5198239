"""Model construction: tiny random test models, the SD1.5 shape on ``meta``, loading real weights, and
writing weights back in the original layouts (LDM checkpoints, AnimateDiff motion modules)."""
