"""The CRD's own schema and CEL rules, run the way the API server runs them, against the corpus.

There is no API server here, so a small evaluator walks the generated CRD's openAPIV3Schema
(types, required, enums, bounds, lengths, patterns, and unknown fields as kubectl's default
strict field validation reports them) and runs every `x-kubernetes-validations` rule with
cel-python, whose `matches` uses RE2 like Kubernetes. It reads the CRD file, not rules.py: what
is tested is what gets installed.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Literal, NamedTuple

import celpy
import pytest
import re2
import yaml
from celpy.adapter import json_to_cel
from celpy.celtypes import BoolType
from celpy.evaluation import CELEvalError

from renku_env_operator.api import rules
from tests.corpus.cases import ROOT, Case, invalid_cases, load, valid_files

CRD_FILE = Path(__file__).parents[2] / "crds" / "globalenvironments.renku.io.yaml"
Origin = Literal["schema", "cel"]

# Invalid cases that only the operator (and `validate`) rejects, with the reason.
OPERATOR_ONLY = {
    "metadata-name-upper-case": (
        "metadata.name is checked by the API server's ObjectMeta validation, not by the CRD "
        "schema (metadata is opaque there)"
    ),
    "update-range-comma": (
        "npm semver range grammar is beyond CEL; the operator reports it in the Validated condition"
    ),
}

# Every schema keyword the evaluator implements; anything else in the CRD fails the tests.
_KEYWORDS = {
    "type", "description", "properties", "required", "items", "enum", "minimum", "maximum",
    "minLength", "maxLength", "minItems", "maxItems", "pattern", "x-kubernetes-validations",
    "x-kubernetes-list-type", "x-kubernetes-list-map-keys",
}  # fmt: skip
_TYPES: dict[str, Callable[[Any], bool]] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
}
_OLD_SELF = re.compile(r"\boldSelf\b")
BLOCKED = (
    "some validation rules were not checked because the object was invalid; correct the "
    "existing errors to complete validation"
)


class Violation(NamedTuple):
    """One rejection: where, why, and whether the schema or a CEL rule decided it."""

    path: str
    message: str
    origin: Origin


class RuleEvaluationError(Exception):
    """celpy could not evaluate a rule: a bug in the rule or a gap in celpy, never a verdict."""


def field_path(path: tuple[str | int, ...]) -> str:
    """The same notation as `validate`: spec.args[2]; the document itself is (root)."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text or ROOT


def crd_rules(schema: Mapping[str, Any], path: str = ROOT) -> Iterator[tuple[str, dict[str, str]]]:
    """(location, rule) for every x-kubernetes-validations entry, depth first."""
    for rule in schema.get("x-kubernetes-validations", []):
        yield path, rule
    for key, child in schema.get("properties", {}).items():
        yield from crd_rules(child, key if path == ROOT else f"{path}.{key}")
    if "items" in schema:
        yield from crd_rules(schema["items"], f"{path}[*]")


