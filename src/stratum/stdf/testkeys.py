"""Test identity and default data (stdf-semantics §5, §8).

Tests are keyed by (record kind, TEST_NUM, TEST_TXT) — or by (kind, TEST_NUM) when the snapshot
option ``test_key="number"`` is chosen. Name matching is vectorised: each record's TEST_TXT bytes are
hashed eight bytes at a time through an unaligned word view, looked up among known keys with
``searchsorted``, and then *verified byte for byte* against the key's registered name, so a hash
collision can never merge two tests: unverified rows take the exact (slow) path.

A record with an empty TEST_TXT belongs to the most recent named test with the same number (some
testers name a test only in its first record).

Default data belongs to the test *number* (§5): the first record of a number that carries it sets the
number's defaults. A test key (number, name) with default data of its own uses that; a key without any
(only short records) uses its number's (``d_num``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .decode import text
from .walk import Views

_C1 = np.uint64(0x9E3779B97F4A7C15)
_C2 = np.uint64(0xC2B2AE3D27D4EB4F)
_C3 = np.uint64(0x165667B19E3779F9)
_ALL = np.uint64(0xFFFFFFFFFFFFFFFF)
_S29 = np.uint64(29)
_S32 = np.uint64(32)

KIND_CODES = {"P": 1, "M": 2, "F": 3}
LUT_MAX = 1 << 20  # largest TEST_NUM looked up through a dense table (8 MB); larger ones use a binary search


def _masks() -> np.ndarray:
    m = np.zeros(9, dtype=np.uint64)
    for r in range(1, 9):
        m[r] = np.uint64((1 << (8 * r)) - 1)
    return m


_MASK = _masks()
HEAD_WORDS = 4  # name words read by one gather in ``_verified``
# _WORD_MASK[w][L]: the bytes of word w that a name of L bytes (at most 8 HEAD_WORDS) covers
_WORD_MASK = [_MASK[np.clip(np.arange(8 * HEAD_WORDS + 1) - 8 * w, 0, 8)] for w in range(HEAD_WORDS)]


def name_words(raw: bytes) -> list[int]:
    """The words ``word_groups`` reads for a name: 8-byte little-endian words at offsets
    0, 8, 16, ... with the last one shifted back to end exactly at the name's end (overlapping, so no
    masking is needed); a name shorter than 8 bytes is one zero-padded word."""
    n = len(raw)
    if n == 0:
        return []
    if n <= 8:
        return [int.from_bytes(raw.ljust(8, b"\x00"), "little")]
    return [int.from_bytes(raw[min(8 * w, n - 8) : min(8 * w, n - 8) + 8], "little") for w in range((n + 7) // 8)]


def word_groups(length: np.ndarray):
    """Yield (rows, k) for the rows whose names take k words, k >= 1 (rows sorted by k once)."""
    k = ((length + 7) // 8).astype(np.uint8)
    order = np.argsort(k, kind="stable")
    sk = k[order]
    cuts = np.flatnonzero(np.diff(sk)) + 1
    for a, z in zip(np.concatenate([[0], cuts]).tolist(), np.concatenate([cuts, [len(sk)]]).tolist(), strict=False):
        kk = int(sk[a]) if z > a else 0
        if kk:
            yield order[a:z], kk


def read_words(w8: np.ndarray, start: np.ndarray, length: np.ndarray, k: int, w: int) -> np.ndarray:
    """Word ``w`` (of ``k``) of each name, as defined by ``name_words``."""
    if k == 1:
        return w8[start] & _MASK[np.minimum(length, 8)]
    return w8[start + np.minimum(8 * w, length - 8)]


def hash_names(w8: np.ndarray, start: np.ndarray, length: np.ndarray) -> np.ndarray:
    """64-bit hash of the byte strings ``buf[start:start+length]`` (vectorised, 8 bytes per step)."""
    h = length.astype(np.uint64) * _C3
    for rows, k in word_groups(length):
        st, ln = start[rows], length[rows]
        hs = h[rows]
        for w in range(k):
            hs = (hs ^ read_words(w8, st, ln, k, w)) * _C1
            hs ^= hs >> _S29
        h[rows] = hs
    h ^= h >> _S32
    h *= _C2
    return h


_DEFAULT_FIELDS = (
    "opt_flag",
    "res_scal",
    "llm_scal",
    "hlm_scal",
    "lo_limit",
    "hi_limit",
    "lo_spec",
    "hi_spec",
    "units",
    "units_in",
    "c_resfmt",
    "c_llmfmt",
    "c_hlmfmt",
    "start_in",
    "incr_in",
    "rtn_indx",
)


@dataclass
class TestInfo:
    idx: int
    kind: str  # 'P' | 'M' | 'F'
    num: int
    name: str
    name_bytes: bytes
    first_rec_seq: int
    has_defaults: bool = False
    opt_flag: int | None = None
    res_scal: int | None = None
    llm_scal: int | None = None
    hlm_scal: int | None = None
    lo_limit: float | None = None
    hi_limit: float | None = None
    lo_spec: float | None = None
    hi_spec: float | None = None
    units: str | None = None
    units_in: str | None = None
    c_resfmt: str | None = None
    c_llmfmt: str | None = None
    c_hlmfmt: str | None = None
    start_in: float | None = None
    incr_in: float | None = None
    rtn_indx: list[int] | None = None  # MPR default pin list (PMR indexes)
    exec_count: int = 0
    extra: dict = field(default_factory=dict)


class TestRegistry:
    """Every test key of one file, with its default data, plus fast per-key numpy arrays."""

    def __init__(self, by_number: bool = False) -> None:
        self.by_number = by_number
        self.tests: list[TestInfo] = []
        self._keys: dict[tuple[str, int, bytes], int] = {}
        # per kind: sorted hash keys and the test index each maps to
        self._known: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._last_named: dict[tuple[str, int], int] = {}
        self._named_before: dict[str, np.ndarray | None] = {}  # per kind: the tests _inherit_names last saw
        self._by_num: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # per kind: sorted nums, first test
        self._num_lut: dict[str, np.ndarray] = {}  # per kind: dense TEST_NUM -> first test (-1 none), if small
        self._cap = 0
        self.d_lo = np.zeros(0, np.float32)  # default limits, NaN = none
        self.d_hi = np.zeros(0, np.float32)
        self.d_has = np.zeros(0, bool)
        self.d_num = np.zeros(0, np.int64)  # test holding the defaults of this test's number (-1 none yet)
        self._num_default: dict[tuple[str, int], int] = {}
        self._num_tests: dict[tuple[str, int], list[int]] = {}
        self.name_len = np.zeros(0, np.int64)
        self.key_num = np.zeros(0, np.int64)
        self.key_kind = np.zeros(0, np.int8)
        self.name_words = np.zeros((0, 0), np.uint64)

    # -- registration ------------------------------------------------------------------------
    def _grow(self, n: int) -> None:
        if n <= self._cap:
            return
        cap = max(64, 2 * n)
        for attr, fill in (("d_lo", np.nan), ("d_hi", np.nan)):
            a = np.full(cap, fill, np.float32)
            a[: self._cap] = getattr(self, attr)[: self._cap]
            setattr(self, attr, a)
        has = np.zeros(cap, bool)
        has[: self._cap] = self.d_has[: self._cap]
        self.d_has = has
        dn = np.full(cap, -1, np.int64)
        dn[: self._cap] = self.d_num[: self._cap]
        self.d_num = dn
        for attr, dt in (("name_len", np.int64), ("key_num", np.int64), ("key_kind", np.int8)):
            a = np.zeros(cap, dt)
            a[: self._cap] = getattr(self, attr)[: self._cap]
            setattr(self, attr, a)
        self._cap = cap

    def _words(self, raw: bytes) -> np.ndarray:
        """The name as zero-padded 8-byte little-endian words (``_verified`` compares against them)."""
        padded = raw.ljust(-(-len(raw) // 8) * 8, b"\x00")
        return np.frombuffer(padded, dtype="<u8").astype(np.uint64)

    def get_or_add(self, kind: str, num: int, raw_name: bytes, rec_seq: int) -> int:
        key = (kind, num, b"" if self.by_number else raw_name)
        idx = self._keys.get(key)
        if idx is not None:
            if self.by_number and raw_name and not self.tests[idx].name_bytes:
                t = self.tests[idx]
                t.name_bytes, t.name = raw_name, text(raw_name)
            return idx
        idx = len(self.tests)
        self._keys[key] = idx
        self.tests.append(TestInfo(idx, kind, num, text(raw_name), raw_name, rec_seq))
        self._grow(idx + 1)
        words = self._words(b"" if self.by_number else raw_name)
        old = self.name_words
        if words.size > old.shape[1] or old.shape[0] < self._cap:
            nw = np.zeros((self._cap, max(words.size, old.shape[1], HEAD_WORDS)), np.uint64)
            nw[: old.shape[0], : old.shape[1]] = old
            self.name_words = nw
        self.name_words[idx, : words.size] = words
        self.name_len[idx] = 0 if self.by_number else len(raw_name)
        self.key_num[idx] = num
        self.key_kind[idx] = KIND_CODES[kind]
        self._num_tests.setdefault((kind, num), []).append(idx)
        self.d_num[idx] = self._num_default.get((kind, num), -1)
        nums, idxs = self._by_num.get(kind, (np.zeros(0, np.int64), np.zeros(0, np.int64)))
        p = int(np.searchsorted(nums, num))
        if p == len(nums) or nums[p] != num:
            self._by_num[kind] = (np.insert(nums, p, num), np.insert(idxs, p, idx))
            self._num_lut.pop(kind, None)
        return idx

    def defaults_set(self, idx: int) -> None:
        """Test ``idx`` just took its default data: the first test of its number to do so holds the number's."""
        t = self.tests[idx]
        key = (t.kind, t.num)
        if key not in self._num_default:
            self._num_default[key] = idx
            self.d_num[self._num_tests[key]] = idx

    def inherit_number_defaults(self) -> None:
        """Give every test without default data of its own the default data of its number (for the tests
        table; per-record limits already used them)."""
        for t in self.tests:
            src = int(self.d_num[t.idx])
            if t.has_defaults or src < 0:
                continue
            d = self.tests[src]
            for f in _DEFAULT_FIELDS:
                setattr(t, f, getattr(d, f))

    def _remember(self, kind: str, hashes: np.ndarray, idxs: np.ndarray) -> None:
        old_h, old_i = self._known.get(kind, (np.zeros(0, np.uint64), np.zeros(0, np.int64)))
        h = np.concatenate([old_h, hashes])
        i = np.concatenate([old_i, idxs])
        h, first = np.unique(h, return_index=True)
        self._known[kind] = (h, i[first])

    # -- vectorised resolution ---------------------------------------------------------------
    def resolve(
        self,
        kind: str,
        v: Views,
        nums: np.ndarray,
        name_start: np.ndarray,
        name_len: np.ndarray,
        rec_seq: np.ndarray,
    ) -> np.ndarray:
        """Test index of every record. ``name_start`` is the offset of the first TEST_TXT byte;
        ``name_len`` its length (0 when absent or empty)."""
        n = len(nums)
        if n == 0:
            return np.zeros(0, np.int64)
        nums = nums.astype(np.int64)
        L = np.zeros(n, np.int64) if self.by_number else name_len.astype(np.int64, copy=False)
        out = np.full(n, -1, np.int64)
        # 1. candidate: the first test registered with the record's number; verified byte for byte
        ok = self._candidates(kind, v, nums, name_start, L, out)
        rows = np.flatnonzero(out < 0)
        while len(rows):  # numbers never seen: register the first record of each, then check again
            window = rows[:65536]  # a touchdown or two holds every test: no need to sort the whole chunk
            _, first = np.unique(nums[window], return_index=True)
            for r in window[first].tolist():
                s, ln = int(name_start[r]), int(L[r])
                self.get_or_add(kind, int(nums[r]), bytes(v.b[s : s + ln]), int(rec_seq[r]))
            sub = np.full(len(rows), -1, np.int64)
            ok[rows] = self._candidates(kind, v, nums[rows], name_start[rows], L[rows], sub)
            out[rows] = sub
            rows = rows[sub < 0]
        rest = np.flatnonzero(~ok)
        # 2. the others (new tests, reused numbers) by name hash, verified again
        if len(rest):
            out[rest] = self._resolve_by_hash(kind, v, nums[rest], name_start[rest], L[rest], rec_seq[rest])
        if not self.by_number:
            self._inherit_names(kind, out, nums, L)
        return out

    def _candidates(self, kind, v, nums, name_start, L, out) -> np.ndarray:
        """Fill ``out`` with the first test registered under each record's number; True where the
        record's name matches it exactly."""
        known = self._by_num.get(kind)
        if known is None or not len(known[0]):
            return np.zeros(len(nums), bool)
        known_n, known_i = known
        lut = self._lut(kind, known_n, known_i)
        if lut is not None:  # one gather instead of a binary search per record
            cand = np.take(lut, nums, mode="clip")  # numbers past the table land on its last slot, -1
            hit = cand >= 0
            if bool(hit.all()):
                out[:] = cand
            else:
                out[hit] = cand[hit]
        else:
            pos = np.minimum(np.searchsorted(known_n, nums), len(known_n) - 1)
            hit = known_n[pos] == nums
            out[hit] = known_i[pos[hit]]
        return self._verified(v, out, name_start, L) & hit

    def _lut(self, kind: str, known_n: np.ndarray, known_i: np.ndarray) -> np.ndarray | None:
        """Dense TEST_NUM lookup table when the numbers are small (the usual case), else None."""
        lut = self._num_lut.get(kind)
        if lut is None and int(known_n[-1]) < LUT_MAX:
            lut = np.full(int(known_n[-1]) + 2, -1, np.int64)  # the last slot stays -1: out of range
            lut[known_n] = known_i
            self._num_lut[kind] = lut
        return lut

    def _resolve_by_hash(self, kind, v, nums, name_start, L, rec_seq) -> np.ndarray:
        h = hash_names(v.w8, name_start, L) ^ (nums.astype(np.uint64) * _C1)
        out = np.full(len(nums), -1, np.int64)
        known = self._known.get(kind)
        if known is not None and len(known[0]):
            known_h, known_i = known
            pos = np.minimum(np.searchsorted(known_h, h), len(known_h) - 1)
            hit = known_h[pos] == h
            out[hit] = known_i[pos[hit]]
        miss = np.flatnonzero(out < 0)
        if len(miss):
            uh, first = np.unique(h[miss], return_index=True)
            new_idx = np.empty(len(uh), np.int64)
            for j, r in enumerate(miss[first].tolist()):
                s, ln = int(name_start[r]), int(L[r])
                new_idx[j] = self.get_or_add(kind, int(nums[r]), bytes(v.b[s : s + ln]), int(rec_seq[r]))
            self._remember(kind, uh, new_idx)
            out[miss] = new_idx[np.searchsorted(uh, h[miss])]
        ok = (
            self._verified(v, out, name_start, L)
            & (self.key_num[out] == nums)
            & (self.key_kind[out] == KIND_CODES[kind])
        )
        for r in np.flatnonzero(~ok).tolist():  # a hash collision: exact slow path
            s, ln = int(name_start[r]), int(L[r])
            out[r] = self.get_or_add(kind, int(nums[r]), bytes(v.b[s : s + ln]), int(rec_seq[r]))
        return out

    def _verified(self, v: Views, idx: np.ndarray, name_start: np.ndarray, L: np.ndarray) -> np.ndarray:
        """True where the record's name equals the name of test ``idx`` (idx < 0 never matches).

        The first ``HEAD_WORDS`` words of every name come from one gather of that many bytes (what one gather of
        a 4-byte field costs); the bytes past a name's end are masked off and the registered words are
        zero-padded (``name_words``), so one comparison per word covers names of any length up to there. Longer
        names' further words are read one by one, for those rows only. Rows whose length differs from the
        test's fail on ``name_len`` alone."""
        safe = np.maximum(idx, 0)
        ok = (idx >= 0) & (self.name_len[safe] == L)
        if not len(L):
            return ok
        table = self.name_words
        nw = min(int((int(L.max()) + 7) // 8), table.shape[1])
        if nw == 0:
            return ok
        k = min(nw, HEAD_WORDS)
        head = v.name_head(k)
        start = np.minimum(name_start, len(head) - 1)  # absent names (L = 0) may point anywhere: stay in bounds
        words = head[start].view("<u8").reshape(-1, k)
        flat = table.reshape(-1)
        row = safe * table.shape[1]
        shortest = int(L.min())
        cut = np.minimum(L, 8 * HEAD_WORDS)
        for w in range(k):
            word = words[:, w]
            if 8 * (w + 1) > shortest:  # some name ends before this word does
                word = word & _WORD_MASK[w][cut]
            ok &= word == (flat[row + w] if w else flat[row])
        if nw > k:  # names longer than the head: their further words
            rows = np.flatnonzero(L > 8 * k)
            if len(rows):
                st, ln, t = name_start[rows], L[rows], safe[rows]
                w8 = v.w8
                sub = ok[rows]
                top = len(w8) - 1
                for w in range(k, nw):  # (a word past a row's name is masked off whole, wherever it is read)
                    word = w8[np.minimum(st + 8 * w, top)] & _MASK[np.clip(ln - 8 * w, 0, 8)]
                    sub &= word == table[t, w]
                ok[rows] = sub
        return ok

    def _inherit_names(self, kind: str, out: np.ndarray, nums: np.ndarray, L: np.ndarray) -> None:
        """Records with an empty TEST_TXT take the most recent named test with the same number."""
        empty = L == 0
        if empty.any():
            order = np.argsort(nums, kind="stable")
            sn = nums[order]
            bounds = np.flatnonzero(np.diff(sn)) + 1
            for grp in np.split(order, bounds):
                e = empty[grp]
                if not e.any():
                    continue
                num = int(nums[grp[0]])
                named = ~e
                # forward-fill the last named record's test index along file order within the group
                pos = np.where(named, np.arange(len(grp)), -1)
                np.maximum.accumulate(pos, out=pos)
                prev = self._last_named.get((kind, num))
                fill = np.where(pos >= 0, out[grp[np.maximum(pos, 0)]], -1 if prev is None else prev)
                tgt = grp[e]
                f = fill[e]
                keep = f >= 0
                out[tgt[keep]] = f[keep]
        # remember, per number, the test of the last named record (for later chunks)
        any_empty = bool(empty.any())
        named_rows = np.flatnonzero(~empty) if any_empty else np.arange(len(out))
        if len(named_rows) == 0:
            return
        present = np.flatnonzero(np.bincount(out[named_rows] if any_empty else out, minlength=len(self.tests)))
        same = self._named_before.get(kind)
        if same is not None and np.array_equal(same, present):
            return  # the same tests as the last time, one per number: the same answers
        by_num: dict[int, list[int]] = {}
        for i in present.tolist():
            by_num.setdefault(int(self.key_num[i]), []).append(i)
        reused = False
        for num, idxs in by_num.items():
            if len(idxs) == 1:
                self._last_named[(kind, num)] = idxs[0]
            else:  # a reused number (P13): the key of its latest named record
                sel = named_rows[np.isin(out[named_rows], idxs)]
                self._last_named[(kind, num)] = int(out[sel[-1]])
                reused = True
        self._named_before[kind] = None if reused else present
