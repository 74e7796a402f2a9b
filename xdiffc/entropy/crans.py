"""A compiled rANS coder with frozen integer frequency tables (numba).

Used by versions 2 and 3 of the interpolation payload and by the wavelet payload, whose symbols each come with a context (model)
index that the decoder can compute from what it has already decoded.  Everything is integer
arithmetic on int64, so encoder and decoder agree on every machine.

Coder: state ``x`` in ``[L, 2**63)`` with ``L = 2**31``, 32-bit words, tables of precision
``P`` bits (``1 <= P <= 16``): a model is a list of used symbols (increasing) with frequencies
``f >= 1`` summing to exactly ``2**P``, and ``c`` the sum of the frequencies before a symbol.

- decode one symbol under a model: a model with one symbol (``f = 2**P``) yields it and leaves
  ``x`` as it is; otherwise ``slot = x mod 2**P``, the symbol is the last one with ``c <= slot``,
  ``x = f * (x >> P) + slot - c``, then if ``x < L``: ``x = (x << 32) | next word``.
- the stream starts with ``x = (w0 << 32) | w1`` (``L <= x < 2**63``), or ``x = L`` when it has
  no words at all (every symbol certain), and must end with ``x = L`` exactly when all words
  are used up; anything else is a damaged stream.

Two table formats:

- *explicit* (read only; written by interp payload version 2 and wavelet payload version 1), per
  model: ``uv`` number of used symbols ``n`` (0: the model is never used), then ``n`` pairs ``uv``
  gap to the previous symbol (first: the symbol itself), ``uv`` ``f - 1``.
- *compact* (written): the symbol counts on a log scale, from which the decoder derives the
  frequencies. A count ``c`` travels as a code ``q``: ``q = c - 1`` for ``c <=``
  :data:`EXACT_COUNTS`, above that two steps per octave (:func:`count_of_code`, integers only).
  The decoder normalises the counts of each model to ``2**P`` with :func:`normalize_row` (integer
  arithmetic), exactly as the encoder did before coding. Bytes: ``uv`` length and a zstd frame
  of: ``uv`` ``n`` per model, then ``uv`` symbol gaps (as above) of every used symbol, model by
  model, then one ``u8`` code per used symbol, in the same order. The codes cost some 0.2-1% of
  the symbols' bits; the tables shrink 3-4x (they were 9-33% of version 2 payloads).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..byteio import Reader, inflate, put_varint, read_varint
from ..errors import CorruptStreamError
from ..kernels import grown, kernel
from . import zstd

L_BOUND = np.int64(1) << 31
MAX_PREC = 16

# ----------------------------------------------------------------------------- tables


@kernel
def normalize_row(counts, prec, freq):
    """Frequencies ``freq`` (same length as ``counts``, every count > 0) summing to ``2**prec``.

    Each symbol gets ``max(1, floor(c * M / T))``; the surplus or shortfall is taken from / given
    to the largest frequencies (the first of equals). Needs at most ``2**prec`` symbols and
    ``c * 2**prec < 2**63``. Integer arithmetic only: encoder and decoder agree.
    """
    m_tot = np.int64(1) << prec
    t = np.int64(0)
    for k in range(counts.size):
        t += counts[k]
    s = np.int64(0)
    big = 0
    for k in range(counts.size):
        f = (counts[k] * m_tot) // t
        if f < 1:
            f = 1
        freq[k] = f
        s += f
        if f > freq[big]:
            big = k
    d = m_tot - s
    if d >= 0:
        freq[big] += d
        return
    while d < 0:  # too many symbols lifted to 1: shave the largest frequencies
        big = 0
        for k in range(counts.size):
            if freq[k] > freq[big]:
                big = k
        take = min(-d, max((freq[big] - 1) // 2, 1))
        freq[big] -= take
        d += take


@kernel
def normalize(counts, prec):
    """Frequencies (same shape as ``counts`` [model, symbol]) summing to ``2**prec`` per used model:
    :func:`normalize_row` of each row's nonzero counts."""
    freq = np.zeros(counts.shape, np.int64)
    for m in range(counts.shape[0]):
        used = np.flatnonzero(counts[m])
        if used.size:
            f = np.empty(used.size, np.int64)
            normalize_row(counts[m][used].astype(np.int64), prec, f)
            for k in range(used.size):  # a loop: fancy assignment compiles numba's error formatting (see grown)
                freq[m, used[k]] = f[k]
    return freq