class CrdEvaluator:
    """Validates objects against one CRD's storage version, as the API server would."""

    def __init__(self, crd: Mapping[str, Any]) -> None:
        spec = crd["spec"]
        self.kind: str = spec["names"]["kind"]
        self.api_versions = {
            f"{spec['group']}/{v['name']}" for v in spec["versions"] if v["served"]
        }
        version = next(v for v in spec["versions"] if v["storage"])
        self.schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]
        self._env = celpy.Environment()
        self._programs: dict[str, Any] = {}
        self.rules = list(crd_rules(self.schema))
        for _, rule in self.rules:
            self.program(rule["rule"])

    def program(self, text: str) -> Any:
        """The compiled rule (compiled once: celpy's parser is the slow part)."""
        if text not in self._programs:
            self._programs[text] = self._env.program(self._env.compile(text))
        return self._programs[text]

    def validate(self, obj: Any, old: Any = None) -> list[Violation]:
        """Every violation of `obj`; with `old`, an update, so transition rules run too."""
        walk = _Walk()
        if isinstance(obj, dict):
            if obj.get("apiVersion") not in self.api_versions:
                walk.fail(("apiVersion",), "no matches for this version")
            if obj.get("kind") != self.kind:
                walk.fail(("kind",), f"must be {self.kind}")
        walk.node(self.schema, obj, old, ())
        if walk.blocked:
            # The API server's rule: a type, enum, required or size error skips every CEL rule.
            walk.fail((), BLOCKED)
            return walk.out
        for schema, value, old_value, path in walk.cel_nodes:
            self._cel(schema, value, old_value, path, walk.out)
        return walk.out

    def _cel(
        self, schema: Mapping[str, Any], value: Any, old: Any, path: tuple[str | int, ...],
        out: list[Violation],
    ) -> None:  # fmt: skip
        for rule in schema["x-kubernetes-validations"]:
            activation = {"self": json_to_cel(_cel_view(value, path))}
            if _OLD_SELF.search(rule["rule"]):
                if old is None:
                    continue  # transition rules run on updates only
                activation["oldSelf"] = json_to_cel(_cel_view(old, path))
            if not self.holds(rule["rule"], activation, path):
                out.append(Violation(field_path(path), rule["message"], "cel"))

    def holds(self, rule: str, activation: dict[str, Any], path: tuple[str | int, ...]) -> bool:
        """Whether the rule is true; a rule celpy cannot evaluate raises, it is no verdict."""
        try:
            result = self.program(rule).evaluate(activation)
        except CELEvalError as exc:
            raise RuleEvaluationError(f"{field_path(path)}: {rule}: {exc}") from exc
        if not isinstance(result, BoolType):
            raise RuleEvaluationError(f"{field_path(path)}: {rule}: gave {result!r}, not a bool")
        return bool(result)


class _Walk:
    """One pass of OpenAPI schema validation; collects the nodes that carry CEL rules."""

    def __init__(self) -> None:
        self.out: list[Violation] = []
        self.blocked = False
        self.cel_nodes: list[tuple[Mapping[str, Any], Any, Any, tuple[str | int, ...]]] = []

    def fail(self, path: tuple[str | int, ...], message: str, blocking: bool = False) -> None:
        self.out.append(Violation(field_path(path), message, "schema"))
        self.blocked = self.blocked or blocking

    def node(
        self, schema: Mapping[str, Any], value: Any, old: Any, path: tuple[str | int, ...]
    ) -> None:
        unknown = set(schema) - _KEYWORDS
        if unknown:
            raise NotImplementedError(f"{field_path(path)}: keywords {sorted(unknown)}")
        if not _TYPES[schema["type"]](value):
            self.fail(path, f"must be of type {schema['type']}", blocking=True)
            return
        for message, blocking in _value_checks(schema, value):
            self.fail(path, message, blocking)
        if schema["type"] == "object" and "properties" in schema:
            self._object(schema, value, old, path)
        if schema["type"] == "array":
            for index, item in enumerate(value):
                self.node(schema["items"], item, None, (*path, index))
        if "x-kubernetes-validations" in schema:
            self.cel_nodes.append((schema, value, old, path))

    def _object(
        self,
        schema: Mapping[str, Any],
        value: dict[str, Any],
        old: Any,
        path: tuple[str | int, ...],
    ) -> None:
        properties = schema["properties"]
        # The API server prunes nulls of non-nullable fields before validating: `spec:` is absent.
        present = {k: v for k, v in value.items() if v is not None}
        for key, child in present.items():
            if key not in properties:
                self.fail((*path, key), "unknown field")
                continue
            old_child = old.get(key) if isinstance(old, dict) else None
            self.node(properties[key], child, old_child, (*path, key))
        for key in schema.get("required", []):
            if key not in present:
                self.fail((*path, key), "Required value", blocking=True)


