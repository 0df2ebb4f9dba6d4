/* DNS-over-TCP stream reassembly for analyzer._speedups: the twin of
 * reassembly.TcpReassembler (see the comment below and analyzer/_speedups.c).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#include "_speedups.h"

/* ---- DNS-over-TCP stream reassembly: the twin of reassembly.TcpReassembler ----------------
 *
 * Every method mirrors its Python twin line by line (same state, same order of effects,
 * same counters), so the two can be compared on any sequence of segments. Streams live in a
 * dict (key tuple -> capsule) for lookup and in a doubly linked list, oldest first, for
 * expiry and eviction, as the Python OrderedDict does.
 */

#define M32 0xFFFFFFFFu

typedef struct {
    uint32_t seq;
    PyObject *data; /* bytes */
    PyObject *cb;   /* the segment's on_message */
} Held;

typedef struct Stream {
    struct Stream *prev, *next;
    PyObject *key;
    uint32_t next_seq;
    int synced, qr; /* qr: -1 when unknown */
    int alive;      /* in the table */
    int64_t last_ts, gap_since;
    Py_ssize_t held;
    uint8_t *buf;
    Py_ssize_t len, cap;
    Held *ooo; /* insertion order, as a dict keeps it */
    int n_ooo, cap_ooo;
} Stream;

typedef struct {
    PyObject_HEAD
    PyObject *streams; /* dict: key -> capsule(Stream *) */
    Stream *oldest, *newest;
    PyObject *evicted; /* collections.Counter */
    Py_ssize_t bytes;
    int64_t expired_at;
    Py_ssize_t max_streams, max_bytes, max_buffer, max_ooo;
    int64_t idle_ns, gap_ns, far;
} TcpStreams;

static PyObject *S_NO_PAYLOAD, *S_RETRANSMISSION, *S_SEGMENT, *S_OUT_OF_ORDER, *S_UNSYNCED;

static void stream_free(Stream *s) {
    for (int i = 0; i < s->n_ooo; i++) {
        Py_DECREF(s->ooo[i].data);
        Py_DECREF(s->ooo[i].cb);
    }
    PyMem_Free(s->ooo);
    PyMem_Free(s->buf);
    Py_XDECREF(s->key);
    PyMem_Free(s);
}

static void list_unlink(TcpStreams *t, Stream *s) {
    if (s->prev) s->prev->next = s->next; else t->oldest = s->next;
    if (s->next) s->next->prev = s->prev; else t->newest = s->prev;
    s->prev = s->next = NULL;
}

static void list_append(TcpStreams *t, Stream *s) {
    s->prev = t->newest;
    s->next = NULL;
    if (t->newest) t->newest->next = s; else t->oldest = s;
    t->newest = s;
}

/* The reasons counted in ``evicted``, interned once: expiry alone counts ~45k times per
 * million packets of generated traffic. */
static PyObject *R_OVERFLOW, *R_GAPS, *R_EXPIRED, *R_IDLE, *R_EVICTED, *R_RESTARTED, *_one;

static int count(TcpStreams *t, PyObject *reason) {
    PyObject *was = PyObject_GetItem(t->evicted, reason);
    if (was == NULL) return -1;
    PyObject *now = PyNumber_Add(was, _one);
    Py_DECREF(was);
    int rc = now == NULL ? -1 : PyObject_SetItem(t->evicted, reason, now);
    Py_XDECREF(now);
    return rc;
}

static Stream *lookup(TcpStreams *t, PyObject *key) {
    PyObject *cap = PyDict_GetItemWithError(t->streams, key);
    return cap == NULL ? NULL : (Stream *)PyCapsule_GetPointer(cap, NULL);
}

/* Take ``s`` out of the table (the caller frees it, or keeps using it first). */
static int detach(TcpStreams *t, Stream *s) {
    if (!s->alive) return 0;
    s->alive = 0;
    list_unlink(t, s);
    t->bytes -= s->held;
    return PyDict_DelItem(t->streams, s->key);
}

