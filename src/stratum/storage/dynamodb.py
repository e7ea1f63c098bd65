"""Metadata store on DynamoDB (production).

Table layout (defined once in ``stratum.storage.dynamodb_layout``, which the CDK stack and its tests use too):

- key ``pk`` (S, HASH) + ``sk`` (S, RANGE), ``PAY_PER_REQUEST``;
- GSIs ``gsi1`` (``gsi1pk``/``gsi1sk``) and ``gsi2`` (``gsi2pk``/``gsi2sk``), projection ALL;
- TTL on ``ttl`` (N, epoch seconds);
- ``data`` is a JSON **string** attribute (no Decimal round-trips, no type mapping), ``version`` N, the
  counter ``n`` N.

Semantics match the SQLite adapter (see ``stratum.storage.sqlite``; the contract tests hold both):

- Expired items (``ttl < now``) that DynamoDB has not purged yet (it can take days) are filtered out of
  ``get``/``query`` and count as absent in every condition (``attribute_not_exists(#ttl) OR #ttl >= :now``).
- ``put``/``delete`` with ``ABSENT`` or a version are one conditional request. ``put`` with ``ANY`` or
  ``PRESENT`` must know the current version to write ``version + 1``: it reads the item (consistent
  read) and writes with a condition pinned to what it read, retrying on a lost race; ``transact`` does
  the same for such puts. So they cost one read more than the other forms.
- ``transact`` uses ``TransactWriteItems``; a cancellation caused by one of the caller's expectations
  becomes ``ConditionFailed`` (nothing written).
- ``increment`` is one ``UpdateItem`` (``ADD``) with the ceiling in the condition; an expired counter
  is replaced by a fresh one with a conditional ``PutItem``.
- Reads of the table are strongly consistent (``consistent=False`` on ``get`` opts out); **queries on
  gsi1/gsi2 are eventually consistent** (DynamoDB offers nothing else on GSIs): an item written a moment
  ago may be missing, or stale, in an index query.
- Cursors are opaque (URL-safe base64 JSON holding the position of the last item returned, from which
  ``ExclusiveStartKey`` is rebuilt).
"""

from __future__ import annotations

import json
import random
import time
from typing import Any, Literal

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from stratum.storage.dynamodb_layout import INDEXES, TTL_ATTRIBUTE, index_keys, table_definition
from stratum.storage.dynamodb_layout import PARTITION_KEY as PK
from stratum.storage.dynamodb_layout import SORT_KEY as SK
from stratum.storage.metadata import (
    ABSENT,
    ANY,
    PRESENT,
    Check,
    ConditionFailed,
    Delete,
    Expect,
    Item,
    MetadataStore,
    Page,
    Put,
    TransactResult,
    check_item_args,
    check_ops,
    decode_query_cursor,
    encode_data,
    encode_query_cursor,
    now_epoch,
    prefix_successor,
)

MAX_ATTEMPTS = 50  # optimistic retries for ANY/PRESENT puts and expired-counter resets

_LIVE = "(attribute_not_exists(#ttl) OR #ttl >= :now)"
_GONE = "(attribute_not_exists(#pk) OR #ttl < :now)"


def _code(e: ClientError) -> str:
    return str(e.response.get("Error", {}).get("Code", ""))


class _Cond:
    """A condition expression with exactly the names/values it uses (DynamoDB rejects unused ones)."""

    def __init__(
        self, expr: str | None = None, names: dict[str, str] | None = None, values: dict[str, Any] | None = None
    ):
        self.expr = expr
        self.names = names or {}
        self.values = values or {}

    def kwargs(self) -> dict[str, Any]:
        if not self.expr:
            return {}
        kw: dict[str, Any] = {"ConditionExpression": self.expr, "ExpressionAttributeNames": self.names}
        if self.values:
            kw["ExpressionAttributeValues"] = self.values
        return kw


def _expect_condition(expect: Expect, now: int) -> _Cond:
    nowv = {":now": {"N": str(now)}}
    if expect == ANY:
        return _Cond()
    if expect == ABSENT:
        return _Cond(_GONE, {"#pk": PK, "#ttl": TTL_ATTRIBUTE}, nowv)
    if expect == PRESENT:
        return _Cond(f"attribute_exists(#pk) AND {_LIVE}", {"#pk": PK, "#ttl": TTL_ATTRIBUTE}, nowv)
    return _Cond(f"#v = :v AND {_LIVE}", {"#v": "version", "#ttl": TTL_ATTRIBUTE}, {":v": {"N": str(expect)}, **nowv})


