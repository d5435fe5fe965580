"""Data shared by every stage: canonical rows and column presets, sources, and final-answer extraction."""
