"""Clients for the outside world: Renku, container registries, Kubernetes. Errors are translated here."""
