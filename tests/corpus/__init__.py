"""Manifest corpus: invalid GlobalEnvironments with their expected findings, and tricky valid ones."""
