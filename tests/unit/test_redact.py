"""URL credentials out of log lines (issue 19 finding 10): the masking and where it applies."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest
from pythonjsonlogger.json import JsonFormatter

from renku_env_operator.domain.redact import redact
from renku_env_operator.runner import install_log_redaction


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Renku at https://user:pass@renku.example.org/api",
            "Renku at https://***@renku.example.org/api",
        ),
        ("https://ghp_abc123@github.com/x.git", "https://***@github.com/x.git"),
        ("http://u:p@[::1]:8080/", "http://***@[::1]:8080/"),
        ("https://h/x?token=abc&page=2", "https://h/x?token=***&page=2"),
        ("https://h/?access_token=a.b.c#top", "https://h/?access_token=***#top"),
        (
            "https://s3.example/b?X-Amz-Credential=AK%2F1&X-Amz-Signature=f00d&X-Amz-Expires=60",
            "https://s3.example/b?X-Amz-Credential=***&X-Amz-Signature=***&X-Amz-Expires=60",
        ),
        (
            "https://blob.example/c?sv=2020&sig=Zm9v%3D&se=1",
            "https://blob.example/c?sv=2020&sig=***&se=1",
        ),
        ("GET 'https://h/?password=hunter2' failed", "GET 'https://h/?password=***' failed"),
        ("https://h/cb?code=xyz&state=1", "https://h/cb?code=***&state=1"),
        (
            "https://h/?client_secret=s&API_KEY=k&X-Goog-Signature=g",
            "https://h/?client_secret=***&API_KEY=***&X-Goog-Signature=***",
        ),
    ],
)
def test_masks_userinfo_and_credential_parameters(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "an image ghcr.io/example/env:1.0.0@sha256:abcd",  # a digest is no userinfo
        "https://h/x?image_url=ghcr.io%2Fa&page=2",
        "mail admin@example.org about it",
        "no URL here",
    ],
)
def test_leaves_the_rest_alone(text: str) -> None:
    assert redact(text) == text


@pytest.fixture
def stream() -> Iterator[tuple[io.StringIO, io.StringIO]]:
    install_log_redaction()
    install_log_redaction()  # idempotent: one factory, not two
    plain, json = io.StringIO(), io.StringIO()
    logger = logging.getLogger("test_redact")
    handlers = [logging.StreamHandler(plain), logging.StreamHandler(json)]
    handlers[1].setFormatter(JsonFormatter())
    for handler in handlers:
        logger.addHandler(handler)
    yield plain, json
    for handler in handlers:
        logger.removeHandler(handler)


def test_every_record_is_masked_message_exception_and_stack(
    stream: tuple[io.StringIO, io.StringIO], caplog: pytest.LogCaptureFixture
) -> None:
    log = logging.getLogger("test_redact")
    log.warning("fetching %s", "https://u:hunter2@h/?token=t0k")
    try:
        raise OSError("https://u:hunter2@h/?sig=s1g unreachable")
    except OSError:
        log.exception("failed")
    log.warning("here", stack_info=True, extra={"url": "kept"})
    log.warning("100%% of %d", 3)  # untouched records keep their arguments
    output = "\n".join([*(s.getvalue() for s in stream), caplog.text])
    for secret in ("hunter2", "t0k", "s1g"):
        assert secret not in output
    assert "fetching https://***@h/?token=***" in output
    assert "OSError: https://***@h/?sig=*** unreachable" in output
    assert "100% of 3" in output
    assert caplog.records[-1].args == (3,)
