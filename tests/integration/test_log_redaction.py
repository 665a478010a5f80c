"""No credential of a URL in any log line (issue 19 finding 10).

RENKU_URL was logged as given at start-up, user:password@ included, although the settings
treat URLs as possibly carrying credentials; httpx logs every request's URL, query included.
Now every record of the process is masked when it is made, whichever logger made it: the
message, the exception's text and the stack.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from pythonjsonlogger.json import JsonFormatter

from tests.support.kube import GENV, Kube
from tests.support.operator_fixtures import NAMESPACE, NO_SMOKE, condition, genv
from tests.support.renku_double import RenkuDouble

PASSWORD = "pa55word-in-url"
TOKEN = "t0ken-in-query"
SIGNATURE = "5ig-in-query"


@pytest.fixture
def handlers() -> Iterator[list[io.StringIO]]:
    """Real handlers on the root logger, as an admin's would be: plain text and JSON."""
    streams = [io.StringIO(), io.StringIO()]
    added = [logging.StreamHandler(stream) for stream in streams]
    added[0].setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    added[1].setFormatter(JsonFormatter("%(name)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    for handler in added:
        root.addHandler(handler)
    yield streams
    for handler in added:
        root.removeHandler(handler)


def everything_logged(caplog: pytest.LogCaptureFixture, streams: list[io.StringIO]) -> str:
    records = [r.getMessage() + (r.exc_text or "") for r in caplog.records]
    return "\n".join([caplog.text, *records, *(s.getvalue() for s in streams)])


async def test_urls_are_logged_without_their_credentials(
    kube: Kube,
    renku_double: RenkuDouble,
    start_operator: Any,
    caplog: pytest.LogCaptureFixture,
    handlers: list[io.StringIO],
) -> None:
    host = renku_double.base_url.removeprefix("http://")
    url = f"http://renku-admin:{PASSWORD}@{host}/api/data?access_token={TOKEN}"
    await start_operator(renku_url=url)

    # Renku is called at that address (and fails: the query spoils the paths): httpx logs it.
    await kube.create(genv("logged", smokeTest=NO_SMOKE))
    await kube.wait_for(
        GENV, NAMESPACE, "logged", lambda o: condition(o, "Synced") is not None, timeout=30
    )
    # An exception whose message holds a URL, through kopf's and httpx's loggers.
    signed = f"https://user:{PASSWORD}@{host}/blob?X-Amz-Signature={SIGNATURE}&sig={SIGNATURE}"
    for name in ("kopf.objects", "httpx"):
        try:
            raise ConnectionError(f"cannot fetch {signed}")
        except ConnectionError:
            logging.getLogger(name).exception("a request failed")

    logged = everything_logged(caplog, handlers)
    assert f"renku-env-operator started; Renku at http://***@{host}/api/data" in logged
    assert f' http://***@{host}/api/data?access_token=*** "HTTP/1.1 ' in logged  # httpx's
    assert f"ConnectionError: cannot fetch https://***@{host}/blob?X-Amz-Signature=***&sig=***" in (
        handlers[0].getvalue()
    )
    assert '"exc_info": "Traceback' in handlers[1].getvalue()  # the JSON handler's, masked too
    for secret in (PASSWORD, TOKEN, SIGNATURE):
        assert secret not in logged