#: Counts up to this travel exactly in a compact table (code ``c - 1``).
EXACT_COUNTS = 4
#: Largest code of a compact table: the count ``2**40`` (counts are clamped there; ``2**40 * 2**16 < 2**63``).
MAX_CODE = EXACT_COUNTS + 2 * 38


@kernel(inline="always")
def count_of_code(q):
    """The count a compact-table code stands for: ``q + 1`` up to :data:`EXACT_COUNTS`, then
    ``4 << e`` for ``q = 4 + 2e`` and ``(4 << e) * 181 >> 7`` (x 1.414) for ``q = 5 + 2e``."""
    if q < EXACT_COUNTS:
        return np.int64(q + 1)
    j = q - EXACT_COUNTS
    base = np.int64(EXACT_COUNTS) << (j >> 1)
    return base if not j & 1 else (base * 181) >> 7


@kernel
def code_of_count(c):
    """The code whose count is nearest to ``c >= 1`` on a log scale (the geometric midpoint goes up; IEEE
    products, the same on every machine)."""
    if c <= EXACT_COUNTS:
        return c - 1
    q = EXACT_COUNTS
    while q < MAX_CODE and count_of_code(q + 1) <= c:
        q += 1
    if q < MAX_CODE and float(c) * float(c) >= float(count_of_code(q)) * float(count_of_code(q + 1)):
        q += 1
    return q


@kernel
def _compact_raw(counts, sym_of):
    """The raw compact table of ``counts`` [model, k] (``k`` standing for ``sym_of[k]``) and the counts
    its codes stand for (what the decoder will normalise)."""
    n_models, width = counts.shape
    back = np.zeros(counts.shape, np.int64)
    total = 0
    for m in range(n_models):
        for k in range(width):
            total += counts[m, k] > 0
    head = np.empty(3 * n_models + 3 * total + 1, np.uint8)
    codes = np.empty(total, np.uint8)
    at, n = np.int64(0), 0  # int64, not the literal 0: one compilation of put_varint
    for m in range(n_models):
        k_used = np.int64(0)
        for k in range(width):
            k_used += counts[m, k] > 0
        at = put_varint(head, at, k_used)
    for m in range(n_models):
        prev = np.int64(0)
        for k in range(width):
            c = counts[m, k]
            if c > 0:
                q = code_of_count(c)
                codes[n] = q
                back[m, k] = count_of_code(q)
                n += 1
                at = put_varint(head, at, sym_of[k] - prev)
                prev = sym_of[k]
    out = np.empty(at + n, np.uint8)  # filled by loops: slice assignment compiles numba's error formatting
    for i in range(at):
        out[i] = head[i]
    for i in range(n):
        out[at + i] = codes[i]
    return out, back


def compact_tables(counts: np.ndarray, sym_of: np.ndarray, prec: int) -> tuple[bytes, np.ndarray]:
    """The compact table bytes of ``counts`` [model, k] and the frequencies [model, k] to code with.

    ``sym_of[k]`` is the symbol that column ``k`` stands for (increasing). The frequencies are
    the normalised counts the codes stand for, exactly what the decoder rebuilds.
    """
    raw, back = _compact_raw(np.ascontiguousarray(counts, np.int64), np.ascontiguousarray(sym_of, np.int64))
    return zstd.frame(raw.tobytes(), zstd.strong_level(raw.size)), normalize(back, prec)


