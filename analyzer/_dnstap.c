/* dnstap data frames -> the source stage's DNS messages (analyzer.dnstap.walk_py's twin).
 *
 * dnstap_frames(buf, start, servers, max_frame) -> (rows, out, stop_at, why)
 *
 * Walks Frame Streams data frames from ``start`` until a control frame (length 0), a frame
 * longer than ``max_frame``, or the end of ``buf``. Each frame is a protobuf dnstap.Dnstap,
 * read by hand with every read bounds-checked; its row (dnstap.COLUMNS, int64) and, for a
 * frame with a DNS message, a 40-byte address block and the message appended to ``out``.
 * ``servers`` is a list of (identity, version) pairs; new pairs are appended. The rows'
 * hash column differs from the twin's (only equality is used: duplicate folding).
 */
#include "_speedups.h"

#include <string.h>

enum { C_CAT, C_TYPE, C_PROTOCOL, C_L3, C_VERSION, C_SPORT, C_DPORT, C_TS, C_QUERY_TS,
       C_PAYLOAD, C_PAYLOAD_LEN, C_SERVER, C_HASH, C_FLAGS, C_COLUMNS };
enum { QUERY = 1, RESPONSE = 2, CANDIDATE = 3 };  /* fastpath's verdicts */
enum { VARINT_BAD = 20, LENGTH_BAD, WIRE_TYPE_BAD, NOT_A_MESSAGE, UNKNOWN_TYPE, NO_DNS,
       NO_TIME, SHORT_DNS };
enum { FLAG_NO_ADDRESS = 1, FLAG_NO_PROTOCOL = 2, FLAG_BAD_NSEC = 4, FLAG_OTHER_TIME = 8 };
enum { STOP_MORE, STOP_CONTROL, STOP_TOO_LONG };
#define ADDRESS_BLOCK 40
#define MAX_SECONDS ((INT64_C(1) << 62) / 1000000000)

typedef struct { int64_t start, stop; } Span;

typedef struct {
    int has_type, has_family, has_protocol, has_qsec, has_rsec;
    uint64_t type, family, protocol, qport, rport, qsec, rsec;
    uint32_t qnsec, rnsec;
    Span qaddr, raddr, qmsg, rmsg;
} Message;

/* A varint at *i; 0, or the category of what is wrong. */
static inline __attribute__((always_inline)) int varint(const uint8_t *b, int64_t *i, int64_t end, uint64_t *out) {
    if (*i < end && b[*i] < 0x80) {  /* one byte: keys, types, ports below 128 */
        *out = b[(*i)++];
        return 0;
    }
    uint64_t v = 0;
    for (int shift = 0; shift < 70; shift += 7) {
        if (*i >= end)
            return LENGTH_BAD;
        uint8_t c = b[(*i)++];
        if (shift < 64)
            v |= (uint64_t)(c & 0x7F) << shift;
        if (!(c & 0x80)) {
            *out = v;
            return 0;
        }
    }
    return VARINT_BAD;
}

/* The next field at *i: its number, wire type, and value (varint / fixed) or span. */
static inline __attribute__((always_inline)) int next_field(const uint8_t *b, int64_t *i, int64_t end, uint64_t *field,
                             int *wire, uint64_t *value, Span *span) {
    uint64_t key;
    int bad = varint(b, i, end, &key);
    if (bad)
        return bad;
    *field = key >> 3;
    *wire = (int)(key & 7);
    if (*field == 0)
        return WIRE_TYPE_BAD;
    switch (*wire) {
    case 0:
        return varint(b, i, end, value);
    case 2: {
        uint64_t size;
        if ((bad = varint(b, i, end, &size)))
            return bad;
        if (size > (uint64_t)(end - *i))
            return LENGTH_BAD;
        span->start = *i;
        span->stop = *i + (int64_t)size;
        *i = span->stop;
        return 0;
    }
    case 5:
        if (*i + 4 > end)
            return LENGTH_BAD;
        *value = (uint64_t)b[*i] | (uint64_t)b[*i + 1] << 8 | (uint64_t)b[*i + 2] << 16 |
                 (uint64_t)b[*i + 3] << 24;
        *i += 4;
        return 0;
    case 1:
        if (*i + 8 > end)
            return LENGTH_BAD;
        *value = 0;
        for (int k = 7; k >= 0; k--)
            *value = *value << 8 | b[*i + k];
        *i += 8;
        return 0;
    }
    return WIRE_TYPE_BAD;
}