static int pending_bytes(Stream *s, Py_ssize_t *out) {
    Py_ssize_t n = 0;
    for (int i = 0; i < s->n_ooo; i++) n += PyBytes_GET_SIZE(s->ooo[i].data);
    *out = n;
    return 0;
}

static int buf_append(Stream *s, const char *data, Py_ssize_t n) {
    if (s->len + n > s->cap) {
        Py_ssize_t cap = s->cap ? s->cap : 256;
        while (cap < s->len + n) cap *= 2;
        uint8_t *grown = PyMem_Realloc(s->buf, cap);
        if (grown == NULL) { PyErr_NoMemory(); return -1; }
        s->buf = grown;
        s->cap = cap;
    }
    memcpy(s->buf + s->len, data, n);
    s->len += n;
    return 0;
}

static int ooo_find(Stream *s, uint32_t seq) {
    for (int i = 0; i < s->n_ooo; i++)
        if (s->ooo[i].seq == seq) return i;
    return -1;
}

/* dict.setdefault(seq, (data, cb)): kept as it is when ``seq`` is held already. */
static int ooo_setdefault(Stream *s, uint32_t seq, PyObject *data, PyObject *cb) {
    if (ooo_find(s, seq) >= 0) return 0;
    if (s->n_ooo == s->cap_ooo) {
        int cap = s->cap_ooo ? s->cap_ooo * 2 : 4;
        Held *grown = PyMem_Realloc(s->ooo, cap * sizeof(Held));
        if (grown == NULL) { PyErr_NoMemory(); return -1; }
        s->ooo = grown;
        s->cap_ooo = cap;
    }
    Py_INCREF(data);
    Py_INCREF(cb);
    s->ooo[s->n_ooo++] = (Held){seq, data, cb};
    return 0;
}

/* dict.pop(seq): the held entry moves to ``*out`` (owned references). */
static void ooo_pop_at(Stream *s, int i, Held *out) {
    *out = s->ooo[i];
    memmove(s->ooo + i, s->ooo + i + 1, (s->n_ooo - i - 1) * sizeof(Held));
    s->n_ooo--;
}

static int looks_framed(const uint8_t *d, Py_ssize_t n, int qr) {
    if (n < 2) return 0;
    unsigned size = (d[0] << 8) | d[1];
    if (size < 17) return 0;
    if (n >= 8) {
        unsigned qdcount = (d[6] << 8) | d[7], opcode = (d[4] >> 3) & 0xF;
        if (qdcount != 1 || (opcode != 0 && opcode != 4 && opcode != 5)) return 0;
        if (qr >= 0 && (d[4] >> 7) != qr) return 0;
    }
    return 1;
}

static PyObject *flush_gap(TcpStreams *t, Stream *s);

/* Returns a new reference to the category, or NULL with an exception. */
static PyObject *deliver(TcpStreams *t, Stream *s, PyObject *on_message) {
    PyObject *category = Py_NewRef(S_SEGMENT);
    Py_ssize_t pos = 0;
    while (s->len - pos >= 2) {
        Py_ssize_t size = (s->buf[pos] << 8) | s->buf[pos + 1];
        if (s->len - pos - 2 < size) break;
        PyObject *msg = PyBytes_FromStringAndSize((const char *)s->buf + pos + 2, size);
        if (msg == NULL) { Py_DECREF(category); return NULL; }
        PyObject *got = PyObject_CallOneArg(on_message, msg);
        Py_DECREF(msg);
        if (got == NULL) { Py_DECREF(category); return NULL; }
        Py_SETREF(category, got);
        pos += 2 + size;
    }
    if (pos) {
        memmove(s->buf, s->buf + pos, s->len - pos);
        s->len -= pos;
    }
    if (s->len > t->max_buffer) { /* cannot happen with honest framing */
        if (count(t, R_OVERFLOW) < 0) { Py_DECREF(category); return NULL; }
        s->len = 0;
        s->synced = 0;
    }
    return category;
}

