"""Reading and writing images, cohorts and clinical data."""