static int decode_message(const uint8_t *b, int64_t i, int64_t end, Message *m) {
    while (i < end) {
        uint64_t field, value = 0;
        int wire;
        Span s = {0, 0};
        int bad = next_field(b, &i, end, &field, &wire, &value, &s);
        if (bad)
            return bad;
        if (wire == 0) {
            switch (field) {
            case 1: m->type = value, m->has_type = 1; break;
            case 2: m->family = value, m->has_family = 1; break;
            case 3: m->protocol = value, m->has_protocol = 1; break;
            case 6: m->qport = value; break;
            case 7: m->rport = value; break;
            case 8: m->qsec = value, m->has_qsec = 1; break;
            case 12: m->rsec = value, m->has_rsec = 1; break;
            }
        } else if (wire == 2) {
            switch (field) {
            case 4: m->qaddr = s; break;
            case 5: m->raddr = s; break;
            case 10: m->qmsg = s; break;
            case 14: m->rmsg = s; break;
            }
        } else if (wire == 5) {
            if (field == 9)
                m->qnsec = (uint32_t)value;
            else if (field == 13)
                m->rnsec = (uint32_t)value;
        }
    }
    return 0;
}

/* One Dnstap frame: the Message (merged over repeats), identity and version spans. */
static int decode_dnstap(const uint8_t *b, int64_t i, int64_t end, Message *m, Span *identity,
                         Span *version) {
    int seen_message = 0, has_type = 0;
    uint64_t dnstap_type = 0;
    memset(m, 0, sizeof(*m));
    m->qaddr.start = m->raddr.start = m->qmsg.start = m->rmsg.start = -1;
    identity->start = version->start = -1;
    while (i < end) {
        uint64_t field, value = 0;
        int wire;
        Span s = {0, 0};
        int bad = next_field(b, &i, end, &field, &wire, &value, &s);
        if (bad)
            return bad;
        if (field == 1 && wire == 2) {
            *identity = s;
        } else if (field == 2 && wire == 2) {
            *version = s;
        } else if (field == 15 && wire == 0) {
            dnstap_type = value, has_type = 1;
        } else if (field == 14 && wire == 2) {
            seen_message = 1;
            if ((bad = decode_message(b, s.start, s.stop, m)))
                return bad;
        }
    }
    if (!seen_message || (has_type && dnstap_type != 1))
        return NOT_A_MESSAGE;
    return 0;
}

static inline int same_bytes(PyObject *obj, const uint8_t *b, Span s) {
    if (s.start < 0)
        return obj == Py_None;
    return obj != Py_None && PyBytes_GET_SIZE(obj) == s.stop - s.start &&
           memcmp(PyBytes_AS_STRING(obj), b + s.start, (size_t)(s.stop - s.start)) == 0;
}

static PyObject *span_bytes(const uint8_t *b, Span s) {
    if (s.start < 0)
        Py_RETURN_NONE;
    return PyBytes_FromStringAndSize((const char *)b + s.start, s.stop - s.start);
}

/* The index of (identity, version) in ``servers``, appending it if new; -1 on error. */
static Py_ssize_t server_of(PyObject *servers, const uint8_t *b, Span identity, Span version,
                            Py_ssize_t *last) {
    Py_ssize_t count = PyList_GET_SIZE(servers);
    for (Py_ssize_t k = -1; k < count; k++) {
        Py_ssize_t at = k < 0 ? *last : k;  /* the last match first: usually one server */
        if (at < 0 || at >= count)
            continue;
        PyObject *pair = PyList_GET_ITEM(servers, at);
        if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2)
            continue;
        if (same_bytes(PyTuple_GET_ITEM(pair, 0), b, identity) &&
            same_bytes(PyTuple_GET_ITEM(pair, 1), b, version))
            return *last = at;
    }
    PyObject *id = span_bytes(b, identity), *ver = span_bytes(b, version), *pair = NULL;
    if (id != NULL && ver != NULL)
        pair = PyTuple_Pack(2, id, ver);
    Py_XDECREF(id);
    Py_XDECREF(ver);
    if (pair == NULL || PyList_Append(servers, pair) < 0) {
        Py_XDECREF(pair);
        return -1;
    }
    Py_DECREF(pair);
    return *last = count;
}

static inline int64_t nanos(uint64_t sec, uint32_t nsec, int64_t *flags) {
    if (nsec >= 1000000000u) {
        nsec = 0;
        *flags |= FLAG_BAD_NSEC;
    }
    if (sec > (uint64_t)MAX_SECONDS)
        return -1;
    return (int64_t)sec * 1000000000 + nsec;
}

/* The key of duplicate folding: 8 bytes at a time, multiply and rotate, then the tail.
 * Not for adversaries (a collision folds two messages into one count): 64 bits. */
