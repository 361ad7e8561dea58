"""SeqSeg's instance level (METHODS.md, method 2): a deep-Q-learning agent that moves a box onto the tumour of a
slice, and a supervised box-regressor baseline; the detect-then-segment cascade using them: :mod:`npcseg.cascade`."""
