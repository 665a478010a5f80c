"""pytest fixtures for the Renku test double.

Use with ``pytest_plugins = ["tests.support.renku_fixtures"]`` in a conftest, or import
the fixture into a test module (``from tests.support.renku_fixtures import renku_double``).
The fixture is synchronous, so sync and async tests can both use it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.renku_double import RenkuDouble


@pytest.fixture
def renku_double() -> Iterator[RenkuDouble]:
    """A started Renku double, stopped after the test.

    The test fails at teardown when the double saw OpenAPI spec violations (call
    ``renku_double.allow_invalid_requests()`` in tests that send invalid requests on
    purpose).
    """
    double = RenkuDouble().start()
    try:
        yield double
    finally:
        double.stop()
    problems = double.unexpected_violations()
    if problems:
        pytest.fail(
            "the Renku double saw OpenAPI spec violations:\n"
            + "\n".join(f"  {problem}" for problem in problems),
            pytrace=False,
        )