@kernel
def _parse_tables(buf, at, end, n_models, prec, n_bins):
    """Flat tables of ``n_models`` models: (start, nnz, symbols, freqs, cums, next position or -1)."""
    m_tot = np.int64(1) << prec
    start = np.zeros(n_models + 1, np.int64)
    nnz = np.zeros(n_models, np.int64)
    cap = 1024
    syms = np.empty(cap, np.int64)
    freqs = np.empty(cap, np.int64)
    cums = np.empty(cap, np.int64)
    n = 0
    for m in range(n_models):
        start[m] = n
        k, at = read_varint(buf, at, end, min(n_bins, m_tot))
        if at < 0:
            return start, nnz, syms, freqs, cums, -1
        nnz[m] = k
        sym, tot = np.int64(0), np.int64(0)
        for i in range(k):
            gap, at = read_varint(buf, at, end, n_bins)
            if at < 0:
                return start, nnz, syms, freqs, cums, -1
            f, at = read_varint(buf, at, end, m_tot - 1)
            if at < 0 or (i > 0 and gap == 0):
                return start, nnz, syms, freqs, cums, -1
            sym += gap
            f += 1
            if sym >= n_bins or tot + f > m_tot:
                return start, nnz, syms, freqs, cums, -1
            if n == cap:
                cap *= 2
                syms2, freqs2, cums2 = np.empty(cap, np.int64), np.empty(cap, np.int64), np.empty(cap, np.int64)
                syms2[:n], freqs2[:n], cums2[:n] = syms[:n], freqs[:n], cums[:n]
                syms, freqs, cums = syms2, freqs2, cums2
            syms[n], freqs[n], cums[n] = sym, f, tot
            tot += f
            n += 1
        if k and tot != m_tot:
            return start, nnz, syms, freqs, cums, -1
    start[n_models] = n
    return start, nnz, syms[:n].copy(), freqs[:n].copy(), cums[:n].copy(), at


@kernel
def _parse_compact(raw, n_models, prec, n_bins, n_symbols):
    """Flat tables of a raw compact table: (start, nnz, symbols, freqs, cums, ok)."""
    m_tot = np.int64(1) << prec
    start = np.zeros(n_models + 1, np.int64)
    nnz = np.zeros(n_models, np.int64)
    end = raw.size
    at, total = 0, 0
    for m in range(n_models):
        k, at = read_varint(raw, at, end, min(n_bins, m_tot))
        if at < 0:
            return start, nnz, nnz, nnz, nnz, False
        nnz[m] = k
        start[m] = total
        total += k
        if total > n_symbols:  # every used symbol of every model is coded at least once
            return start, nnz, nnz, nnz, nnz, False
    start[n_models] = total
    syms = np.empty(total, np.int64)
    counts = np.empty(total, np.int64)
    freqs = np.empty(total, np.int64)
    cums = np.empty(total, np.int64)
    for m in range(n_models):
        sym = np.int64(0)
        for i in range(start[m], start[m + 1]):
            gap, at = read_varint(raw, at, end, n_bins)
            if at < 0 or (i > start[m] and gap == 0):
                return start, nnz, nnz, nnz, nnz, False
            sym += gap
            if sym >= n_bins:
                return start, nnz, nnz, nnz, nnz, False
            syms[i] = sym
    if end - at != total:
        return start, nnz, nnz, nnz, nnz, False
    for i in range(total):
        q = np.int64(raw[at + i])
        if q > MAX_CODE:
            return start, nnz, nnz, nnz, nnz, False
        counts[i] = count_of_code(q)
    for m in range(n_models):
        a, e = start[m], start[m + 1]
        if e > a:
            normalize_row(counts[a:e], prec, freqs[a:e])
            c = np.int64(0)
            for i in range(a, e):
                cums[i] = c
                c += freqs[i]
    return start, nnz, syms, freqs, cums, True


class Tables(NamedTuple):
    """Parsed frequency tables (explicit or compact), the first fields of a decoder tuple (:func:`open_decoder`):
    model ``m`` has the used symbols ``syms[start[m]:start[m] + nnz[m]]`` (increasing) with their frequencies ``freqs`` and
    cumulative frequencies ``cums``; ``lut`` is the search table (:func:`lookup`), ``prec`` the precision in
    bits and ``sh = prec - lut bits``."""

    start: np.ndarray
    nnz: np.ndarray
    syms: np.ndarray
    freqs: np.ndarray
    cums: np.ndarray
    lut: np.ndarray
    prec: int
    sh: int


