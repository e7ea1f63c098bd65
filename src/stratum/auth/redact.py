"""API keys never reach a log: every log record (stratum, uvicorn access and error logs, libraries,
tracebacks) has anything shaped like a key replaced before any handler sees it.

``install()`` wraps the process's log record factory once; the app (server, Lambda) and the CLI call it.
"""

from __future__ import annotations

import logging
import re
import traceback

KEY_RE = re.compile(r"(stm_(?:live|test)_)[A-Za-z0-9_\-]+")
REDACTED = r"\1[redacted]"
_installed = False


def redact(text: str) -> str:
    return KEY_RE.sub(REDACTED, text) if "stm_" in text else text


def install() -> None:
    global _installed
    if _installed:
        return
    _installed = True
    make = logging.getLogRecordFactory()

    def factory(*args, **kwargs) -> logging.LogRecord:
        record = make(*args, **kwargs)
        try:
            msg = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string is the handler's to report
            return record
        if "stm_" in msg:
            record.msg, record.args = redact(msg), None
        if record.exc_info and record.exc_info[1] is not None:
            text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
            if "stm_" in text:
                record.exc_text = redact(text)
        return record

    logging.setLogRecordFactory(factory)
