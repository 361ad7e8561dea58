"""DICOM in and out: series discovery (series.py), sequence naming rules (mapping.py), volumes with header
geometry (volume.py), MR series writing (write.py), study import into a cohort (importer.py), and RT Structure
Sets / Segmentations (rtstruct.py, seg.py, contours.py, outputs.py)."""