def read_tables(r: Reader, n_models: int, prec: int, n_bins: int, n_symbols: int, what: str,
                compact: bool = True) -> Tables:
    """The :class:`Tables` of ``n_models`` models over ``n_bins`` symbols read from ``r``, for at most ``n_symbols``
    coded symbols; :class:`~xdiffc.errors.CorruptStreamError` naming ``what`` if malformed."""
    if compact:
        # a valid table has at most 3 bytes per model count and 4 per used symbol (<= n_symbols)
        raw = np.frombuffer(inflate(r.take(r.uvarint(r.end)), f"{what}'s frequency tables",
                                    limit=3 * n_models + 4 * n_symbols), np.uint8)
        start, nnz, syms, freqs, cums, ok = _parse_compact(raw, n_models, prec, n_bins, n_symbols)
    else:
        buf = np.frombuffer(r.data, np.uint8)
        start, nnz, syms, freqs, cums, at = _parse_tables(buf, r.pos, r.end, n_models, prec, n_bins)
        ok = at >= 0
        if ok:
            r.pos = at
    if not ok:
        raise CorruptStreamError(f"{what} holds a malformed frequency table")
    lut, sh = lookup(start, nnz, cums, prec, n_symbols)
    return Tables(start, nnz, syms, freqs, cums, lut, prec, sh)


# ----------------------------------------------------------------------------- coding


