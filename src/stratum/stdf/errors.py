"""Errors raised by the STDF reader.

Every error names where it happened: the byte offset in the decompressed stream, the record type and,
where it applies, the field. ``str(err)`` is the message shown to users (CLI, API, job records).
"""

from __future__ import annotations


class StdfError(Exception):
    """Base class: the input cannot be read as STDF V4."""

    code = "stdf_error"

    def __init__(
        self,
        message: str,
        *,
        offset: int | None = None,
        record: str | None = None,
        field: str | None = None,
        records_before: int | None = None,
    ) -> None:
        self.message = message
        self.offset = offset
        self.record = record
        self.field = field
        self.records_before = records_before
        super().__init__(self.__str__())

    def __str__(self) -> str:
        where = []
        if self.record:
            where.append(f"record {self.record}")
        if self.field:
            where.append(f"field {self.field}")
        if self.offset is not None:
            where.append(f"byte offset {self.offset}")
        suffix = f" ({', '.join(where)})" if where else ""
        return f"{self.message}{suffix}"

    def to_dict(self) -> dict:
        return {
            "code": self.code,
            "message": str(self),
            "offset": self.offset,
            "record": self.record,
            "field": self.field,
            "records_before": self.records_before,
        }


class NotStdfError(StdfError):
    """The data does not start with an STDF FAR record (empty file, other format)."""

    code = "not_stdf"


class UnsupportedVersionError(StdfError):
    """FAR.STDF_VER is not 4, or the CPU_TYPE cannot be supported."""

    code = "unsupported_version"


class TruncatedError(StdfError):
    """A record header or body runs past the end of the data."""

    code = "truncated"


class RecordFormatError(StdfError):
    """A record's REC_LEN contradicts its content (a field runs past the record, a record too short)."""

    code = "bad_record"


class CompressedStreamError(StdfError):
    """The gzip/bzip2/zip container itself is corrupt."""

    code = "bad_compression"


class DecompressionLimitError(StdfError):
    """The input inflates past the configured size, or at a ratio only a decompression bomb reaches."""

    code = "decompression_limit"


class UnsupportedContainerError(StdfError):
    """A container the reader cannot open: an encrypted zip member, an unsupported zip method, an
    archive with several STDF files."""

    code = "unsupported_compression"
