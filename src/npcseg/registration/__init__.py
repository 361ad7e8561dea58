"""Rigid co-registration of MRI sequences (T1, T1c onto T2) and resampling."""