static inline uint64_t mix_bytes(uint64_t h, const uint8_t *p, int64_t n) {
    int64_t k = 0;
    for (; k + 8 <= n; k += 8) {
        uint64_t w;
        memcpy(&w, p + k, 8);
        h = (h ^ w) * UINT64_C(0x9E3779B97F4A7C15);
        h = (h << 29) | (h >> 35);
    }
    uint64_t tail = (uint64_t)(n - k) << 56;
    for (int s = 0; k < n; k++, s += 8)
        tail |= (uint64_t)p[k] << s;
    h = (h ^ tail) * UINT64_C(0x9E3779B97F4A7C15);
    return h ^ (h >> 32);
}

/* ``00 29`` after the header and ``00 0f`` 10+ bytes after it (message.may_hold_ede):
 * memchr finds the candidates' second bytes, many at a time. */
static inline int64_t find_pair(const uint8_t *m, int64_t from, int64_t n, uint8_t second) {
    for (int64_t p = from + 1; p < n;) {
        const uint8_t *hit = memchr(m + p, second, (size_t)(n - p));
        if (hit == NULL)
            return -1;
        p = hit - m;
        if (m[p - 1] == 0)
            return p - 1;
        p++;
    }
    return -1;
}

static inline int may_hold_ede_msg(const uint8_t *m, int64_t n) {
    int64_t opt = find_pair(m, 12, n, 0x29);
    return opt >= 0 && find_pair(m, opt + 10, n, 0x0F) >= 0;
}

/* Fill ``row`` for the frame b[start:end]; append its block and message at *out_len. */
static int frame_row(const uint8_t *b, int64_t start, int64_t end, PyObject *servers,
                     Py_ssize_t *last, uint8_t *out, int64_t *out_len, int64_t *row) {
    Message m;
    Span identity, version;
    for (int k = 0; k < C_COLUMNS; k++)
        row[k] = 0;
    row[C_L3] = row[C_PAYLOAD] = row[C_SERVER] = row[C_QUERY_TS] = -1;
    int bad = decode_dnstap(b, start, end, &m, &identity, &version);
    if (bad) {
        row[C_CAT] = bad;
        return 0;
    }
    uint64_t kind = m.has_type ? m.type : 0;
    row[C_TYPE] = (int64_t)(kind > 1000 ? 1000 : kind);  /* as read, capped: it is data */
    if (kind < 1 || kind > 14) {
        row[C_CAT] = UNKNOWN_TYPE;
        return 0;
    }
    int response = kind % 2 == 0;
    Py_ssize_t server = server_of(servers, b, identity, version, last);
    if (server < 0)
        return -1;
    row[C_SERVER] = server;
    Span dns = response ? m.rmsg : m.qmsg;
    if (dns.start < 0) {
        row[C_CAT] = NO_DNS;
        return 0;
    }
    int64_t flags = 0;
    int64_t query_ts = m.has_qsec ? nanos(m.qsec, m.qnsec, &flags) : -1;
    int64_t response_ts = m.has_rsec ? nanos(m.rsec, m.rnsec, &flags) : -1;
    int64_t ts = response ? response_ts : query_ts;
    if (ts < 0) {
        ts = response ? query_ts : response_ts;
        flags |= FLAG_OTHER_TIME;
    }
    if (ts < 0) {
        row[C_CAT] = NO_TIME;
        return 0;
    }
    uint64_t protocol = m.has_protocol ? m.protocol : 0;
    if (protocol == 0)
        flags |= FLAG_NO_PROTOCOL;
    int64_t qlen = m.qaddr.start < 0 ? 0 : m.qaddr.stop - m.qaddr.start;
    int64_t rlen = m.raddr.start < 0 ? 0 : m.raddr.stop - m.raddr.start;
    int width = !m.has_family || (m.family != 1 && m.family != 2)
                    ? ((qlen == 16 || rlen == 16) ? 16 : 4)
                    : (m.family == 2 ? 16 : 4);
    uint8_t *block = out + *out_len;
    memset(block, 0, ADDRESS_BLOCK);
    int at_src = width == 4 ? 12 : 8, at_dst = width == 4 ? 16 : 24;
    Span src = response ? m.raddr : m.qaddr, dst = response ? m.qaddr : m.raddr;
    if (src.start >= 0 && src.stop - src.start == width)
        memcpy(block + at_src, b + src.start, (size_t)width);
    else
        flags |= FLAG_NO_ADDRESS;
    if (dst.start >= 0 && dst.stop - dst.start == width)
        memcpy(block + at_dst, b + dst.start, (size_t)width);
    else
        flags |= FLAG_NO_ADDRESS;
    int64_t qport = (int64_t)(m.qport & 0xFFFF), rport = (int64_t)(m.rport & 0xFFFF);
    int64_t sport = response ? rport : qport, dport = response ? qport : rport;
    int64_t size = dns.stop - dns.start;
    row[C_L3] = *out_len;
    row[C_PAYLOAD] = *out_len + ADDRESS_BLOCK;
    memcpy(out + row[C_PAYLOAD], b + dns.start, (size_t)size);
    *out_len += ADDRESS_BLOCK + size;
    row[C_PAYLOAD_LEN] = size;
    row[C_VERSION] = width == 16 ? 6 : 4;
    row[C_PROTOCOL] = (int64_t)(protocol > 1000 ? 1000 : protocol);
    row[C_SPORT] = sport;
    row[C_DPORT] = dport;
    row[C_TS] = ts;
    row[C_QUERY_TS] = query_ts;
    row[C_FLAGS] = flags;
    uint8_t head[24];
    memcpy(head, &kind, 8);
    memcpy(head + 8, &protocol, 8);
    uint16_t ports[2] = {(uint16_t)sport, (uint16_t)dport};
    memcpy(head + 16, ports, 4);
    memset(head + 20, 0, 4);
    uint64_t h = mix_bytes(UINT64_C(0xcbf29ce484222325), head, 24);
    h = mix_bytes(h, block, ADDRESS_BLOCK);
    h = mix_bytes(h, b + dns.start, size);
    h ^= h >> 33;
    h *= UINT64_C(0xff51afd7ed558ccd);
    h ^= h >> 33;
    row[C_HASH] = (int64_t)h;
    const uint8_t *msg = b + dns.start;
    if (size < 12)
        row[C_CAT] = SHORT_DNS;
    else if (!(msg[2] & 0x80))
        row[C_CAT] = QUERY;
    else if ((msg[10] || msg[11]) && may_hold_ede_msg(msg, size))
        row[C_CAT] = CANDIDATE;
    else
        row[C_CAT] = RESPONSE;
    return 0;
}

