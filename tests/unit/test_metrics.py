"""The Prometheus metrics: names and labels by the conventions, and what /metrics serves."""

from __future__ import annotations

import re

import pytest
from prometheus_client import REGISTRY, Histogram, generate_latest
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

import renku_env_operator
from renku_env_operator import metrics
from renku_env_operator.services.objects import Objects

METRICS = {
    attr: value for attr, value in vars(metrics).items() if isinstance(value, MetricWrapperBase)
}
SNAKE_CASE = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")
# Unbounded values make one time series each: no object, image or Renku identifiers as labels.
HIGH_CARDINALITY = {"image", "name", "id", "uid", "namespace", "renku_id", "digest", "tag"}


def served() -> dict[str, tuple[str, list[Sample]]]:
    """What the /metrics endpoint serves (the default registry's text format), parsed."""
    text = generate_latest(REGISTRY).decode()
    return {f.name: (f.type, f.samples) for f in text_string_to_metric_families(text)}


def test_every_metric_of_the_module_is_found() -> None:
    # Guards the tests below against an empty METRICS (e.g. a changed base class).
    assert {"RECONCILES", "SMOKE_TEST_DURATION", "AVAILABLE_UPDATES", "BUILD_INFO"} <= set(METRICS)


@pytest.mark.parametrize("attr", sorted(METRICS))
def test_names_follow_the_prometheus_conventions(attr: str) -> None:
    metric = METRICS[attr]
    name, kind = metric._name, metric._type
    assert name.startswith(f"{metrics.PREFIX}_"), name
    assert SNAKE_CASE.match(name), f"{name} is not snake_case"
    assert not name.endswith("_total"), f"{name}: only counters end in _total"
    if isinstance(metric, Histogram) or "duration" in name:
        assert name.endswith("_seconds"), f"{name}: durations are in seconds, named _seconds"
    assert not re.search(r"_(ms|milliseconds|minutes|hours)$", name), f"{name}: use base units"
    assert kind in {"counter", "gauge", "histogram", "info"}


@pytest.mark.parametrize("attr", sorted(METRICS))
def test_labels_are_snake_case_and_low_cardinality(attr: str) -> None:
    labels = METRICS[attr]._labelnames
    assert all(SNAKE_CASE.match(label) for label in labels), labels
    assert not HIGH_CARDINALITY & set(labels), f"{attr} has an unbounded label: {labels}"


def test_smoke_test_durations_are_measured_up_to_ten_minutes() -> None:
    bounds = metrics.SMOKE_TEST_DURATION._upper_bounds
    finite = [b for b in bounds if b != float("inf")]
    assert max(finite) >= 600, "smoke tests may take the default timeout (300 s) and more"
    assert finite == sorted(finite)


def test_the_endpoint_serves_every_metric_with_its_type() -> None:
    # An Info is served once it has a value (the start-up handler sets it), as a gauge `_info`.
    metrics.BUILD_INFO.info({"version": renku_env_operator.__version__})
    families = served()
    for attr, metric in METRICS.items():
        name, kind = metric._name, metric._type
        if kind == "info":
            name, kind = f"{name}_info", "gauge"
        assert name in families, f"{attr} ({name}) is not served"
        assert families[name][0] == kind


def test_counters_are_served_with_total_and_nothing_else_is() -> None:
    for name, (kind, samples) in served().items():
        if not name.startswith(metrics.PREFIX):
            continue  # the process and platform collectors of prometheus_client
        totals = {s.name for s in samples if s.name.endswith("_total")}
        if kind == "counter":
            assert totals <= {f"{name}_total"}
        else:
            assert not totals, f"{name} is a {kind} but serves {totals}"


def test_a_recorded_value_is_served() -> None:
    def requests() -> float:
        _, samples = served()["renku_env_operator_registry_requests"]
        wanted = {"method": "HEAD", "status": "204"}
        return sum(s.value for s in samples if s.name.endswith("_total") and s.labels == wanted)

    before = requests()
    metrics.REGISTRY_REQUESTS.labels("HEAD", "204").inc()
    assert requests() == before + 1


def test_the_ready_gauge_counts_objects_per_status() -> None:
    def count(status: str) -> float | None:
        return REGISTRY.get_sample_value("renku_env_operator_globalenvironments", {"ready": status})

    objects = Objects()
    objects.get("a").set_ready("True")
    objects.get("b").set_ready("True")
    objects.get("c").set_ready("False")
    assert (count("True"), count("False"), count("Unknown")) == (2, 1, 0)

    objects.get("b").set_ready("Unknown")  # a status change moves the object, it does not add one
    objects.forget("c")
    objects.forget("never-seen")
    assert (count("True"), count("False"), count("Unknown")) == (1, 0, 1)


def test_the_update_gauge_counts_objects_with_a_newer_version() -> None:
    def count() -> float | None:
        return REGISTRY.get_sample_value("renku_env_operator_available_image_updates")

    objects = Objects()
    objects.get("a").set_has_update(True)
    objects.get("b").set_has_update(True)
    objects.get("b").set_has_update(True)
    assert count() == 2

    objects.forget("a")  # the one place that forgets an object also drops its share
    assert count() == 1