static PyObject *append(TcpStreams *t, Stream *s, const char *data, Py_ssize_t n,
                        PyObject *on_message) {
    if (!s->synced) {
        if (!looks_framed((const uint8_t *)data, n, s->qr)) {
            s->next_seq = (s->next_seq + (uint32_t)n) & M32;
            return Py_NewRef(S_UNSYNCED);
        }
        s->synced = 1;
    }
    if (buf_append(s, data, n) < 0) return NULL;
    s->next_seq = (s->next_seq + (uint32_t)n) & M32;
    PyObject *category = deliver(t, s, on_message);
    if (category == NULL) return NULL;
    while (s->n_ooo) {
        int at = ooo_find(s, s->next_seq);
        if (at < 0) {
            /* Held segments that start before next_seq overlap what we have: trim them. */
            int early = 0;
            for (int i = 0; i < s->n_ooo; i++)
                if (((s->ooo[i].seq - s->next_seq) & M32) >= 0x80000000u) early++;
            if (!early) break;
            uint32_t *seqs = PyMem_Malloc(early * sizeof(uint32_t));
            if (seqs == NULL) { Py_DECREF(category); PyErr_NoMemory(); return NULL; }
            for (int i = 0, k = 0; i < s->n_ooo; i++)
                if (((s->ooo[i].seq - s->next_seq) & M32) >= 0x80000000u) seqs[k++] = s->ooo[i].seq;
            for (int k = 0; k < early; k++) {
                Held h;
                ooo_pop_at(s, ooo_find(s, seqs[k]), &h);
                uint32_t cut = (s->next_seq - h.seq) & M32;
                int rc = 0;
                if ((Py_ssize_t)cut < PyBytes_GET_SIZE(h.data)) {
                    PyObject *part = PyBytes_FromStringAndSize(
                        PyBytes_AS_STRING(h.data) + cut, PyBytes_GET_SIZE(h.data) - cut);
                    rc = part == NULL ? -1 : ooo_setdefault(s, s->next_seq, part, h.cb);
                    Py_XDECREF(part);
                }
                Py_DECREF(h.data);
                Py_DECREF(h.cb);
                if (rc < 0) { PyMem_Free(seqs); Py_DECREF(category); return NULL; }
            }
            PyMem_Free(seqs);
            continue;
        }
        Held h;
        ooo_pop_at(s, at, &h);
        int rc = buf_append(s, PyBytes_AS_STRING(h.data), PyBytes_GET_SIZE(h.data));
        if (rc == 0) s->next_seq = (s->next_seq + (uint32_t)PyBytes_GET_SIZE(h.data)) & M32;
        Py_DECREF(h.data);
        Py_DECREF(h.cb);
        if (rc < 0) { Py_DECREF(category); return NULL; }
        /* Messages completed now were completed by the segment that filled the gap. */
        Py_SETREF(category, deliver(t, s, on_message));
        if (category == NULL) return NULL;
    }
    return category;
}

static PyObject *flush_gap(TcpStreams *t, Stream *s) {
    PyObject *category = Py_NewRef(S_OUT_OF_ORDER);
    while (s->n_ooo) {
        if (count(t, R_GAPS) < 0) { Py_DECREF(category); return NULL; }
        int first = 0;
        for (int i = 1; i < s->n_ooo; i++)
            if (((s->ooo[i].seq - s->next_seq) & M32) < ((s->ooo[first].seq - s->next_seq) & M32))
                first = i;
        s->len = 0;
        s->synced = 0;
        s->next_seq = s->ooo[first].seq;
        Held h;
        ooo_pop_at(s, first, &h);
        PyObject *result = append(t, s, PyBytes_AS_STRING(h.data), PyBytes_GET_SIZE(h.data), h.cb);
        Py_DECREF(h.data);
        Py_DECREF(h.cb);
        if (result == NULL) { Py_DECREF(category); return NULL; }
        int keep = PyUnicode_Compare(result, S_UNSYNCED) != 0 &&
                   PyUnicode_Compare(result, S_SEGMENT) != 0;
        if (keep) Py_SETREF(category, result); else Py_DECREF(result);
    }
    return category;
}

