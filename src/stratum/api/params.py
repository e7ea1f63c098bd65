"""Parameters that many routes share, declared (and documented) once."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import Path, Query

SnapshotJobId = Annotated[
    str | None,
    Query(
        max_length=64,
        description="Pin the lot snapshot published by this ingest job (a `job_id`), so the numbers are "
        "reproducible; without it the lot's active (latest) snapshot is read. 404 when the job published no "
        "snapshot of this lot.",
        examples=["job_01JD8Y3V4K6Q2M9T0B7C5N1XWZ"],
    ),
]
Cursor = Annotated[
    str | None,
    Query(
        max_length=1024,
        description="Opaque position of the next page: the previous page's `next_cursor`; omit for the first page.",
    ),
]
Limit = Annotated[int, Query(ge=1, le=500, description="Items per page (1-500).")]
WaferIdFilter = Annotated[
    str | None,
    Query(max_length=255, description="Only this wafer (its WAFER_ID from the WIR/WRR records); default: every wafer."),
]
TestNameFilter = Annotated[
    str | None,
    Query(
        max_length=255,
        description="Test name (TEST_TXT), to pick one test when the program reuses a test number for several "
        "tests; 400 lists the names when the number is ambiguous and this is omitted.",
    ),
]
SiteNum = Annotated[
    int | None, Query(ge=0, le=255, description="Only parts tested on this test site (SITE_NUM of the PIR/PRR).")
]
ViewParam = Annotated[
    Literal["final", "first_pass", "all"],
    Query(
        description="Which test of each die counts: `final` the last test of every die (retests resolved, the "
        "default), `first_pass` the first test of every die, `all` every test including retests."
    ),
]
BinType = Annotated[
    Literal["H", "S"], Query(description="Bin kind: `H` hard bins (HARD_BIN), `S` soft bins (SOFT_BIN).")
]

LotId = Annotated[str, Path(description="Lot id (LOT_ID of the file's MIR record).", examples=["LOT42"])]
WaferId = Annotated[str, Path(description="Wafer id (WAFER_ID of the WIR/WRR records).", examples=["W03"])]
TestNum = Annotated[int, Path(description="Test number (TEST_NUM of the PTR/FTR/MPR records), 0-4294967295.")]
JobId = Annotated[str, Path(description="Ingest job id (`job_id` of the upload's answer).")]
ExportId = Annotated[str, Path(description="Export id (`export_id` of the export's answer).")]
MonitorId = Annotated[str, Path(description="Monitor id (`monitor_id`).")]
RunId = Annotated[str, Path(description="Monitor run id (`run_id`).")]
NotificationId = Annotated[str, Path(description="Notification id (`id` of the notification).")]
WebhookId = Annotated[str, Path(description="Outbound webhook id (`id` of the webhook).")]
HookId = Annotated[str, Path(description="Inbound webhook id (`id` of the inbound webhook).")]
DeliveryId = Annotated[str, Path(description="Delivery id (`id` in the delivery audit log).")]

# the query string of a signed URL (local runtime), made by the server: callers pass it back unchanged
SignedWorkspace = Annotated[str, Query(max_length=63, description="Workspace of the signed URL (set by the server).")]
SignedExpires = Annotated[
    int, Query(description="Expiry of the signed URL, Unix seconds (set by the server); 403 after it.")
]
Signature = Annotated[
    str, Query(max_length=128, description="HMAC signature of the URL (set by the server); 403 when it does not match.")
]
