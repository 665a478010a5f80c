"""Renku global session environments as code: a Kubernetes operator."""

__version__ = "0.1.0"