/* Drop ``s`` for good: out of the table, held data delivered when asked, then freed. */
static int drop_stream(TcpStreams *t, Stream *s, int flush) {
    if (detach(t, s) < 0) return -1;
    if (flush && s->n_ooo) {
        PyObject *r = flush_gap(t, s);
        if (r == NULL) { stream_free(s); return -1; }
        Py_DECREF(r);
    }
    stream_free(s);
    return 0;
}

static int touch(TcpStreams *t, Stream *s, int64_t ts) {
    s->last_ts = ts;
    list_unlink(t, s);
    list_append(t, s);
    if (ts - t->expired_at < 1000000000LL) return 0;
    t->expired_at = ts;
    while (t->oldest) {
        Stream *old = t->oldest;
        if (ts - old->last_ts <= t->idle_ns) break;
        /* nothing held: a connection closed or reset the other way, or left open, lost
         * nothing; a partial message or held segments were lost (reassembly.py) */
        PyObject *reason = (old->len > 0 || old->n_ooo > 0) ? R_EXPIRED : R_IDLE;
        if (drop_stream(t, old, 1) < 0) return -1;
        if (count(t, reason) < 0) return -1;
    }
    return 0;
}

static Stream *new_stream(TcpStreams *t, PyObject *key, uint32_t next_seq, int synced) {
    Stream *same = lookup(t, key);
    if (same == NULL && PyErr_Occurred()) return NULL;
    if (same != NULL && drop_stream(t, same, 0) < 0) return NULL;
    if (PyDict_GET_SIZE(t->streams) >= t->max_streams && t->oldest) {
        if (drop_stream(t, t->oldest, 0) < 0) return NULL;
        if (count(t, R_EVICTED) < 0) return NULL;
    }
    Stream *s = PyMem_Calloc(1, sizeof(Stream));
    if (s == NULL) { PyErr_NoMemory(); return NULL; }
    s->key = Py_NewRef(key);
    s->next_seq = next_seq;
    s->synced = synced;
    s->qr = -1;
    PyObject *cap = PyCapsule_New(s, NULL, NULL);
    if (cap == NULL || PyDict_SetItem(t->streams, key, cap) < 0) {
        Py_XDECREF(cap);
        stream_free(s);
        return NULL;
    }
    Py_DECREF(cap);
    s->alive = 1;
    list_append(t, s);
    return s;
}

static int account(TcpStreams *t, Stream *s) {
    Py_ssize_t pend;
    pending_bytes(s, &pend);
    Py_ssize_t held = s->len + pend;
    t->bytes += held - s->held;
    s->held = held;
    while (t->bytes > t->max_bytes && t->oldest) {
        Stream *old = t->oldest;
        int current = old == s;
        if (detach(t, old) < 0) return -1;
        if (!current) stream_free(old); /* the caller still holds the current stream */
        if (count(t, R_EVICTED) < 0) return -1;
    }
    return 0;
}

static PyObject *add(TcpStreams *t, Stream *s, uint32_t seq, PyObject *data_obj, const char *data,
                     Py_ssize_t n, PyObject *on_message, int64_t ts) {
    uint32_t ahead = (seq - s->next_seq) & M32;
    uint64_t back = 0x100000000ULL - ahead;
    uint64_t dist = ahead < back ? ahead : back;
    if ((int64_t)dist > t->far && looks_framed((const uint8_t *)data, n, s->qr)) {
        /* A new connection on the same ports whose SYN was not captured: start over. */
        if (s->n_ooo) {
            PyObject *r = flush_gap(t, s);
            if (r == NULL) return NULL;
            Py_DECREF(r);
        }
        s->len = 0;
        s->next_seq = seq;
        s->synced = 1;
        if (count(t, R_RESTARTED) < 0) return NULL;
        return append(t, s, data, n, on_message);
    }
    PyObject *trimmed = NULL;
    if (ahead >= 0x80000000u) { /* retransmission or overlap */
        uint64_t behind = back;
        if (behind >= (uint64_t)n) return Py_NewRef(S_RETRANSMISSION);
        data += behind;
        n -= (Py_ssize_t)behind;
        ahead = 0;
    }
    if (ahead) {
        if (!s->n_ooo) s->gap_since = ts;
        if (data_obj == NULL || PyBytes_GET_SIZE(data_obj) != n) {
            trimmed = PyBytes_FromStringAndSize(data, n);
            if (trimmed == NULL) return NULL;
            data_obj = trimmed;
        }
        int rc = ooo_setdefault(s, seq, data_obj, on_message);
        Py_XDECREF(trimmed);
        if (rc < 0) return NULL;
        Py_ssize_t pend;
        pending_bytes(s, &pend);
        if (s->n_ooo < t->max_ooo && pend <= t->max_buffer) return Py_NewRef(S_OUT_OF_ORDER);
        return flush_gap(t, s);
    }
    return append(t, s, data, n, on_message);
}

