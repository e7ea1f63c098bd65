"""Header walk and unaligned numpy views over a chunk of STDF bytes.

The walk is the only per-record Python loop on the hot path: it reads REC_LEN and records each
record's offset, nothing else (stdf-parsing §4 step 3). Every other field is read afterwards by numpy
gathers at fixed offsets through *unaligned strided views*: ``np.ndarray(dtype='<f4', strides=(1,))``
over the buffer makes ``view[o]`` the 4-byte value starting at byte ``o`` for any ``o``, so one fancy
index reads a field of every record at once.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# Zero bytes appended to every chunk so gathers at fixed offsets stay in bounds for records that end
# early: the furthest read is HI_LIMIT (bytes 8..11 after OPT_FLAG) of a PTR/MPR ending at its OPT_FLAG,
# 11 bytes past the record; a record head (``HEAD_BYTES``) reads 13; the first 32 bytes of a name (one gather in
# testkeys) up to 32 past the end of the data.
PAD = 32
MIN_PREDICT = 4096  # records predicted per verification step, at least


def _walk_n(buf: bytes, pos: int, end: int, n: int, be: bool) -> tuple[list[int], int]:
    """Python walk of at most ``n`` complete records from ``pos``."""
    offs: list[int] = []
    ap = offs.append
    o = pos
    last = end - 4
    if be:
        while o <= last and n:
            ap(o)
            o += 4 + ((buf[o] << 8) | buf[o + 1])
            n -= 1
    else:
        while o <= last and n:
            ap(o)
            o += 4 + (buf[o] | (buf[o + 1] << 8))
            n -= 1
    if o > end:
        o = offs.pop()
    return offs, o


def _period(sig: np.ndarray, max_checks: int = 256, min_span: int = 4096) -> int:
    """Smallest p such that the last max(2p, min_span) entries of ``sig`` repeat with period p (0: none).

    The span guards against local patterns (a run of equal-length PTRs is not the file's period);
    candidates are positions where the last four signatures recur."""
    n = len(sig)
    if n < 8:
        return 0
    m = np.ones(n - 4, bool)
    for d in range(4):  # position j (< n-4) whose 4 signatures ending at j equal the last 4
        m &= sig[3 - d : n - 1 - d] == sig[n - 1 - d]
    cands = (np.flatnonzero(m) + 3)[::-1]
    for j in cands[:max_checks].tolist():
        p = n - 1 - j
        span = max(2 * p, min(min_span, n))
        if span > n:
            break
        if np.array_equal(sig[n - span : n - p], sig[n - span + p :]):
            return p
    return 0


def _phase(tsig: np.ndarray, recent: np.ndarray, gram: int = 16, max_gram: int = 1024) -> int:
    """Where the template resumes: the index j such that the cyclic template ending just before j
    equals the latest records. Only phases whose last entry matches are checked, over a window that
    grows (16, 32, ... up to ``max_gram``) until exactly one fits; -1 when none does or it stays
    ambiguous (long runs of equal records: the caller walks on and asks again)."""
    p = len(tsig)
    if p == 0 or len(recent) == 0:
        return -1
    cands = np.flatnonzero(tsig == recent[-1])  # template index aligned with the latest record
    m = min(gram, len(recent))
    while len(cands):
        window = recent[-m:]
        idx = cands[:, None] - (m - 1) + np.arange(m)
        if m - 1 > p:  # else every index is at least -p, which numpy's indexing wraps as ``% p`` would
            idx %= p
        cands = cands[(tsig[idx] == window).all(axis=1)]
        if len(cands) == 1:
            return int((cands[0] + 1) % p)
        if m >= len(recent) or m >= max_gram:
            return -1
        m = min(2 * m, len(recent), max_gram)
    return -1


def _rec_len(sig: np.ndarray, be: bool) -> np.ndarray:
    """REC_LEN from signatures (the header's 4 bytes read as a big-endian number)."""
    return sig >> 16 if be else (sig >> 24) | ((sig >> 8) & 0xFF00)


class WalkState:
    """What one chunk's walk hands the next: when the chunk's last two periods of records repeat, the last one
    as the template (its phase at the next chunk's first record is 0), so the next chunk predicts at once
    instead of walking blocks record by record until two periods repeat again. Only a speed-up: every
    predicted offset is verified, so the offsets are the same either way."""

    __slots__ = ("tsig", "history")

    def __init__(self) -> None:
        self.tsig: np.ndarray | None = None
        self.history = np.zeros(0, np.int64)


def walk_fast(
    buf: bytes,
    end: int,
    be: bool,
    block: int = 4096,
    probe: int = 64,
    gram: int = 16,
    state: WalkState | None = None,
) -> tuple[np.ndarray, int]:
    """Offsets of the complete records in ``buf[:end]`` and where the incomplete tail starts.

    Exact, and much faster than a per-record loop on the periodic files testers write (the same
    touchdown of PIRs, test records and PRRs again and again). The period of the (REC_LEN, type)
    sequence of a Python-walked block gives a template; the next period's offsets are predicted from
    it and verified with one numpy gather of REC_LEN: if the REC_LEN at predicted offset i is the
    template's, offset i+1 is necessarily right, so the matching prefix is accepted as is. At the first
    mismatch a short Python probe walks on from that (correct) offset, and the template resumes at the
    unique phase where the latest records fit it. When prediction does not pay (irregular files), the
    rest of the chunk is walked record by record. With ``state``, the template and the latest signatures
    carry over from the previous chunk (whose incomplete tail starts this one).
    """
    n = len(buf)
    u2 = np.ndarray(shape=(max(n - 1, 0),), dtype=">u2" if be else "<u2", buffer=buf, offset=0, strides=(1,))
    # a record's signature: its 4 header bytes (REC_LEN, REC_TYP, REC_SUB) as one big-endian number, one gather
    h4 = np.ndarray(shape=(max(n - 3, 0),), dtype=">u4", buffer=buf, offset=0, strides=(1,))
    out: list[np.ndarray] = []
    pos = 0
    tsig: np.ndarray | None = None  # template signatures; REC_LENs and offsets of the template repeated twice
    tl2: Any = None
    rel2: Any = None
    p = pp = span = phase = 0  # period, predicted length (a multiple of p), its bytes, template phase
    span1 = 0  # bytes of one period
    history = np.zeros(0, np.int64)  # signatures of the latest walked records (period detection, resync)
    predicted = walked = probes = lost = 0

    def use_template(sig: np.ndarray) -> None:
        nonlocal tsig, tl2, rel2, p, pp, span, phase, span1
        tsig, p, phase = sig, len(sig), 0
        # predict whole multiples of a short period at once (a file of empty records has period 1)
        pp = p * max(1, -(-MIN_PREDICT // p))
        tl = np.tile(_rec_len(sig, be), pp // p)
        steps = np.concatenate([tl, tl]) + 4
        rel2 = np.concatenate([[0], np.cumsum(steps)[:-1]])
        tl2 = np.concatenate([tl, tl])
        span = int(rel2[pp])
        span1 = int(rel2[p])

    carried = False  # the template is the previous chunk's last period of records
    if state is not None and state.tsig is not None:
        use_template(state.tsig)
        history = state.history
        carried = True
    while pos <= end - 4:
        if tsig is not None:
            k = 0
            ahead = p  # after a re-synchronisation the run is often shorter than pp: check one period first
            while True:
                shift = pos - int(rel2[phase])
                # records wholly inside the data: record i ends where record i + 1 starts (rel2 is cumulative)
                lim = int(np.searchsorted(rel2[phase + 1 : phase + ahead + 1], end - shift, side="right"))
                if lim == 0:
                    k = 0
                    break
                tl = tl2[phase : phase + lim]
                cand = rel2[phase : phase + lim] + shift
                good = u2[cand] == tl
                k = lim if bool(good.all()) else int(good.argmin())
                if k:
                    out.append(cand[:k])
                    predicted += k
                if k == ahead:
                    pos += span if ahead == pp else span1
                    ahead = pp
                    continue
                if k:
                    pos = int(cand[k - 1] + 4 + tl[k - 1])
                break
            if k:
                accepted = tsig[(phase + np.arange(max(0, k - gram), k)) % p]
                history = accepted if k >= gram else np.concatenate([history, accepted])[-gram:]
        offs, pos_next = _walk_n(buf, pos, end, probe if tsig is not None else block, be)
        if not offs:
            break
        a = np.asarray(offs, dtype=np.int64)
        out.append(a)
        pos = pos_next
        sig = h4[a].astype(np.int64)
        if tsig is not None:
            walked += len(a)
            probes += 1
            poor = probes >= (16 if carried else 64) and predicted < 2 * walked
            if poor and not carried:
                # the file is not regular enough for prediction to pay: plain walk for the rest
                rest, pos = _walk_n(buf, pos, end, 1 << 62, be)
                if rest:
                    out.append(np.asarray(rest, dtype=np.int64))
                tsig = None  # the next chunk starts its own detection
                break
            history = np.concatenate([history, sig])[-1024:]
            if not poor:
                j = _phase(tsig, history, gram)
                if j >= 0:
                    phase, lost = j, 0
                    continue
                lost += len(a)
                if lost < (p if carried else 2 * p + block):
                    continue
            # the file changed pattern (or the previous chunk's last touchdown is a poor template for this
            # one): detect a period in this chunk
            tsig = None
            if carried:  # this chunk's own template gets the usual chances
                carried = False
                predicted = walked = probes = 0
        history = np.concatenate([history, sig])[-(1 << 16) :]
        per = _period(history)
        if per:
            use_template(history[-per:].copy())
            lost = 0
    offs_all = np.concatenate(out) if out else np.zeros(0, np.int64)
    if state is not None:
        state.tsig = None
        state.history = np.zeros(0, np.int64)
        if tsig is not None and len(offs_all) >= 2 * p:
            last = offs_all[-2 * p :]
            sig2 = h4[last].astype(np.int64)
            if np.array_equal(sig2[:p], sig2[p:]):  # the last two periods repeat: a template as detection finds
                state.tsig = sig2[p:]
                state.history = state.tsig[-1024:]
    return offs_all, pos


HEAD_BYTES = 17  # a record's header and the first 13 body bytes: every fixed field PTR/MPR/FTR have in common


def _head_dtype(e: str) -> np.dtype:
    """The first ``HEAD_BYTES`` of a record: REC_LEN, (REC_TYP, REC_SUB) as one code, then, for PTR, TEST_NUM,
    HEAD_NUM, SITE_NUM, TEST_FLG, PARM_FLG, RESULT and the TEST_TXT length byte."""
    return np.dtype(
        {
            "names": ["rl", "code", "num", "head", "site", "flg", "flg2", "res", "txt"],
            "formats": [e + "u2", ">u2", e + "u4", "u1", "u1", "u1", "u1", e + "f4", "u1"],
            "offsets": [0, 2, 4, 8, 9, 10, 11, 12, 16],
            "itemsize": HEAD_BYTES,
        }
    )


HEAD = {False: _head_dtype("<"), True: _head_dtype(">")}
OPT_BYTES = 12  # PTR/MPR from OPT_FLAG on: OPT_FLAG, RES_SCAL, LLM_SCAL, HLM_SCAL, LO_LIMIT, HI_LIMIT
OPT = {
    be: np.dtype(
        {"names": ["opt", "lo", "hi"], "formats": ["u1", e + "f4", e + "f4"], "offsets": [0, 4, 8], "itemsize": 12}
    )
    for be, e in ((False, "<"), (True, ">"))
}


class Views:
    """Typed unaligned views over one padded chunk buffer, in the file's byte order."""

    __slots__ = ("b", "u2", "i2", "u4", "i4", "f4", "u8", "w8", "f8", "i8", "be", "head", "opt", "_buf", "_names")

    def __init__(self, buf: bytes, big_endian: bool) -> None:
        e = ">" if big_endian else "<"
        n = len(buf)
        self.be = big_endian
        self.b = np.frombuffer(buf, dtype=np.uint8)

        def view(t: str, w: int) -> np.ndarray:
            return np.ndarray(shape=(max(n - w + 1, 0),), dtype=e + t, buffer=buf, offset=0, strides=(1,))

        self.u2 = view("u2", 2)
        self.i2 = view("i2", 2)
        self.u4 = view("u4", 4)
        self.i4 = view("i4", 4)
        self.f4 = view("f4", 4)
        self.u8 = view("u8", 8)
        self.i8 = view("i8", 8)
        self.f8 = view("f8", 8)
        # byte-order independent 8-byte words, for hashing/comparing strings
        self.w8 = np.ndarray(shape=(max(n - 7, 0),), dtype="<u8", buffer=buf, offset=0, strides=(1,))
        # raw record heads: one gather of HEAD_BYTES costs what one gather of a 4-byte field does (the zero PAD
        # keeps it in bounds for a record at the end of the data); ``.view(HEAD[be])`` names the fields
        self.head = view(f"V{HEAD_BYTES}", HEAD_BYTES)
        self.opt = view(f"V{OPT_BYTES}", OPT_BYTES)
        self._buf = buf
        self._names: dict[int, np.ndarray] = {}

    def name_head(self, k: int) -> np.ndarray:
        """A view whose element ``o`` is the ``8 k`` raw bytes from offset ``o`` (the first ``k`` words of a name;
        the chunk's zero ``PAD`` keeps them in bounds for a name at the end of the data)."""
        view = self._names.get(k)
        if view is None:
            n = len(self._buf)
            shape = (max(n - 8 * k + 1, 0),)
            view = np.ndarray(shape=shape, dtype=f"V{8 * k}", buffer=self._buf, offset=0, strides=(1,))
            self._names[k] = view
        return view


def ramp(counts: np.ndarray) -> np.ndarray:
    """For counts [2, 0, 3] return [0, 1, 0, 1, 2]: the index of each element within its group."""
    counts = np.asarray(counts, dtype=np.int64)
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    starts = np.cumsum(counts) - counts
    return np.arange(total, dtype=np.int64) - np.repeat(starts, counts)