@kernel
def encode(sym, ctx, dense, freq, prec):
    """rANS words (uint32, in decode order) of ``sym[k]`` under model ``ctx[k]``; ``freq`` [model, d] holds the
    frequency of the symbol whose index among the used symbols is ``d = dense[symbol]``."""
    n = sym.size
    cum = np.empty_like(freq)
    for m in range(freq.shape[0]):
        c = 0
        for d in range(freq.shape[1]):
            cum[m, d] = c
            c += freq[m, d]
    out = np.empty(n // 8 + 16, np.uint32)  # 4 bits a symbol; grown when the symbols need more
    w = 0
    x = L_BOUND
    m_tot = np.int64(1) << prec
    base = (L_BOUND >> prec) << 32
    for k in range(n - 1, -1, -1):
        m = ctx[k]
        d = dense[sym[k]]
        f = freq[m, d]
        if f == m_tot:
            continue
        if x >= base * f:
            if w == out.size:
                out = grown(out, w, 2 * out.size)
            out[w] = np.uint32(x & 0xFFFFFFFF)
            w += 1
            x >>= 32
        q = x // f
        x = (q << prec) + (x - q * f) + cum[m, d]
    if w == 0 and x == L_BOUND:  # every symbol was certain: no words at all
        return np.empty(0, np.uint32)
    res = np.empty(w + 2, np.uint32)
    res[0] = np.uint32(x >> 32)
    res[1] = np.uint32(x & 0xFFFFFFFF)
    for j in range(w):
        res[2 + j] = out[w - 1 - j]
    return res


#: Most bits of the slot that index a model's search table (the decoder's first guess; any size gives
#: the same symbols, a larger one fewer steps).
LUT_BITS = 11
#: At most this many search-table entries in all (int32: they stay in the L2 cache).
_LUT_ENTRIES = 1 << 15


@kernel(inline="always")
def lut_bits(prec, n_models, n_symbols):
    """Search-table bits for ``n_models`` models (those with more than one symbol): at most :data:`LUT_BITS`,
    fewer where the tables would outweigh the ``n_symbols`` symbols to decode."""
    bits = min(LUT_BITS, prec)
    while bits > 4 and n_models << bits > min(max(1 << 12, 2 * n_symbols), _LUT_ENTRIES):
        bits -= 1
    return bits


@kernel
def lookup(start, nnz, cums, prec, n_symbols):
    """The search table of the decoder of ``n_symbols`` symbols and its shift (``prec`` minus its :func:`lut_bits`):
    per model and per top bits of the slot, the last entry whose cum lies at or below the smallest slot with
    those bits (the decoder scans forward from there)."""
    n_models = nnz.size
    searched = 0
    for m in range(n_models):
        searched += nnz[m] > 1
    bits = lut_bits(prec, searched, n_symbols)
    shift = prec - bits
    lut = np.empty((n_models, 1 << bits), np.int32)
    for m in range(n_models):
        a, k = start[m], nnz[m]
        i = a
        for t in range(1 << bits):
            lo = t << shift
            while i + 1 < a + k and cums[i + 1] <= lo:
                i += 1
            lut[m, t] = i
    return lut, shift


#: Positions in a decoder tuple (:func:`open_decoder`): the fields of its :class:`Tables`, then the 32-bit words and
#: the state [x, next word] (int64, updated in place). A plain tuple, not a NamedTuple: numba types a plain tuple as
#: fast as a scalar, a NamedTuple in microseconds, at every call of a kernel.
START, NNZ, SYMS, FREQS, CUMS, LUT, PREC, SH = range(len(Tables._fields))
WORDS, STATE = SH + 1, SH + 2


@kernel(inline="always")
def decode_step(x, wp, dec, m):
    """The next symbol under model ``m`` of the decoder tuple ``dec``, from the state ``x`` with ``words[:wp]``
    read: (symbol, x, wp); symbol -1 on any inconsistency.

    The one copy of the decoding step. A kernel's loop keeps ``x`` and ``wp`` in locals (registers), which
    :func:`decode_one`'s state array would not allow; and ``dec`` comes as one tuple, read in place, whose
    reference counts the compiler then takes and drops at one place each, and so prunes (arrays handed to an
    inlined function one by one, or bound to its locals, keep an atomic increment and decrement per call,
    which made decoding 2.5 times slower)."""
    k = dec[NNZ][m]
    a = dec[START][m]
    if k == 1:
        return dec[SYMS][a], x, wp
    if k == 0:
        return np.int64(-1), x, wp
    slot = x & ((np.int64(1) << dec[PREC]) - 1)
    i = np.int64(dec[LUT][m, slot >> dec[SH]])
    end = a + k
    while i + 1 < end and dec[CUMS][i + 1] <= slot:
        i += 1
    x = dec[FREQS][i] * (x >> dec[PREC]) + slot - dec[CUMS][i]
    if x < L_BOUND:
        if wp >= dec[WORDS].size:
            return np.int64(-1), x, wp
        x = (x << 32) | np.int64(dec[WORDS][wp])
        wp += 1
    return dec[SYMS][i], x, wp


@kernel(inline="always")
def decode_one(dec, m):
    """The next symbol of the decoder tuple ``dec`` under model ``m`` (:func:`decode_step`); -1 on any
    inconsistency."""
    state = dec[STATE]
    s, x, wp = decode_step(state[0], state[1], dec, m)
    if s >= 0:
        state[0], state[1] = x, wp
    return s


def open_decoder(tables: Tables, words: np.ndarray, what: str) -> tuple:
    """The decoder tuple (:data:`START` ... :data:`STATE`) of ``words`` under ``tables``: its state [x, next word]
    from the first two words (no words at all: ``x = L``)."""
    if words.size == 0:
        return (*tables, words, np.array([int(L_BOUND), 0], np.int64))
    if words.size < 2:
        raise CorruptStreamError(f"{what}: the rANS stream is truncated")
    x = (int(words[0]) << 32) | int(words[1])
    if not (int(L_BOUND) <= x < 1 << 63):
        raise CorruptStreamError(f"{what}: the rANS stream is damaged")
    return (*tables, words, np.array([x, 2], np.int64))


def check_end(dec: tuple, what: str) -> None:
    """:class:`~xdiffc.errors.CorruptStreamError` unless the decoder tuple ``dec`` ended as the encoder started,
    every word read."""
    if int(dec[STATE][0]) != int(L_BOUND) or int(dec[STATE][1]) != dec[WORDS].size:
        raise CorruptStreamError(f"{what}: the rANS stream is damaged or holds surplus words")