/* A TcpStreams made without __init__ (or cleared by the collector) has no table. */
static int not_ready(TcpStreams *t) {
    if (t->streams != NULL && t->evicted != NULL) return 0;
    PyErr_SetString(PyExc_RuntimeError, "TcpStreams is not initialised");
    return 1;
}

static PyObject *TcpStreams_control(TcpStreams *t, PyObject *args) {
    PyObject *key;
    unsigned long long seq;
    int flags;
    long long ts = 0;
    if (not_ready(t) || !PyArg_ParseTuple(args, "OKi|L", &key, &seq, &flags, &ts)) return NULL;
    if (flags & 0x02) {
        Stream *s = new_stream(t, key, (uint32_t)((seq + 1) & M32), 1);
        if (s == NULL || touch(t, s, ts) < 0) return NULL;
    } else if (flags & 0x05) {
        Stream *s = lookup(t, key);
        if (s == NULL && PyErr_Occurred()) return NULL;
        if (s != NULL && drop_stream(t, s, 1) < 0) return NULL;
    }
    return Py_NewRef(S_NO_PAYLOAD);
}

static PyObject *TcpStreams_feed(TcpStreams *t, PyObject *args) {
    PyObject *key, *data_obj, *on_message, *qr_obj = Py_None;
    unsigned long long seq_in;
    int flags;
    long long ts = 0;
    if (not_ready(t) || !PyArg_ParseTuple(args, "OKiSO|OL", &key, &seq_in, &flags, &data_obj,
                                          &on_message, &qr_obj, &ts))
        return NULL;
    int qr = qr_obj == Py_None ? -1 : PyObject_IsTrue(qr_obj);
    if (qr_obj != Py_None && PyErr_Occurred()) return NULL;
    uint32_t seq = (uint32_t)(seq_in & M32);
    const char *data = PyBytes_AS_STRING(data_obj);
    Py_ssize_t n = PyBytes_GET_SIZE(data_obj);
    int syn = flags & 0x02, fin = flags & 0x01, rst = flags & 0x04;
    Stream *s = lookup(t, key);
    if (s == NULL && PyErr_Occurred()) return NULL;
    if (syn) {
        s = new_stream(t, key, (seq + 1) & M32, 1);
        if (s == NULL) return NULL;
        s->qr = qr;
        if (touch(t, s, ts) < 0) return NULL;
        if (!n) return Py_NewRef(S_NO_PAYLOAD);
        seq = (seq + 1) & M32;
    }
    if (!n) {
        if ((fin || rst) && s != NULL && drop_stream(t, s, 1) < 0) return NULL;
        return Py_NewRef(S_NO_PAYLOAD);
    }
    if (s == NULL) {
        /* Captured mid-stream: trust the segment only if it looks like a message start. */
        s = new_stream(t, key, seq, looks_framed((const uint8_t *)data, n, qr));
        if (s == NULL) return NULL;
        s->qr = qr;
        if (touch(t, s, ts) < 0) return NULL;
        if (!s->synced) {
            s->next_seq = (seq + (uint32_t)n) & M32;
            return Py_NewRef(S_UNSYNCED);
        }
    } else if (touch(t, s, ts) < 0) {
        return NULL;
    }
    if (s->n_ooo && ts - s->gap_since > t->gap_ns) {
        PyObject *r = flush_gap(t, s); /* the missing data is not coming: resume after it */
        if (r == NULL) return NULL;
        Py_DECREF(r);
    }
    PyObject *category = add(t, s, seq, data_obj, data, n, on_message, ts);
    if (category == NULL) return NULL;
    if (fin || rst) {
        if (s->n_ooo) {
            PyObject *r = flush_gap(t, s);
            if (r == NULL) { Py_DECREF(category); return NULL; }
            Py_DECREF(r);
        }
        if (s->alive) {
            if (drop_stream(t, s, 0) < 0) { Py_DECREF(category); return NULL; }
        } else {
            stream_free(s);
        }
    } else if (s->alive) {
        if (account(t, s) < 0) { Py_DECREF(category); return NULL; }
        if (!s->alive) stream_free(s); /* the budget evicted this stream too */
    } else {
        stream_free(s);
    }
    return category;
}

