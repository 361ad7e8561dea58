"""npcseg: automatic nasopharyngeal carcinoma segmentation on multi-sequence MRI."""

from __future__ import annotations

__version__ = "0.1.0"
