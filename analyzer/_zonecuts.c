/* zone_scan: the compiled twin of analyzer.zonecuts.zone_scan_py.
 *
 * One pass over a chunk's plain UDP responses: hash every suffix of the question name, count
 * the validating responses under watched suffixes (an open-addressed table of hashes, with
 * the counts beside it, both numpy arrays updated in place), and flag the few responses that
 * may name a zone cut, for Python to decode. See analyzer/zonecuts.py for the rules; the two
 * are held to the same answers by tests/test_zonecuts.py.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

#include "_speedups.h"

#define FNV_OFFSET 0xCBF29CE484222325ULL
#define FNV_PRIME 0x100000001B3ULL
#define ZC_AHEAD 16 /* messages prefetched ahead */
enum { T_NS = 2, T_SOA = 6, T_DS = 43, T_RRSIG = 46, T_DNSKEY = 48 };

/* The slot holding ``h`` in the table, or -1. */
static Py_ssize_t zc_find(const uint64_t *keys, Py_ssize_t slots, uint64_t h) {
    Py_ssize_t mask = slots - 1, slot = (Py_ssize_t)(h & (uint64_t)mask);
    for (Py_ssize_t probes = 0; probes < slots; probes++) {
        if (keys[slot] == h)
            return slot;
        if (keys[slot] == 0)
            return -1;
        slot = (slot + 1) & mask;
    }
    return -1;
}

/* Put ``h`` in the table unless it is there; 0 when the table is full. */
static int zc_insert(uint64_t *keys, Py_ssize_t slots, uint64_t h) {
    Py_ssize_t mask = slots - 1, slot = (Py_ssize_t)(h & (uint64_t)mask);
    for (Py_ssize_t probes = 0; probes < slots; probes++) {
        if (keys[slot] == h)
            return 1;
        if (keys[slot] == 0) {
            keys[slot] = h;
            return 1;
        }
        slot = (slot + 1) & mask;
    }
    return 0;
}

/* One message: 1 and its name hash in *hash when flagged, else 0. A flagged name goes into
 * ``seen``, and a name in ``seen`` is not flagged again; its answers are still counted. */
static int zc_one(const uint8_t *m, Py_ssize_t n, const uint64_t *keys, int64_t *good,
                  Py_ssize_t slots, uint64_t *seen, Py_ssize_t seen_slots, uint64_t *hash) {
    if (n < 12 || !(m[2] & 0x80) || ((m[4] << 8) | m[5]) != 1)
        return 0;
    Py_ssize_t starts[127];
    int labels = 0;
    Py_ssize_t off = 12;
    for (;;) {
        if (off >= n)
            return 0;
        uint8_t len = m[off];
        if (len == 0) {
            off++;
            break;
        }
        if (len > 63 || off + 1 + len > n || labels >= 127)
            return 0;
        starts[labels++] = off;
        off += 1 + len;
    }
    if (off + 4 > n)
        return 0;
    unsigned qtype = (m[off] << 8) | m[off + 1];
    off += 4;
    unsigned flags = (m[2] << 8) | m[3];
    unsigned an = (m[6] << 8) | m[7], ns = (m[8] << 8) | m[9];
    unsigned rcode = flags & 0xF;
    uint64_t h = FNV_OFFSET;
    Py_ssize_t hits[127];
    int nhits = 0;
    for (int k = labels - 1; k >= 0; k--) {
        const uint8_t *label = m + starts[k];
        uint8_t len = label[0];
        h = (h ^ len) * FNV_PRIME;
        for (int j = 1; j <= len; j++) {
            uint8_t b = label[j];
            if (b >= 'A' && b <= 'Z')
                b += 32;
            h = (h ^ b) * FNV_PRIME;
        }
        Py_ssize_t slot = zc_find(keys, slots, h ? h : 1);
        if (slot >= 0)
            hits[nhits++] = slot;
    }
    h = h ? h : 1;
    *hash = h;
    int referral_shape = an == 0 && ns > 0;
    int answered = rcode == 0 || rcode == 3;
    if (nhits && answered && (flags & 0x0020)) { /* AD: validated, no need to look further */
        for (int k = 0; k < nhits; k++)
            good[hits[k]]++;
    }
    /* a signed answer from a recursive server (RA, CD clear) validated too */
    int check_sig = nhits && answered && !(flags & 0x0020) && (flags & 0x0080) &&
                    !(flags & 0x0010);
    int may_flag = (nhits || qtype == T_DS || qtype == T_DNSKEY || referral_shape) &&
                   zc_find(seen, seen_slots, h) < 0;
    if (!check_sig && !may_flag)
        return 0;
    int answer_sig = 0, any_sig = 0, auth_soa = 0, auth_ns = 0;
    for (unsigned k = 0; k < an + ns; k++) {
        off = skip_name(m, n, off);
        if (off < 0 || off + 10 > n)
            break;
        unsigned rtype = (m[off] << 8) | m[off + 1];
        unsigned rdlen = (m[off + 8] << 8) | m[off + 9];
        off += 10 + rdlen;
        if (off > n)
            break;
        if (rtype == T_RRSIG) {
            any_sig = 1;
            if (k < an)
                answer_sig = 1;
        } else if (k >= an && rtype == T_SOA) {
            auth_soa = 1;
        } else if (k >= an && rtype == T_NS) {
            auth_ns = 1;
        }
    }
    if (check_sig && answer_sig)
        for (int k = 0; k < nhits; k++)
            good[hits[k]]++;
    int flag = may_flag && ((nhits && (any_sig || auth_soa || auth_ns)) || qtype == T_DS ||
                            qtype == T_DNSKEY ||
                            (referral_shape && auth_ns && !(flags & 0x0400) && rcode == 0));
    if (flag)
        zc_insert(seen, seen_slots, h);
    return flag;
}