def _backoff(attempt: int) -> None:
    time.sleep(random.uniform(0, 0.002 * 2 ** min(attempt, 6)))  # noqa: S311 - jitter, not crypto


class DynamoMetadataStore(MetadataStore):
    def __init__(
        self,
        table_name: str,
        region: str,
        endpoint_url: str | None = None,
        client: Any = None,
        *,
        session: boto3.session.Session | None = None,
    ) -> None:
        if not table_name:
            raise ValueError("a DynamoDB metadata store needs a table name")
        self.table_name = table_name
        self.region = region
        self.endpoint_url = endpoint_url or None
        if client is None:
            session = session or boto3.session.Session(region_name=region)
            cfg = Config(retries={"mode": "standard", "max_attempts": 5}, max_pool_connections=50)
            client = session.client("dynamodb", region_name=region, endpoint_url=self.endpoint_url, config=cfg)
        self.client = client

    def __repr__(self) -> str:
        return f"DynamoMetadataStore({self.table_name!r})"

    # --- table management --------------------------------------------------------------------
    def create_table(self, *, wait: bool = True) -> None:
        """Create the table (if missing) as ``table_definition`` says and enable TTL on ``ttl``."""
        try:
            self.client.create_table(**table_definition(self.table_name))
        except ClientError as e:
            if _code(e) != "ResourceInUseException":
                raise
        if wait:
            self.client.get_waiter("table_exists").wait(
                TableName=self.table_name, WaiterConfig={"Delay": 1, "MaxAttempts": 120}
            )
        ttl = self.client.describe_time_to_live(TableName=self.table_name).get("TimeToLiveDescription", {})
        if ttl.get("TimeToLiveStatus") in ("ENABLED", "ENABLING") and ttl.get("AttributeName") == TTL_ATTRIBUTE:
            return
        self.client.update_time_to_live(
            TableName=self.table_name,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE},
        )

    # --- encoding ----------------------------------------------------------------------------
    @staticmethod
    def _key(pk: str, sk: str) -> dict[str, Any]:
        return {PK: {"S": pk}, SK: {"S": sk}}

    @staticmethod
    def _raw_item(op: Put, text: str, version: int) -> dict[str, Any]:
        raw: dict[str, Any] = {
            PK: {"S": op.pk},
            SK: {"S": op.sk},
            "data": {"S": text},
            "version": {"N": str(version)},
        }
        if op.ttl is not None:
            raw[TTL_ATTRIBUTE] = {"N": str(op.ttl)}
        for name, g in zip(INDEXES, (op.gsi1, op.gsi2), strict=True):
            if g is not None:
                gpk, gsk = index_keys(name)
                raw[gpk] = {"S": g[0]}
                raw[gsk] = {"S": g[1]}
        return raw

    @staticmethod
    def _live(raw: dict[str, Any] | None, now: int) -> bool:
        return raw is not None and (TTL_ATTRIBUTE not in raw or int(raw[TTL_ATTRIBUTE]["N"]) >= now)

    @staticmethod
    def _item(raw: dict[str, Any]) -> Item:
        def s(name: str) -> str | None:
            return raw[name]["S"] if name in raw else None

        g1p, g1s = map(s, index_keys(INDEXES[0]))
        g2p, g2s = map(s, index_keys(INDEXES[1]))
        return Item(
            pk=raw[PK]["S"],
            sk=raw[SK]["S"],
            data=json.loads(raw["data"]["S"]) if "data" in raw else {},
            version=int(raw["version"]["N"]) if "version" in raw else 0,
            ttl=int(raw[TTL_ATTRIBUTE]["N"]) if TTL_ATTRIBUTE in raw else None,
            gsi1=(g1p, g1s) if g1p is not None and g1s is not None else None,
            gsi2=(g2p, g2s) if g2p is not None and g2s is not None else None,
        )

    def _get_raw(self, pk: str, sk: str, consistent: bool = True) -> dict[str, Any] | None:
        resp = self.client.get_item(TableName=self.table_name, Key=self._key(pk, sk), ConsistentRead=consistent)
        return resp.get("Item")

    def _pinned_put(self, op: Put, raw: dict[str, Any] | None, now: int) -> tuple[int, _Cond]:
        """For ANY/PRESENT puts: the new version and a condition that the item is still as read."""
        if self._live(raw, now):
            assert raw is not None
            if "version" not in raw:  # written by something else: pin "still without a version"
                names = {"#v": "version", "#ttl": TTL_ATTRIBUTE}
                return 1, _Cond(f"attribute_not_exists(#v) AND {_LIVE}", names, {":now": {"N": str(now)}})
            current = int(raw["version"]["N"])
            return current + 1, _expect_condition(current, now)
        return 1, _expect_condition(ABSENT, now)

    # --- port --------------------------------------------------------------------------------
    def get(self, pk: str, sk: str, *, consistent: bool = True) -> Item | None:
        check_item_args(pk, sk)
        raw = self._get_raw(pk, sk, consistent)
        return self._item(raw) if raw is not None and self._live(raw, now_epoch()) else None

    def put(
        self,
        pk: str,
        sk: str,
        data: dict[str, Any],
        *,
        expect: Expect = ANY,
        ttl: int | None = None,
        gsi1: tuple[str, str] | None = None,
        gsi2: tuple[str, str] | None = None,
    ) -> Item:
        op = Put(pk, sk, data, expect=expect, ttl=ttl, gsi1=gsi1, gsi2=gsi2)
        check_ops([op])
        text = encode_data(data)
        for attempt in range(MAX_ATTEMPTS):
            now = now_epoch()
            if expect in (ANY, PRESENT):
                raw = self._get_raw(pk, sk)
                if expect == PRESENT and not self._live(raw, now):
                    raise ConditionFailed(f"put ({pk!r}, {sk!r}): expected PRESENT, item is absent")
                version, cond = self._pinned_put(op, raw, now)
            elif expect == ABSENT:
                version, cond = 1, _expect_condition(ABSENT, now)
            else:
                assert isinstance(expect, int)
                version, cond = expect + 1, _expect_condition(expect, now)
            try:
                self.client.put_item(TableName=self.table_name, Item=self._raw_item(op, text, version), **cond.kwargs())
            except ClientError as e:
                if _code(e) != "ConditionalCheckFailedException":
                    raise
                if expect in (ANY, PRESENT):  # lost a race with another writer: read again
                    _backoff(attempt)
                    continue
                raise ConditionFailed(f"put ({pk!r}, {sk!r}): expected {expect!r}") from None
            return Item(pk, sk, data, version=version, ttl=ttl, gsi1=gsi1, gsi2=gsi2)
        raise RuntimeError(f"put ({pk!r}, {sk!r}): too much contention ({MAX_ATTEMPTS} attempts)")

    def delete(self, pk: str, sk: str, *, expect: Expect = ANY) -> None:
        check_ops([Delete(pk, sk, expect=expect)])
        cond = _expect_condition(expect, now_epoch())
        try:
            self.client.delete_item(TableName=self.table_name, Key=self._key(pk, sk), **cond.kwargs())
        except ClientError as e:
            if _code(e) == "ConditionalCheckFailedException":
                raise ConditionFailed(f"delete ({pk!r}, {sk!r}): expected {expect!r}") from None
            raise

    def query(
        self,
        pk: str,
        *,
        index: Literal["table", "gsi1", "gsi2"] = "table",
        prefix: str = "",
        start: str | None = None,
        end: str | None = None,
        descending: bool = False,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page:
        if index not in ("table", "gsi1", "gsi2"):
            raise ValueError(f"unknown index {index!r}")
        if limit < 1:
            raise ValueError("limit must be >= 1")
        pcol, scol = (PK, SK) if index == "table" else index_keys(index)
        start = start or None
        if end == "" or not pk:
            return Page(items=[])
        # the key condition narrows to [lo, hi]; prefix and range are re-checked on each item below
        lo = max(filter(None, (prefix or None, start)), default=None)
        succ = prefix_successor(prefix) if prefix else None
        hi = min(filter(None, (end, succ)), default=None)
        names = {"#p": pcol, "#s": scol}
        values: dict[str, Any] = {":p": {"S": pk}}
        if prefix and start is None and end is None:
            key_cond = "#p = :p AND begins_with(#s, :prefix)"
            values[":prefix"] = {"S": prefix}
        elif lo is not None and hi is not None:
            if lo > hi:
                return Page(items=[])
            key_cond = "#p = :p AND #s BETWEEN :lo AND :hi"
            values.update({":lo": {"S": lo}, ":hi": {"S": hi}})
        elif lo is not None:
            key_cond = "#p = :p AND #s >= :lo"
            values[":lo"] = {"S": lo}
        elif hi is not None:
            key_cond = "#p = :p AND #s <= :hi"
            values[":hi"] = {"S": hi}
        else:
            key_cond = "#p = :p"
            del names["#s"]  # DynamoDB rejects unused expression names
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": key_cond,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
            "ScanIndexForward": not descending,
        }
        if index == "table":
            kwargs["ConsistentRead"] = True
        else:
            kwargs["IndexName"] = index
        if cursor:
            last = decode_query_cursor(cursor, index=index, pk=pk, descending=descending)
            want = 1 if index == "table" else 3
            if not isinstance(last, list) or len(last) != want or not all(isinstance(x, str) and x for x in last):
                raise ValueError("invalid cursor")
            if index == "table":
                kwargs["ExclusiveStartKey"] = self._key(pk, last[0])
            else:
                kwargs["ExclusiveStartKey"] = {
                    **self._key(last[1], last[2]),
                    pcol: {"S": pk},
                    scol: {"S": last[0]},
                }

        def wanted(raw: dict[str, Any]) -> bool:
            v = raw[scol]["S"]
            return (
                v.startswith(prefix)
                and (start is None or v >= start)
                and (end is None or v <= end)
                and self._live(raw, now)
            )

        now = now_epoch()
        found: list[dict[str, Any]] = []
        while True:
            kwargs["Limit"] = limit + 1 - len(found)
            resp = self.client.query(**kwargs)
            for raw in resp.get("Items", ()):
                if wanted(raw):
                    found.append(raw)
                    if len(found) > limit:
                        break
            if len(found) > limit or "LastEvaluatedKey" not in resp:
                break
            kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]
        items = [self._item(raw) for raw in found[:limit]]
        next_cursor = None
        if len(found) > limit:
            last_raw = found[limit - 1]
            pos = (
                [last_raw[SK]["S"]] if index == "table" else [last_raw[scol]["S"], last_raw[PK]["S"], last_raw[SK]["S"]]
            )
            next_cursor = encode_query_cursor(index, pk, descending, pos)
        return Page(items=items, cursor=next_cursor)

    def transact(self, ops: list[Put | Delete | Check]) -> TransactResult:
        check_ops(ops)
        texts = {(op.pk, op.sk): encode_data(op.data) for op in ops if isinstance(op, Put)}
        for attempt in range(MAX_ATTEMPTS):
            now = now_epoch()
            sent: list[tuple[Put | Delete | Check, bool]] = []  # (op, pinned by us rather than by the caller)
            items: list[dict[str, Any]] = []
            result = TransactResult()
            for op in ops:
                if isinstance(op, Put):
                    if op.expect in (ANY, PRESENT):
                        raw = self._get_raw(op.pk, op.sk)
                        if op.expect == PRESENT and not self._live(raw, now):
                            raise ConditionFailed(f"transact put ({op.pk!r}, {op.sk!r}): expected PRESENT")
                        version, cond = self._pinned_put(op, raw, now)
                        pinned = True
                    elif op.expect == ABSENT:
                        version, cond, pinned = 1, _expect_condition(ABSENT, now), False
                    else:
                        assert isinstance(op.expect, int)
                        version, cond, pinned = op.expect + 1, _expect_condition(op.expect, now), False
                    body: dict[str, Any] = {
                        "TableName": self.table_name,
                        "Item": self._raw_item(op, texts[(op.pk, op.sk)], version),
                        **cond.kwargs(),
                    }
                    items.append({"Put": body})
                    result.versions[(op.pk, op.sk)] = version
                else:
                    cond = _expect_condition(op.expect, now)
                    if isinstance(op, Check):
                        if not cond.expr:
                            continue  # Check(expect=ANY) checks nothing
                        items.append(
                            {
                                "ConditionCheck": {
                                    "TableName": self.table_name,
                                    "Key": self._key(op.pk, op.sk),
                                    **cond.kwargs(),
                                }
                            }
                        )
                    else:
                        items.append(
                            {"Delete": {"TableName": self.table_name, "Key": self._key(op.pk, op.sk), **cond.kwargs()}}
                        )
                    pinned = False
                sent.append((op, pinned))
            if not items:
                return result
            try:
                self.client.transact_write_items(TransactItems=items)
                return result
            except ClientError as e:
                if _code(e) != "TransactionCanceledException":
                    raise
                reasons = e.response.get("CancellationReasons") or []
                codes = [str(r.get("Code", "None")) for r in reasons]
                failed = [
                    sent[i][0]
                    for i, c in enumerate(codes)
                    if c == "ConditionalCheckFailed" and i < len(sent) and not sent[i][1]
                ]
                if failed:
                    op = failed[0]
                    raise ConditionFailed(
                        f"transact {type(op).__name__.lower()} ({op.pk!r}, {op.sk!r}): expected {op.expect!r}"
                    ) from None
                if not reasons or all(c in ("None", "ConditionalCheckFailed", "TransactionConflict") for c in codes):
                    _backoff(attempt)  # a race on an item we pinned, or a conflicting transaction
                    continue
                raise
        raise RuntimeError(f"transact: too much contention ({MAX_ATTEMPTS} attempts)")

    def increment(
        self, pk: str, sk: str, *, amount: int = 1, ceiling: int | None = None, ttl: int | None = None
    ) -> int | None:
        check_item_args(pk, sk, ttl)
        names = {"#n": "n", "#v": "version", "#ttl": TTL_ATTRIBUTE}
        update = "ADD #n :amount SET #v = if_not_exists(#v, :zero)"
        if ttl is not None:
            update += ", #ttl = :ttl"
        for attempt in range(MAX_ATTEMPTS):
            now = now_epoch()
            values: dict[str, Any] = {":amount": {"N": str(amount)}, ":zero": {"N": "0"}, ":now": {"N": str(now)}}
            if ttl is not None:
                values[":ttl"] = {"N": str(ttl)}
            cond = _LIVE
            if ceiling is not None:
                values[":limit"] = {"N": str(ceiling - amount)}
                cond += " AND (attribute_not_exists(#n) OR #n <= :limit)" if amount <= ceiling else " AND #n <= :limit"
            try:
                resp = self.client.update_item(
                    TableName=self.table_name,
                    Key=self._key(pk, sk),
                    UpdateExpression=update,
                    ConditionExpression=cond,
                    ExpressionAttributeNames=names,
                    ExpressionAttributeValues=values,
                    ReturnValues="ALL_NEW",  # UPDATED_NEW omits n when amount == 0 (moto)
                )
                return int(resp["Attributes"]["n"]["N"])
            except ClientError as e:
                if _code(e) != "ConditionalCheckFailedException":
                    raise
            # the ceiling was hit, or the item is expired (not yet purged): look
            raw = self._get_raw(pk, sk)
            if self._live(raw, now):
                assert raw is not None
                current = int(raw["n"]["N"]) if "n" in raw else 0
                if ceiling is not None and current + amount > ceiling:
                    return None
                _backoff(attempt)  # changed under us (e.g. the window was reset): try again
                continue
            if ceiling is not None and amount > ceiling:
                return None
            if raw is None:
                continue  # vanished (purged) meanwhile: the update path creates it
            fresh: dict[str, Any] = {**self._key(pk, sk), "n": {"N": str(amount)}, "version": {"N": "0"}}
            if ttl is not None:
                fresh[TTL_ATTRIBUTE] = {"N": str(ttl)}
            try:  # replace the expired item, unless someone else already did
                self.client.put_item(
                    TableName=self.table_name,
                    Item=fresh,
                    ConditionExpression="#ttl < :now",
                    ExpressionAttributeNames={"#ttl": TTL_ATTRIBUTE},
                    ExpressionAttributeValues={":now": {"N": str(now)}},
                )
                return amount
            except ClientError as e:
                if _code(e) != "ConditionalCheckFailedException":
                    raise
                _backoff(attempt)
        raise RuntimeError(f"increment ({pk!r}, {sk!r}): too much contention ({MAX_ATTEMPTS} attempts)")