static PyObject *TcpStreams_flush(TcpStreams *t, PyObject *unused) {
    /* At the end of a capture, deliver what held segments still hold; forget everything. */
    if (not_ready(t)) return NULL;
    for (Stream *s = t->oldest; s != NULL; s = s->next) {
        if (s->n_ooo) {
            PyObject *r = flush_gap(t, s);
            if (r == NULL) return NULL;
            Py_DECREF(r);
        }
    }
    while (t->oldest) {
        Stream *s = t->oldest;
        list_unlink(t, s);
        s->alive = 0;
        stream_free(s);
    }
    PyDict_Clear(t->streams);
    t->bytes = 0;
    Py_RETURN_NONE;
}

static Py_ssize_t TcpStreams_len(TcpStreams *t) {
    return not_ready(t) ? -1 : PyDict_GET_SIZE(t->streams);
}

static PyObject *TcpStreams_stream_sizes(TcpStreams *t, PyObject *unused) {
    PyObject *out = not_ready(t) ? NULL : PyList_New(0);
    for (Stream *s = t->oldest; out != NULL && s != NULL; s = s->next) {
        Py_ssize_t pend;
        pending_bytes(s, &pend);
        PyObject *n = PyLong_FromSsize_t(s->len + pend);
        if (n == NULL || PyList_Append(out, n) < 0) Py_CLEAR(out);
        Py_XDECREF(n);
    }
    return out;
}

static PyObject *TcpStreams_bytes(TcpStreams *t, void *closure) {
    return PyLong_FromSsize_t(t->bytes);
}

static int TcpStreams_init(TcpStreams *t, PyObject *args, PyObject *kwds) {
    static char *names[] = {"evicted", "max_streams", "max_bytes", "max_buffer", "max_ooo",
                            "idle_ns", "gap_ns", "far", NULL};
    PyObject *evicted;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OnnnnLLL", names, &evicted, &t->max_streams,
                                     &t->max_bytes, &t->max_buffer, &t->max_ooo, &t->idle_ns,
                                     &t->gap_ns, &t->far))
        return -1;
    Py_XSETREF(t->evicted, Py_NewRef(evicted));
    if (t->streams == NULL && (t->streams = PyDict_New()) == NULL) return -1;
    return 0;
}

/* Held segments keep their packet's callback, which can lead back here (callback -> scanner
 * -> decoder -> this object): the collector must see those references to break a cycle left
 * by a scan that stopped with segments still held. */
static int TcpStreams_traverse(TcpStreams *t, visitproc visit, void *arg) {
    for (Stream *s = t->oldest; s != NULL; s = s->next) {
        for (int i = 0; i < s->n_ooo; i++) {
            Py_VISIT(s->ooo[i].data);
            Py_VISIT(s->ooo[i].cb);
        }
    }
    Py_VISIT(t->streams);
    Py_VISIT(t->evicted);
    return 0;
}

static int TcpStreams_clear(TcpStreams *t) {
    while (t->oldest) {
        Stream *s = t->oldest;
        list_unlink(t, s);
        s->alive = 0;
        stream_free(s);
    }
    t->bytes = 0;
    Py_CLEAR(t->streams);
    Py_CLEAR(t->evicted);
    return 0;
}