static int zc_buffer(PyObject *obj, Py_buffer *view, int writable, Py_ssize_t itemsize,
                     const char *name) {
    if (PyObject_GetBuffer(obj, view, (writable ? PyBUF_WRITABLE : 0) | PyBUF_C_CONTIGUOUS |
                                          PyBUF_FORMAT) < 0)
        return -1;
    if (view->itemsize != itemsize) {
        PyErr_Format(PyExc_ValueError, "%s: expected items of %zd bytes", name, itemsize);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

/* zone_scan(arr, payload, payload_len, keys, good, seen) -> bytes of (index, name_hash)
 * int64 rows; ``good`` and ``seen`` are updated in place. */
PyObject *zone_scan(PyObject *self, PyObject *args) {
    PyObject *objs[6];
    if (!PyArg_ParseTuple(args, "OOOOOO", &objs[0], &objs[1], &objs[2], &objs[3], &objs[4],
                          &objs[5]))
        return NULL;
    static const char *names[6] = {"arr", "payload", "payload_len", "keys", "good", "seen"};
    static const Py_ssize_t sizes[6] = {1, 8, 8, 8, 8, 8};
    Py_buffer views[6];
    int got = 0;
    PyObject *result = NULL;
    for (; got < 6; got++)
        if (zc_buffer(objs[got], &views[got], got >= 4, sizes[got], names[got]) < 0)
            goto done;
    Py_ssize_t count = views[1].len / 8, slots = views[3].len / 8, seen_slots = views[5].len / 8;
    if (views[2].len / 8 != count || views[4].len / 8 != slots) {
        PyErr_SetString(PyExc_ValueError, "payload and payload_len, keys and good must match");
        goto done;
    }
    if (slots == 0 || (slots & (slots - 1)) || seen_slots == 0 ||
        (seen_slots & (seen_slots - 1))) {
        PyErr_SetString(PyExc_ValueError, "keys, seen: the table size must be a power of two");
        goto done;
    }
    const uint8_t *a = views[0].buf;
    const int64_t n = views[0].len, *payload = views[1].buf, *plen = views[2].buf;
    const uint64_t *keys = views[3].buf;
    int64_t *good = views[4].buf;
    uint64_t *seen = views[5].buf;
    int64_t *rows = PyMem_Malloc((size_t)(count ? count : 1) * 2 * sizeof(int64_t));
    if (rows == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    Py_ssize_t taken = 0;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < count; i++) {
        /* The chunk has left the cache since the classifier read it: ask for the messages
         * a few ahead, so that their misses overlap instead of following one another. */
        if (i + ZC_AHEAD < count && payload[i + ZC_AHEAD] >= 0 && payload[i + ZC_AHEAD] < n) {
            __builtin_prefetch(a + payload[i + ZC_AHEAD]);
            if (payload[i + ZC_AHEAD] + 64 < n)
                __builtin_prefetch(a + payload[i + ZC_AHEAD] + 64);
        }
        if (payload[i] < 0 || plen[i] < 0 || payload[i] + plen[i] > n)
            continue;
        uint64_t h = 0;
        if (zc_one(a + payload[i], plen[i], keys, good, slots, seen, seen_slots, &h)) {
            rows[2 * taken] = i;
            rows[2 * taken + 1] = (int64_t)h;
            taken++;
        }
    }
    Py_END_ALLOW_THREADS
    result = PyBytes_FromStringAndSize((const char *)rows, taken * 2 * (Py_ssize_t)sizeof(int64_t));
    PyMem_Free(rows);
done:
    for (int k = 0; k < got; k++)
        PyBuffer_Release(&views[k]);
    return result;
}
