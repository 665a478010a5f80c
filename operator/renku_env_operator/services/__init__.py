"""Orchestration: combines domain functions with client I/O. Knows nothing of kopf."""
