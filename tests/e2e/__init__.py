"""End-to-end tests on a real Kubernetes cluster (``pytest tests/e2e --kubeconfig PATH``)."""
