"""SeqSeg's detect-then-segment cascade (METHODS.md, method 2, "Cascade"): a tumour-present decision per slice, the
DQL detector's box (:mod:`npcseg.detection`) enlarged 1.5 times, a segmentation network trained on such crops, the
crop's probabilities pasted back, 3D post-processing; training of the three pieces, cross-validation as an
``npcseg compare`` row (Table 6) and prediction on raw cases (``npcseg predict --method seqseg``)."""
