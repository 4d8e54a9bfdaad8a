"""Tokens never appear in logs; JSON logs carry the job id of every state change."""

from __future__ import annotations

import json
import logging

from fedibot.ops.logs import JsonFormatter, SecretFilter, setup_logging


def _capture(handler_filter: SecretFilter, formatter: logging.Formatter, record_args) -> str:
    record = logging.LogRecord("t", logging.INFO, __file__, 1, *record_args, None)
    handler_filter.filter(record)
    return formatter.format(record)


def test_configured_secrets_and_bearer_tokens_are_masked():
    f = SecretFilter(["abcdef123456"])
    out = _capture(
        f,
        logging.Formatter("%(message)s"),
        (
            "token %s and header Authorization: Bearer zzzyyyxxx111 url ?access_token=qq12345",
            ("abcdef123456",),
        ),
    )
    assert "abcdef123456" not in out
    assert "zzzyyyxxx111" not in out
    assert "qq12345" not in out
    assert out.count("***") == 3


def test_json_format_carries_job_fields(capsys):
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    setup_logging("INFO", "json", ["supersecretvalue"])
    logging.getLogger("fedibot.queue.jobs").info(
        "job %s %s -> %s with supersecretvalue",
        7,
        "queued",
        "generating",
        extra={"job_id": 7, "from_state": "queued", "to_state": "generating"},
    )
    line = capsys.readouterr().err.strip().splitlines()[-1]
    root.handlers[:], root.level = saved  # the handler wrote to pytest's capture stream
    data = json.loads(line)
    assert data["job_id"] == 7 and data["to_state"] == "generating"
    assert "supersecretvalue" not in line
    assert isinstance(JsonFormatter().format(logging.makeLogRecord({"msg": "x"})), str)