PyObject *dnstap_frames(PyObject *self, PyObject *args) {
    Py_buffer view;
    Py_ssize_t start, max_frame;
    PyObject *servers;
    if (!PyArg_ParseTuple(args, "y*nO!n", &view, &start, &PyList_Type, &servers, &max_frame))
        return NULL;
    const uint8_t *b = view.buf;
    const int64_t n = view.len;
    PyObject *rows = NULL, *out = NULL, *result = NULL;
    if (start < 0 || start > n || max_frame < 0) {
        PyErr_SetString(PyExc_ValueError, "start or max_frame out of range");
        goto done;
    }
    /* Count the whole frames first, so that both outputs are allocated at their size:
     * a guess from the worst case (a 5-byte frame) costs more than the walk. */
    int64_t frames = 0, message_bytes = 0;
    for (int64_t at = start; at + 4 <= n;) {
        uint64_t length = (uint64_t)b[at] << 24 | (uint64_t)b[at + 1] << 16 |
                          (uint64_t)b[at + 2] << 8 | b[at + 3];
        if (length == 0 || length > (uint64_t)max_frame || at + 4 + (int64_t)length > n)
            break;
        frames++;
        message_bytes += (int64_t)length;  /* a message is shorter than its frame */
        at += 4 + (int64_t)length;
    }
    rows = PyBytes_FromStringAndSize(NULL, frames * C_COLUMNS * (Py_ssize_t)sizeof(int64_t));
    out = PyBytes_FromStringAndSize(NULL, message_bytes + frames * ADDRESS_BLOCK);
    if (rows == NULL || out == NULL)
        goto done;
    int64_t *row = (int64_t *)PyBytes_AS_STRING(rows);
    uint8_t *o = (uint8_t *)PyBytes_AS_STRING(out);
    int64_t pos = start, count = 0, out_len = 0;
    int why = STOP_MORE;
    Py_ssize_t last = -1;
    while (pos + 4 <= n) {
        uint64_t length = (uint64_t)b[pos] << 24 | (uint64_t)b[pos + 1] << 16 |
                          (uint64_t)b[pos + 2] << 8 | b[pos + 3];
        if (length == 0) {
            why = STOP_CONTROL;
            break;
        }
        if (length > (uint64_t)max_frame) {
            why = STOP_TOO_LONG;
            break;
        }
        if (pos + 4 + (int64_t)length > n)
            break;
        if (frame_row(b, pos + 4, pos + 4 + (int64_t)length, servers, &last, o, &out_len,
                      row + count * C_COLUMNS) < 0)
            goto done;
        count++;
        pos += 4 + (int64_t)length;
    }
    if (_PyBytes_Resize(&rows, count * C_COLUMNS * (Py_ssize_t)sizeof(int64_t)) < 0 ||
        _PyBytes_Resize(&out, out_len) < 0)
        goto done;
    result = Py_BuildValue("(OOLi)", rows, out, (long long)pos, why);
done:
    Py_XDECREF(rows);
    Py_XDECREF(out);
    PyBuffer_Release(&view);
    return result;
}
