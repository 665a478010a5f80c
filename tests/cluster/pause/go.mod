module renku-env-operator/tests/cluster/pause

go 1.26.0