def _cel_view(value: Any, path: tuple[str | int, ...]) -> Any:
    # At the root, CEL sees only metadata.name and metadata.generateName.
    if path or not isinstance(value, dict) or not isinstance(value.get("metadata"), dict):
        return value
    meta = {k: v for k, v in value["metadata"].items() if k in {"name", "generateName"}}
    return {**value, "metadata": meta}


def _value_checks(schema: Mapping[str, Any], value: Any) -> Iterator[tuple[str, bool]]:
    """(message, blocks CEL) for each failed keyword; blocking as in the API server."""
    if "enum" in schema and value not in schema["enum"]:
        yield f"Unsupported value: supported values: {schema['enum']}", True
    if "minimum" in schema and value < schema["minimum"]:
        yield f"should be greater than or equal to {schema['minimum']}", False
    if "maximum" in schema and value > schema["maximum"]:
        yield f"should be less than or equal to {schema['maximum']}", False
    # Lengths count characters (runes), as the API server does.
    if "minLength" in schema and len(value) < schema["minLength"]:
        yield f"should be at least {schema['minLength']} chars long", False
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        yield f"Too long: may not be longer than {schema['maxLength']}", True
    if "minItems" in schema and len(value) < schema["minItems"]:
        yield f"should have at least {schema['minItems']} items", False
    if "maxItems" in schema and len(value) > schema["maxItems"]:
        yield f"Too many: must have at most {schema['maxItems']} items", True
    if "pattern" in schema and re2.search(schema["pattern"], value) is None:
        yield f"should match '{schema['pattern']}'", False
    if schema.get("x-kubernetes-list-type") == "map":
        keys = [tuple(item.get(k) for k in schema["x-kubernetes-list-map-keys"]) for item in value]
        if len(set(keys)) != len(keys):
            yield "Duplicate value", False


@pytest.fixture(scope="module")
def evaluator() -> CrdEvaluator:
    return CrdEvaluator(yaml.safe_load(CRD_FILE.read_text(encoding="utf-8")))


def _invalid(case: Case) -> Any:
    return pytest.param(case, id=case.name)


INVALID = invalid_cases()


# --- the rules themselves ---


def test_every_rule_compiles_and_its_regexes_are_re2(evaluator: CrdEvaluator) -> None:
    locations = {location for location, _ in evaluator.rules}
    assert {ROOT, "spec", "spec.image", "spec.command", "spec.workingDirectory"} <= locations
    for location, rule in evaluator.rules:
        assert rule["reason"] in {"FieldValueInvalid", "FieldValueForbidden"}, location
        for literal in re.findall(r"matches\(('(?:[^'\\]|\\.)*')\)", rule["rule"]):
            # The literal as CEL reads it (escapes resolved), then as RE2 compiles it.
            pattern = evaluator.program(literal).evaluate({})
            re2.compile(str(pattern))


def test_evaluator_notices_a_broken_rule(evaluator: CrdEvaluator) -> None:
    # A rule that cannot be evaluated must fail loudly, never count as a verdict.
    with pytest.raises(RuleEvaluationError, match="no such member"):
        evaluator.holds("self.missing == 1", {"self": json_to_cel({})}, ("spec",))


# --- the corpus ---


@pytest.mark.parametrize("case", [_invalid(c) for c in INVALID if c.name not in OPERATOR_ONLY])
def test_invalid_case_is_rejected_by_the_crd(evaluator: CrdEvaluator, case: Case) -> None:
    violations = evaluator.validate(case.document())
    assert violations, f"{case.name}: the CRD accepts it"
    cel_at = {v.path for v in violations if v.origin == "cel"}
    schema_at = {v.path for v in violations if v.origin == "schema"}
    for location in case.cel:
        assert location in cel_at, f"no CEL rule at {location} fired: {violations}"
    for expect in case.expects:
        if any(_covers(location, expect.field) for location in case.cel):
            # Marked `# cel:`: the schema alone must accept that field.
            assert expect.field not in schema_at, f"schema already rejects: {violations}"
        else:
            assert expect.field in schema_at, f"no schema violation at {expect.field}: {violations}"