static void TcpStreams_dealloc(TcpStreams *t) {
    PyObject_GC_UnTrack(t);
    TcpStreams_clear(t);
    Py_TYPE(t)->tp_free((PyObject *)t);
}

static PyObject *TcpStreams_feed_kw(TcpStreams *t, PyObject *args, PyObject *kwds) {
    static char *names[] = {"key", "seq", "flags", "data", "on_message", "qr", "ts", NULL};
    PyObject *key, *data, *cb, *qr = Py_None;
    unsigned long long seq;
    int flags;
    long long ts = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OKiSO|OL", names, &key, &seq, &flags, &data,
                                     &cb, &qr, &ts))
        return NULL;
    PyObject *packed = Py_BuildValue("(OKiOOOL)", key, seq, flags, data, cb, qr, ts);
    if (packed == NULL) return NULL;
    PyObject *r = TcpStreams_feed(t, packed);
    Py_DECREF(packed);
    return r;
}

static PyMethodDef TcpStreams_methods[] = {
    {"feed", (PyCFunction)(void (*)(void))TcpStreams_feed_kw, METH_VARARGS | METH_KEYWORDS,
     "feed(key, seq, flags, data, on_message, qr=None, ts=0) -> category"},
    {"control", (PyCFunction)TcpStreams_control, METH_VARARGS,
     "control(key, seq, flags, ts=0) -> category"},
    {"flush", (PyCFunction)TcpStreams_flush, METH_NOARGS, "Deliver what is held; forget all."},
    {"stream_sizes", (PyCFunction)TcpStreams_stream_sizes, METH_NOARGS,
     "Bytes each stream holds (partial message and held segments), oldest first."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef TcpStreams_getset[] = {
    {"bytes_held", (getter)TcpStreams_bytes, NULL, "bytes buffered by all streams", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PySequenceMethods TcpStreams_as_sequence = {.sq_length = (lenfunc)TcpStreams_len};

PyTypeObject TcpStreamsType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "analyzer._speedups.TcpStreams",
    .tp_doc = "DNS-over-TCP stream reassembly: the twin of reassembly.TcpReassembler.",
    .tp_basicsize = sizeof(TcpStreams),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_traverse = (traverseproc)TcpStreams_traverse,
    .tp_clear = (inquiry)TcpStreams_clear,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)TcpStreams_init,
    .tp_dealloc = (destructor)TcpStreams_dealloc,
    .tp_methods = TcpStreams_methods,
    .tp_getset = TcpStreams_getset,
    .tp_as_sequence = &TcpStreams_as_sequence,
};


int tcpstreams_ready(void) {
    /* Keep in step with the slugs in reassembly.py. */
    S_NO_PAYLOAD = PyUnicode_InternFromString("tcp-no-payload");
    S_RETRANSMISSION = PyUnicode_InternFromString("tcp-retransmission");
    S_SEGMENT = PyUnicode_InternFromString("tcp-segment");
    S_OUT_OF_ORDER = PyUnicode_InternFromString("tcp-out-of-order");
    S_UNSYNCED = PyUnicode_InternFromString("tcp-unsynced");
    R_OVERFLOW = PyUnicode_InternFromString("tcp-buffer-overflow");
    R_GAPS = PyUnicode_InternFromString("tcp-gaps-skipped");
    R_EXPIRED = PyUnicode_InternFromString("tcp-streams-expired");
    R_IDLE = PyUnicode_InternFromString("tcp-streams-idle");
    R_EVICTED = PyUnicode_InternFromString("tcp-streams-evicted");
    R_RESTARTED = PyUnicode_InternFromString("tcp-streams-restarted");
    _one = PyLong_FromLong(1);
    if (!S_NO_PAYLOAD || !S_RETRANSMISSION || !S_SEGMENT || !S_OUT_OF_ORDER || !S_UNSYNCED ||
        !R_OVERFLOW || !R_GAPS || !R_EXPIRED || !R_IDLE || !R_EVICTED || !R_RESTARTED || !_one)
        return -1;
    return PyType_Ready(&TcpStreamsType);
}
