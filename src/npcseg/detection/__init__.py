"""SeqSeg's instance level: a deep-Q-learning agent that moves a box onto the tumour of a slice, and the
detect-then-segment cascade (METHODS.md, method 2)."""