def _covers(location: str, field: str) -> bool:
    return location in {ROOT, field} or field.startswith((f"{location}.", f"{location}["))


@pytest.mark.parametrize("name", sorted(OPERATOR_ONLY))
def test_operator_only_case_passes_the_crd(evaluator: CrdEvaluator, name: str) -> None:
    (case,) = [c for c in INVALID if c.name == name]
    assert evaluator.validate(case.document()) == []


@pytest.mark.parametrize("path", valid_files(), ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_valid_case_is_accepted_by_the_crd(evaluator: CrdEvaluator, path: Path) -> None:
    assert evaluator.validate(load(path)) == []


def test_unknown_fields_and_nulls_are_handled_like_the_api_server(evaluator: CrdEvaluator) -> None:
    obj = {
        "apiVersion": "renku.io/v1alpha1",
        "kind": "GlobalEnvironment",
        "metadata": {"name": "x", "labels": {"free": "form"}},
        "spec": {"image": "python:3.12", "smokeTest": None, "imagePolicy": {"pin": True}},
    }
    assert evaluator.validate(obj) == [Violation("spec.imagePolicy.pin", "unknown field", "schema")]


# --- transition rule: renkuId is immutable once set ---

A, B = "01JQ8X3V9K2M7N4P5R6S8T0W1Y", "01JQ8X3V9K2M7N4P5R6S8T0W1Z"


def _with_id(renku_id: str | None) -> dict[str, Any]:
    spec: dict[str, Any] = {"image": "python:3.12"}
    if renku_id:
        spec["renkuId"] = renku_id
    return {"apiVersion": "renku.io/v1alpha1", "kind": "GlobalEnvironment",
            "metadata": {"name": "py"}, "spec": spec}  # fmt: skip


@pytest.mark.parametrize(
    ("old", "new", "allowed"),
    [
        (None, A, True),  # adopt an existing environment
        (A, A, True),  # unchanged
        (A, B, False),  # changed
        (A, None, False),  # removed
    ],
)
def test_renku_id_transition(
    evaluator: CrdEvaluator, old: str | None, new: str | None, allowed: bool
) -> None:
    violations = evaluator.validate(_with_id(new), old=_with_id(old))
    assert (violations == []) is allowed, violations
    if not allowed:
        assert violations == [Violation("spec", rules.RENKU_ID_IMMUTABLE.message, "cel")]


def test_transition_rule_does_not_run_on_create(evaluator: CrdEvaluator) -> None:
    assert evaluator.validate(_with_id(A)) == []


def test_a_blocking_schema_error_hides_cel_errors(evaluator: CrdEvaluator) -> None:
    # The API server reports a type error alone; `validate` reports everything at once.
    obj = _with_id(None)
    obj["spec"] |= {"port": "8888", "workingDirectory": "work"}
    assert evaluator.validate(obj) == [
        Violation("spec.port", "must be of type integer", "schema"),
        Violation(ROOT, BLOCKED, "schema"),
    ]
    obj["spec"]["port"] = 0  # a range error does not block
    assert [v.path for v in evaluator.validate(obj)] == ["spec.port", "spec.workingDirectory"]


# --- status: list-map of conditions ---


def test_status_conditions_are_a_map_keyed_by_type(evaluator: CrdEvaluator) -> None:
    condition = {"type": "Ready", "status": "True", "reason": "Published", "message": "",
                 "lastTransitionTime": "2026-11-25T10:00:00Z"}  # fmt: skip
    obj = {**_with_id(None), "status": {"observedGeneration": 2, "conditions": [condition]}}
    assert evaluator.validate(obj) == []
    obj["status"]["conditions"] = [condition, {**condition, "status": "False"}]
    assert evaluator.validate(obj) == [Violation("status.conditions", "Duplicate value", "schema")]


# --- the CEL text and the Python predicate of each rule agree ---

_STRINGS = [
    "/home/renku/work", "work", "/", "/a b", "/tab\tx", "/nl\n", "/vt\vx", "/nbsp\u00a0x",
    "/em\u2003x", "/nel\x85x", "/ideographic\u3000x", "/zwsp\u200bx", "/lab", "lab", "",
    "ghcr.io/org/img:1.0", "ghcr.io/Org/img:1.0", "Org/img", "Registry.Example.org/a/b:V1",
    "img:Latest", "ghcr.io/org/img:café", "ghcr.io/org/img:ver\u00b2", "ghcr.io/örg/img",
    "localhost:5000/a", "[::1]:5000/a:b", f"a/b@sha256:{'0' * 64}", f"a/b:1@sha256:{'f' * 64}",
    "a/b@sha256:abc", "https://ghcr.io/a/b", "a//b", "a/b:", "-a/b",
    "/..", "/../x", "/.", "/./x", "/x/..", "/%2e%2e/x", "/%2E%2e", "/.%2E/x", "/%2e./x", "/%2e",
    "/x/..?q", "/x/.#f", "/..x", "/x..", "/a.b/c", "/.hidden", "/%2e%2ex", "/%2f..",
]  # fmt: skip


@pytest.mark.parametrize(
    "path", ["/../../api/v1/namespaces/renku/secrets", "/%2e%2e/x", "/%2E%2E", "/.%2e/x",
             "/%2e./x", "/./lab", "/lab/.", "/lab/..?next=/", "/lab/%2e#top"],
)  # fmt: skip
def test_dot_segments_are_refused_raw_and_encoded(path: str) -> None:
    assert not rules.NO_DOT_SEGMENTS.check(path)


@pytest.mark.parametrize(
    "path", ["/", "/lab", "/lab/tree/a.ipynb", "/..hidden", "/x..", "/%2e%2ex"]
)
def test_dots_inside_a_segment_are_fine(path: str) -> None:
    assert rules.NO_DOT_SEGMENTS.check(path)


def _python_rule(crd_rule: Mapping[str, str]) -> rules.Rule:
    (rule,) = [
        r
        for r in vars(rules).values()
        if isinstance(r, rules.Rule)
        and (r.cel, r.message) == (crd_rule["rule"], crd_rule["message"])
    ]
    return rule


def test_cel_and_python_agree_on_string_rules(evaluator: CrdEvaluator) -> None:
    checked = 0
    for location, crd_rule in evaluator.rules:
        if location in {ROOT, "spec", "spec.command", "spec.args"}:
            continue  # not string rules; the corpus and the transition test cover them
        rule = _python_rule(crd_rule)
        for text in _STRINGS:
            cel = evaluator.holds(rule.cel, {"self": json_to_cel(text)}, (location,))
            assert cel == rule.check(text), f"{location}: {rule.cel} on {text!r}: CEL says {cel}"
            checked += 1
    assert checked >= 5 * len(_STRINGS)


def test_list_rule_agrees() -> None:
    rule = rules.NON_EMPTY_ITEMS
    env = celpy.Environment()
    program = env.program(env.compile(rule.cel))
    for items in (["a"], ["a", ""], [""], ["", "b"], [" "]):
        assert bool(program.evaluate({"self": json_to_cel(items)})) == rule.check(items)


def test_whitespace_means_the_same_to_re2_and_python() -> None:
    # Python's \s is Unicode-aware, RE2's is ASCII: the CEL rules spell Python's set out for RE2.
    everything = "".join(chr(c) for c in range(sys.maxunicode + 1) if not 0xD800 <= c <= 0xDFFF)
    assert set(re2.findall(rules.WHITESPACE_RE2, everything)) == set(re.findall(r"\s", everything))
