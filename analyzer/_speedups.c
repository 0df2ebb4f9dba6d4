/* analyzer._speedups: compiled kernels for the loops that Python and numpy do slowly.
 *
 * Here: walking packet records (each record's length says where the next one starts, so it
 * cannot be vectorised), classifying packets (a dozen numpy passes over every chunk), the
 * keys that pair UDP queries with responses, copying the queries out of a chunk, and
 * decoding clean DNS responses, one or a chunk's worth into columns. _tcpstreams.c adds DNS-over-TCP reassembly.
 *
 * Contract: each function returns exactly what its Python twin returns
 * (records.pcap_records_py, records.pcapng_epbs_py, fastpath.classify_numpy,
 * matching.query_keys_numpy, matching.gather_numpy, message.parse_response_py);
 * tests/test_speedups.py runs both on the same bytes. Everything here reads untrusted bytes: every read is bounds-checked
 * against the buffer, and no function allocates more than its output. The GIL is released
 * while the pure-C loops run.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#include "_speedups.h"

/* Keep in step with analyzer/fastpath.py. */
enum { SLOW, QUERY, RESPONSE, CANDIDATE, NOT_DNS_PORT, NON_IP, NOT_UDP_TCP,
       UNSUPPORTED_LINKTYPE, TCP_NO_PAYLOAD, TCP_SEGMENT, UNSUPPORTED_TUNNEL };
#define ETH_IP4 0x0800
#define ETH_IP6 0x86DD
/* An Ethernet header follows (VXLAN, Geneve, GRE 0x6558, ERSPAN): not an EtherType. */
#define ETH_INNER (-3)

/* Tunnels, as analyzer/tunnels.py names them. Bits of the ``tunnels`` column, in KINDS order: */
enum { T_VXLAN = 1, T_GENEVE = 2, T_GRE = 4, T_ERSPAN = 8, T_MPLS = 16, T_PPPOE = 32,
       T_IP4_IN_IP = 64, T_IP6_IN_IP = 128, T_VXLAN_GPE = 256, T_GTP_U = 512, T_L2TP = 1024 };
/* ...and what each layer mixes into the ``encap`` number (fastpath.ENCAP_*). */
enum { E_VLAN = 1, E_VXLAN, E_GENEVE, E_GRE, E_ERSPAN, E_MPLS, E_PPPOE, E_IP4_IN_IP,
       E_IP6_IN_IP, E_VXLAN_GPE, E_GTP_U, E_L2TP };
/* What cannot be opened, as ``detail`` (tunnels.UNOPENED_TUNNEL). */
enum { U_GRE_PROTOCOL = 1, U_GENEVE_PROTOCOL, U_MPLS_PAYLOAD, U_PPP_PROTOCOL };
#define ENCAP_MIX 0x9E3779B97F4A7C15ULL
#define MAX_TUNNELS 8
#define MAX_LABELS 16
#define VXLAN_PORT 4789
#define VXLAN_LINUX_PORT 8472
#define GENEVE_PORT 6081
#define VXLAN_GPE_PORT 4790
#define GTP_U_PORT 2152
#define L2TP_PORT 1701

/* One layer of the encapsulation path: its kind and its identifier (+1; 0 for none). */
static inline uint64_t mix_encap(uint64_t encap, uint64_t kind, uint64_t ident) {
    encap = (encap ^ kind) * ENCAP_MIX;
    return (encap ^ ident) * ENCAP_MIX;
}

static inline int is_vlan(int64_t et) {
    return et == 0x8100 || et == 0x88A8 || et == 0x9100;
}

static inline int tunnel_port(int64_t port) {
    return port == VXLAN_PORT || port == VXLAN_LINUX_PORT || port == GENEVE_PORT ||
           port == VXLAN_GPE_PORT || port == GTP_U_PORT || port == L2TP_PORT;
}
#define PCAPNG_EPB 6

static inline uint32_t rd32(const uint8_t *p, int big) {
    return big ? ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3]
               : ((uint32_t)p[3] << 24) | ((uint32_t)p[2] << 16) | ((uint32_t)p[1] << 8) | p[0];
}

/* A byte of the chunk, or 0 outside it (the Python twin reads zero padding there). */
static inline int64_t at(const uint8_t *a, int64_t n, int64_t i) {
    return (i >= 0 && i < n) ? a[i] : 0;
}

static inline int64_t u16(const uint8_t *a, int64_t n, int64_t i) {
    return (at(a, n, i) << 8) | at(a, n, i + 1);
}

/* pcap_records(buf, off, limit, big_endian) -> (bytes, next_off)
 *
 * Walk classic pcap records from ``off`` while a whole 16-byte header and its captured
 * bytes fit in ``buf`` and the record starts before ``limit``. The bytes hold five int64
 * per record: header offset, ts seconds, ts fraction, captured length, original length.
 */
static PyObject *pcap_records(PyObject *self, PyObject *args) {
    Py_buffer view;
    Py_ssize_t off, limit;
    int big;
    if (!PyArg_ParseTuple(args, "y*nnp", &view, &off, &limit, &big))
        return NULL;
    const uint8_t *buf = view.buf;
    Py_ssize_t n = view.len;
    Py_ssize_t count = 0, cap = 0;
    int64_t *rows = NULL;
    Py_ssize_t pos = off;
    /* One pass to count, so the output is allocated once at its exact size. */
    Py_BEGIN_ALLOW_THREADS
    while (pos >= 0 && pos + 16 <= n && pos < limit) {
        Py_ssize_t end = pos + 16 + (Py_ssize_t)rd32(buf + pos + 8, big);
        if (end > n)
            break;
        count++;
        pos = end;
    }
    Py_END_ALLOW_THREADS
    cap = count;
    PyObject *out = PyBytes_FromStringAndSize(NULL, cap * 5 * (Py_ssize_t)sizeof(int64_t));
    if (out == NULL) {
        PyBuffer_Release(&view);
        return NULL;
    }
    rows = (int64_t *)PyBytes_AS_STRING(out);
    pos = off;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < cap; i++) {
        const uint8_t *h = buf + pos;
        int64_t *r = rows + i * 5;
        r[0] = pos;
        r[1] = rd32(h, big);
        r[2] = rd32(h + 4, big);
        r[3] = rd32(h + 8, big);
        r[4] = rd32(h + 12, big);
        pos += 16 + r[3];
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&view);
    return Py_BuildValue("(Nn)", out, pos);
}

/* pcapng_epbs(buf, off, big_endian, max_block) -> (bytes, next_off)
 *
 * Walk consecutive Enhanced Packet Blocks from ``off``; stop at the first block that is not
 * a whole, plausible EPB (another block type, a bad length, or one cut by the buffer's end)
 * and leave it to the Python walker. Seven int64 per block: block offset, block length,
 * interface id, timestamp high, timestamp low, captured length, original length.
 */
static PyObject *pcapng_epbs(PyObject *self, PyObject *args) {
    Py_buffer view;
    Py_ssize_t off, max_block;
    int big;
    if (!PyArg_ParseTuple(args, "y*npn", &view, &off, &big, &max_block))
        return NULL;
    const uint8_t *buf = view.buf;
    Py_ssize_t n = view.len;
    Py_ssize_t count = 0;
    Py_ssize_t pos = off;
    Py_BEGIN_ALLOW_THREADS
    while (pos >= 0 && pos + 12 <= n) {
        uint32_t btype = rd32(buf + pos, big), blen = rd32(buf + pos + 4, big);
        if (btype != PCAPNG_EPB || blen < 32 || blen % 4 || (Py_ssize_t)blen > max_block ||
            pos + (Py_ssize_t)blen > n)
            break;
        count++;
        pos += blen;
    }
    Py_END_ALLOW_THREADS
    PyObject *out = PyBytes_FromStringAndSize(NULL, count * 7 * (Py_ssize_t)sizeof(int64_t));
    if (out == NULL) {
        PyBuffer_Release(&view);
        return NULL;
    }
    int64_t *rows = (int64_t *)PyBytes_AS_STRING(out);
    pos = off;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < count; i++) {
        const uint8_t *h = buf + pos;
        int64_t *r = rows + i * 7;
        r[0] = pos;
        r[1] = rd32(h + 4, big);
        for (int k = 0; k < 5; k++)
            r[2 + k] = rd32(h + 8 + 4 * k, big);
        pos += r[1];
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&view);
    return Py_BuildValue("(Nn)", out, pos);
}

/* Whether ``00 29`` occurs in [start, stop) and ``00 0f`` follows it 10+ bytes on. */
static int may_hold_ede(const uint8_t *a, int64_t n, int64_t start, int64_t stop) {
    if (stop > n)
        stop = n;
    if (start < 0)
        start = 0;
    int64_t p = start;
    for (; p + 1 < stop; p++) {
        if (a[p + 1] == 0x29 && a[p] == 0)
            break;
    }
    if (p + 1 >= stop)
        return 0;
    for (int64_t q = p + 10; q + 1 < stop; q++) {
        if (a[q + 1] == 0x0F && a[q] == 0)
            return 1;
    }
    return 0;
}

static int is_ip6_extension(int64_t nh) {
    switch (nh) {
    case 0: case 43: case 44: case 51: case 60: case 135: case 139: case 140: case 253:
    case 254:
        return 1;
    }
    return 0;
}

static int get_buffer(PyObject *obj, Py_buffer *view, int writable, Py_ssize_t itemsize,
                      const char *name) {
    int flags = PyBUF_C_CONTIGUOUS | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj, view, flags) < 0)
        return -1;
    if (view->itemsize != itemsize) {
        PyErr_Format(PyExc_TypeError, "%s: expected items of %zd bytes", name, itemsize);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

/* What a kernel takes through the buffer protocol, argument by argument. An entry of size 0
 * is not a buffer (skipped); the entries marked ``column`` must all hold the same number of
 * items. */
typedef struct {
    int writable;
    Py_ssize_t size;
    const char *name;
    int column;
} BufSpec;

/* Get the views ``spec`` asks for and the item count of its columns. Returns 0, or -1 with
 * an exception set; either way release_views(views, spec, *got) lets go of what was got. */
static int get_views(PyObject **objs, Py_buffer *views, const BufSpec *spec, int n, int *got,
                     Py_ssize_t *count) {
    for (*got = 0; *got < n; (*got)++) {
        if (spec[*got].size && get_buffer(objs[*got], &views[*got], spec[*got].writable,
                                          spec[*got].size, spec[*got].name) < 0)
            return -1;
    }
    *count = -1;
    for (int k = 0; k < n; k++) {
        if (!spec[k].column)
            continue;
        Py_ssize_t items = views[k].len / spec[k].size;
        if (*count < 0) {
            *count = items;
        } else if (items != *count) {
            PyErr_Format(PyExc_ValueError, "%s: expected %zd items", spec[k].name, *count);
            return -1;
        }
    }
    return 0;
}

static void release_views(Py_buffer *views, const BufSpec *spec, int got) {
    for (int k = 0; k < got; k++) {
        if (spec[k].size)
            PyBuffer_Release(&views[k]);
    }
}

/* The link layer of one packet: where its first EtherType-named layer starts.
 * Returns 1 with ``*etype`` and ``*l3`` set, or 0 with ``*cat`` the verdict (SLOW when the
 * per-packet path must look: short headers, link types opened only there). */
static int link_layer(const uint8_t *a, int64_t n, int64_t lt, int64_t d, int64_t cap,
                      int64_t *etype, int64_t *l3, int8_t *cat) {
    const int64_t end = d + cap;
    *cat = SLOW;
    switch (lt) {
    case 1:
        if (cap < 14)
            return 0;
        *etype = u16(a, n, d + 12);
        *l3 = d + 14;
        return 1;
    case 113:
        if (cap < 16)
            return 0;
        *etype = u16(a, n, d + 14);
        *l3 = d + 16;
        return 1;
    case 276:
        if (cap < 20)
            return 0;
        *etype = u16(a, n, d);
        *l3 = d + 20;
        return 1;
    case 12: case 14: case 101: {
        if (cap < 1)
            return 0;
        int64_t v = at(a, n, d) >> 4;
        *etype = v == 4 ? ETH_IP4 : v == 6 ? ETH_IP6 : -2;
        *l3 = d;
        return 1;
    }
    case 228: *etype = ETH_IP4; *l3 = d; return 1;
    case 229: *etype = ETH_IP6; *l3 = d; return 1;
    case 0: case 108: {
        if (cap < 4)
            return 0;
        /* NULL's family is in the capturing host's byte order; LOOP's is big. */
        int64_t fam = lt == 108 ? at(a, n, d + 3) : at(a, n, d);
        if (lt == 0 && fam == 0)
            fam = at(a, n, d + 3);
        *etype = fam == 2 ? ETH_IP4
               : (fam == 10 || fam == 24 || fam == 28 || fam == 30) ? ETH_IP6 : -2;
        *l3 = d + 4;
        return 1;
    }
    case 9: case 50: { /* PPP; HDLC-like framing adds FF 03 (optional on link type 9) */
        int64_t off = d;
        if (cap >= 2 && at(a, n, d) == 0xFF && at(a, n, d + 1) == 0x03)
            off += 2;
        if (off + 2 > end || (at(a, n, off) & 1))
            return 0; /* compressed protocol field: the per-packet path */
        int64_t proto = u16(a, n, off);
        if (proto != 0x0021 && proto != 0x0057)
            return 0;
        *etype = proto == 0x0021 ? ETH_IP4 : ETH_IP6;
        *l3 = off + 2;
        return 1;
    }
    case 104: /* Cisco HDLC: address, control, EtherType */
        if (cap < 4)
            return 0;
        *etype = u16(a, n, d + 2);
        *l3 = d + 4;
        return 1;
    case 226: { /* Solaris IPNET: 24 bytes, the family second */
        int64_t fam = at(a, n, d + 1);
        if (cap < 24 || (fam != 2 && fam != 26))
            return 0;
        *etype = fam == 2 ? ETH_IP4 : ETH_IP6;
        *l3 = d + 24;
        return 1;
    }
    case 239: { /* NFLOG: TLVs in the host's byte order; NFULA_PAYLOAD (9) holds the packet */
        int64_t fam = at(a, n, d);
        if (cap < 4 || (fam != 2 && fam != 10))
            return 0;
        for (int64_t off = d + 4; off + 4 <= end;) {
            int little = at(a, n, off + 3) == 0 && at(a, n, off + 2) != 0;
            int64_t len = little ? at(a, n, off) | (at(a, n, off + 1) << 8) : u16(a, n, off);
            int64_t type = (little ? at(a, n, off + 2) | (at(a, n, off + 3) << 8)
                                   : u16(a, n, off + 2)) & 0x7FFF;
            if (len < 4)
                return 0;
            if (type == 9) {
                if (off + len > end)
                    return 0;
                *etype = fam == 2 ? ETH_IP4 : ETH_IP6;
                *l3 = off + 4;
                return 1;
            }
            off += (len + 3) & ~3;
        }
        return 0;
    }
    case 105: case 127: /* 802.11 and radiotap: opened one packet at a time */
        return 0;
    default:
        *cat = UNSUPPORTED_LINKTYPE;
        return 0;
    }
}

/* Where a packet's DNS-port transport starts, after every tunnel around it is opened. */
typedef struct {
    int64_t l3, l4, proto, ip_end, ver, tunnels, detail;
    uint64_t encap;
} Peeled;

/* Open the layers from an EtherType at ``l3`` (bounded by ``end``) down to the innermost IP
 * header and its transport: VLAN tags, MPLS, PPPoE, inner Ethernet, IP in IP, GRE (with
 * ERSPAN), VXLAN and Geneve, as analyzer/layers.py and tunnels.py do. Returns the category
 * when the packet is settled before its transport (SLOW for anything the per-packet path must
 * judge), or -1 with ``p`` describing the innermost IP packet. */
static int peel(const uint8_t *a, int64_t n, int64_t etype, int64_t l3, int64_t end,
                const uint8_t *ports, Peeled *p) {
    int depth = 0;
    p->encap = 0;
    p->tunnels = p->detail = 0;
    for (;;) {
        for (int tags = 0; is_vlan(etype); tags++) {
            if (l3 + 4 > end || tags == MAX_LABELS)
                return SLOW;
            p->encap = mix_encap(p->encap, E_VLAN, (u16(a, n, l3) & 0x0FFF) + 1);
            etype = u16(a, n, l3 + 2);
            l3 += 4;
        }
        p->l3 = l3;
        if (etype == ETH_INNER) {
            if (l3 + 14 > end)
                return SLOW;
            etype = u16(a, n, l3 + 12);
            l3 += 14;
            continue;
        }
        if (etype == 0x8847 || etype == 0x8848) {
            int bottom = 0;
            uint64_t stack = p->encap; /* the path takes the stack only if it opens */
            for (int k = 0; k < MAX_LABELS && !bottom; k++) {
                if (l3 + 4 > end)
                    return SLOW;
                stack = mix_encap(stack, E_MPLS, (uint64_t)(u16(a, n, l3) << 4 |
                                                            at(a, n, l3 + 2) >> 4) + 1);
                bottom = at(a, n, l3 + 2) & 1;
                l3 += 4;
            }
            if (!bottom || l3 >= end)
                return SLOW;
            int64_t nibble = at(a, n, l3) >> 4;
            if (nibble == 0) { /* an Ethernet pseudowire, with or without a control word */
                int64_t start = -1;
                for (int64_t s = l3 + 4; s >= l3; s -= 4) { /* tunnels.pseudowire */
                    int64_t et = u16(a, n, s + 12), version = at(a, n, s + 14) >> 4;
                    if (s + 15 <= end && (is_vlan(et) || et == 0x8847 || et == 0x8848 ||
                                          et == 0x8864 || (et == ETH_IP4 && version == 4) ||
                                          (et == ETH_IP6 && version == 6))) {
                        start = s;
                        break;
                    }
                }
                if (start >= 0) {
                    if (++depth > MAX_TUNNELS)
                        return SLOW;
                    p->encap = stack;
                    p->tunnels |= T_MPLS;
                    etype = ETH_INNER;
                    l3 = start;
                    continue;
                }
            }
            if (nibble != 4 && nibble != 6) {
                p->detail = ((int64_t)U_MPLS_PAYLOAD << 32) | nibble;
                return UNSUPPORTED_TUNNEL;
            }
            if (++depth > MAX_TUNNELS)
                return SLOW;
            p->encap = stack;
            p->tunnels |= T_MPLS;
            etype = nibble == 4 ? ETH_IP4 : ETH_IP6;
            continue;
        }
        if (etype == 0x8864) { /* PPPoE session: 6 bytes, a two-byte PPP protocol */
            if (l3 + 8 > end || at(a, n, l3) != 0x11 || at(a, n, l3 + 1) != 0 ||
                (at(a, n, l3 + 6) & 1))
                return SLOW;
            int64_t proto = u16(a, n, l3 + 6);
            if (proto != 0x0021 && proto != 0x0057) {
                p->detail = ((int64_t)U_PPP_PROTOCOL << 32) | proto;
                return UNSUPPORTED_TUNNEL;
            }
            if (++depth > MAX_TUNNELS)
                return SLOW;
            p->encap = mix_encap(p->encap, E_PPPOE, u16(a, n, l3 + 2) + 1);
            p->tunnels |= T_PPPOE;
            etype = proto == 0x0021 ? ETH_IP4 : ETH_IP6;
            l3 += 8;
            continue;
        }
        if (etype != ETH_IP4 && etype != ETH_IP6) {
            if (etype < 0)
                return SLOW; /* a raw frame of unknown IP version: the per-packet path names it */
            p->detail = etype;
            return NON_IP;
        }
        /* -- IP -- */
        int64_t l4 = -1, proto = -1, ip_end = 0, ver = 0;
        if (etype == ETH_IP4 && l3 + 20 <= end) {
            int64_t vihl = at(a, n, l3), ihl = (vihl & 15) * 4, total = u16(a, n, l3 + 2);
            int64_t frag = ((at(a, n, l3 + 6) & 0x3F) << 8) | at(a, n, l3 + 7);
            if ((vihl >> 4) == 4 && ihl >= 20 && frag == 0 && total >= ihl &&
                l3 + total <= end) {
                l4 = l3 + ihl; proto = at(a, n, l3 + 9); ip_end = l3 + total; ver = 4;
            }
        } else if (etype == ETH_IP6 && l3 + 40 <= end) {
            int64_t plen = u16(a, n, l3 + 4), nh = at(a, n, l3 + 6);
            if ((at(a, n, l3) >> 4) == 6 && l3 + 40 + plen <= end && !is_ip6_extension(nh)) {
                l4 = l3 + 40; proto = nh; ip_end = l3 + 40 + plen; ver = 6;
            }
        }
        p->l3 = l3;
        p->l4 = l4;
        p->proto = proto;
        p->ip_end = ip_end;
        p->ver = ver;
        if (l4 < 0)
            return SLOW; /* fragments, extension headers, lying lengths, cuts */
        if (proto == 4 || proto == 41) { /* IP in IP: the inner header starts at once */
            if (++depth > MAX_TUNNELS)
                return SLOW;
            p->encap = mix_encap(p->encap, proto == 4 ? E_IP4_IN_IP : E_IP6_IN_IP, 0);
            p->tunnels |= proto == 4 ? T_IP4_IN_IP : T_IP6_IN_IP;
            etype = proto == 4 ? ETH_IP4 : ETH_IP6;
            l3 = l4;
            end = ip_end;
            continue;
        }
        if (proto == 47) { /* GRE (RFC 2784/2890) version 0; ERSPAN I, II, III inside */
            int64_t flags = at(a, n, l4), gp = u16(a, n, l4 + 2), pos;
            if (l4 + 4 > ip_end || (flags & 0x40) || (at(a, n, l4 + 1) & 0x07))
                return SLOW;
            pos = l4 + 4 + ((flags & 0x80) ? 4 : 0);
            uint64_t key = 0;
            if (flags & 0x20) {
                if (pos + 4 > ip_end)
                    return SLOW;
                key = ((uint64_t)u16(a, n, pos) << 16 | (uint64_t)u16(a, n, pos + 2)) + 1;
                pos += 4;
            }
            pos += (flags & 0x10) ? 4 : 0;
            if (pos > ip_end)
                return SLOW;
            uint64_t kind = E_GRE, ident = key;
            int64_t bit = T_GRE;
            if (gp == ETH_IP4 || gp == ETH_IP6 || gp == 0x8847 || gp == 0x8848) {
                etype = gp;
            } else if (gp == 0x6558) {
                etype = ETH_INNER;
            } else if (gp == 0x88BE && !(flags & 0x10)) { /* ERSPAN type I: Ethernet at once */
                kind = E_ERSPAN; ident = 0; bit = T_ERSPAN; etype = ETH_INNER;
            } else if (gp == 0x88BE || gp == 0x22EB) { /* ERSPAN type II / III */
                int type3 = gp == 0x22EB;
                int64_t size = type3 ? 12 : 8;
                if (pos + size > ip_end || (at(a, n, pos) >> 4) != (type3 ? 2 : 1))
                    return SLOW;
                kind = E_ERSPAN; ident = (u16(a, n, pos + 2) & 0x03FF) + 1; bit = T_ERSPAN;
                if (type3 && (at(a, n, pos + 11) & 1))
                    size += 8; /* the platform-specific sub-header */
                pos += size;
                etype = ETH_INNER;
            } else {
                p->detail = ((int64_t)U_GRE_PROTOCOL << 32) | gp;
                return UNSUPPORTED_TUNNEL;
            }
            if (++depth > MAX_TUNNELS)
                return SLOW;
            p->encap = mix_encap(p->encap, kind, ident);
            p->tunnels |= bit;
            l3 = pos;
            end = ip_end;
            continue;
        }
        if (proto == 17 && l4 + 8 <= ip_end) { /* VXLAN, Geneve, GPE, GTP-U, L2TP by port */
            int64_t sport = u16(a, n, l4), dport = u16(a, n, l4 + 2);
            int dns = ((ports[sport >> 3] >> (sport & 7)) & 1) ||
                      ((ports[dport >> 3] >> (dport & 7)) & 1);
            int64_t port = tunnel_port(dport) ? dport : sport;
            if (!dns && tunnel_port(port)) {
                int64_t ulen = u16(a, n, l4 + 4), h = l4 + 8, uend = l4 + ulen;
                if (ulen < 8 || uend > ip_end || h + 8 > uend)
                    return SLOW;
                uint64_t vni = (uint64_t)(u16(a, n, h + 4) << 8 | at(a, n, h + 6)) + 1;
                if (port == GENEVE_PORT) {
                    int64_t gp = u16(a, n, h + 2), start = h + 8 + (at(a, n, h) & 0x3F) * 4;
                    if ((at(a, n, h) >> 6) || start > uend)
                        return SLOW;
                    if (gp != 0x6558 && gp != ETH_IP4 && gp != ETH_IP6) {
                        p->detail = ((int64_t)U_GENEVE_PROTOCOL << 32) | gp;
                        return UNSUPPORTED_TUNNEL;
                    }
                    etype = gp == 0x6558 ? ETH_INNER : gp;
                    l3 = start;
                    p->encap = mix_encap(p->encap, E_GENEVE, vni);
                    p->tunnels |= T_GENEVE;
                } else if (port == VXLAN_GPE_PORT) {
                    int64_t flags = at(a, n, h);
                    int64_t next = (flags & 0x04) ? at(a, n, h + 3) : 3;
                    if (flags & 0x30 || next == 4 || next < 1 || next > 5)
                        return SLOW; /* other versions, NSH: the per-packet path names them */
                    etype = next == 1 ? ETH_IP4 : next == 2 ? ETH_IP6 : next == 3 ? ETH_INNER
                                                                                    : 0x8847;
                    l3 = h + 8;
                    p->encap = mix_encap(p->encap, E_VXLAN_GPE, vni);
                    p->tunnels |= T_VXLAN_GPE;
                } else if (port == GTP_U_PORT) { /* a G-PDU: version 1, PT set, type 255 */
                    int64_t flags = at(a, n, h), pos = h + 8;
                    if ((flags >> 5) != 1 || !(flags & 0x10) || at(a, n, h + 1) != 0xFF)
                        return SLOW;
                    if (flags & 0x07) { /* sequence, N-PDU, next extension header type */
                        pos += 4;
                        int64_t following = (flags & 0x04) ? at(a, n, pos - 1) : 0;
                        for (int k = 0; following; k++) {
                            int64_t len = at(a, n, pos) * 4;
                            if (k == MAX_LABELS || !len || pos + len > uend)
                                return SLOW;
                            following = at(a, n, pos + len - 1);
                            pos += len;
                        }
                    }
                    int64_t nibble = pos < uend ? at(a, n, pos) >> 4 : 0;
                    if (nibble != 4 && nibble != 6)
                        return SLOW;
                    etype = nibble == 4 ? ETH_IP4 : ETH_IP6;
                    l3 = pos;
                    p->encap = mix_encap(p->encap, E_GTP_U, 0);
                    p->tunnels |= T_GTP_U;
                } else if (port == L2TP_PORT) { /* an L2TPv2 data message, PPP inside */
                    int64_t flags = u16(a, n, h), pos = h + 2 + ((flags & 0x4000) ? 2 : 0);
                    if ((flags & 0x0F) != 2 || (flags & 0x8000))
                        return SLOW; /* other versions, control messages */
                    int64_t tunnel = u16(a, n, pos);
                    pos += 4 + ((flags & 0x0800) ? 4 : 0);
                    if (flags & 0x0200)
                        pos += 2 + u16(a, n, pos);
                    if (pos + 2 <= uend && at(a, n, pos) == 0xFF && at(a, n, pos + 1) == 0x03)
                        pos += 2;
                    if (pos + 2 > uend || (at(a, n, pos) & 1))
                        return SLOW; /* a compressed protocol field: the per-packet path */
                    int64_t pp = u16(a, n, pos);
                    if (pp != 0x0021 && pp != 0x0057)
                        return SLOW; /* LCP, IPCP...: the per-packet path names them */
                    etype = pp == 0x0021 ? ETH_IP4 : ETH_IP6;
                    l3 = pos + 2;
                    p->encap = mix_encap(p->encap, E_L2TP, tunnel + 1);
                    p->tunnels |= T_L2TP;
                } else {
                    if (!(at(a, n, h) & 0x08))
                        return SLOW; /* no valid VNI: the per-packet path says so */
                    etype = ETH_INNER;
                    l3 = h + 8;
                    p->encap = mix_encap(p->encap, E_VXLAN, vni);
                    p->tunnels |= T_VXLAN;
                }
                if (++depth > MAX_TUNNELS)
                    return SLOW;
                end = uend;
                continue;
            }
        }
        return -1;
    }
}

/* classify(arr, data_off, caplen, linktype, port_map, decode_all,
 *          cat, l3, l4, ip_version, sport, dport, payload, payload_len,
 *          encap, tunnels, detail) -> list
 *
 * Fill the output columns exactly as fastpath.classify_numpy does for every field the
 * pipeline reads, and return the indices of RFC 9567 error-report candidates. Tunnels are
 * opened here (``peel``), where the numpy twin leaves them to the per-packet path.
 * ``port_map`` is 8192 bytes, one bit per port that counts as DNS.
 */
static PyObject *classify(PyObject *self, PyObject *args) {
    PyObject *objs[17];
    int decode_all;
    if (!PyArg_ParseTuple(args, "OOOOOpOOOOOOOOOOO", &objs[0], &objs[1], &objs[2], &objs[3],
                          &objs[4], &decode_all, &objs[6], &objs[7], &objs[8], &objs[9],
                          &objs[10], &objs[11], &objs[12], &objs[13], &objs[14], &objs[15],
                          &objs[16]))
        return NULL;
    objs[5] = NULL;
    static const BufSpec spec[17] = {
        {0, 1, "arr", 0}, {0, 8, "data_off", 1}, {0, 8, "caplen", 1}, {0, 8, "linktype", 1},
        {0, 1, "port_map", 0}, {0, 0, "decode_all", 0}, {1, 1, "cat", 1}, {1, 8, "l3", 1},
        {1, 8, "l4", 1}, {1, 8, "ip_version", 1}, {1, 8, "sport", 1}, {1, 8, "dport", 1},
        {1, 8, "payload", 1}, {1, 8, "payload_len", 1}, {1, 8, "encap", 1},
        {1, 8, "tunnels", 1}, {1, 8, "detail", 1}};
    Py_buffer views[17];
    int got = 0;
    Py_ssize_t count;
    PyObject *result = NULL;
    if (get_views(objs, views, spec, 17, &got, &count) < 0)
        goto done;
    if (views[4].len != 8192) {
        PyErr_SetString(PyExc_ValueError, "port_map: expected 8192 bytes");
        goto done;
    }
    const uint8_t *a = views[0].buf;
    const int64_t n = views[0].len;
    const int64_t *d_off = views[1].buf, *caplen = views[2].buf, *lt_col = views[3].buf;
    const uint8_t *ports = views[4].buf;
    int8_t *cat = views[6].buf;
    int64_t *l3_col = views[7].buf, *l4_col = views[8].buf, *ver_col = views[9].buf;
    int64_t *sport_col = views[10].buf, *dport_col = views[11].buf;
    int64_t *pay_col = views[12].buf, *plen_col = views[13].buf;
    uint64_t *encap_col = views[14].buf;
    int64_t *tunnels_col = views[15].buf, *detail_col = views[16].buf;
    /* Error reports are rare: mark them in place first, gather them after the loop. */
    int64_t reports = 0;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < count; i++) {
        const int64_t d = d_off[i], cap = caplen[i];
        int64_t etype = -1, l3 = -1;
        int8_t c = SLOW;
        Peeled pl = {-1, -1, -1, 0, 0, 0, 0, 0};
        l3_col[i] = l4_col[i] = -1;
        ver_col[i] = sport_col[i] = dport_col[i] = pay_col[i] = plen_col[i] = 0;
        encap_col[i] = 0;
        tunnels_col[i] = detail_col[i] = 0;
        if (link_layer(a, n, lt_col[i], d, cap, &etype, &l3, &c)) {
            int settled = peel(a, n, etype, l3, d + cap, ports, &pl);
            l3_col[i] = pl.l3;
            if (settled >= 0) {
                cat[i] = (int8_t)settled;
                if (settled != SLOW) {
                    encap_col[i] = pl.encap;
                    tunnels_col[i] = pl.tunnels;
                    detail_col[i] = pl.detail;
                }
                continue;
            }
        } else {
            cat[i] = c;
            continue;
        }
        const int64_t l4 = pl.l4, proto = pl.proto, ip_end = pl.ip_end;
        l4_col[i] = l4;
        ver_col[i] = pl.ver;
        encap_col[i] = pl.encap;
        tunnels_col[i] = pl.tunnels;
        if (proto != 6 && proto != 17) {
            cat[i] = NOT_UDP_TCP;
            detail_col[i] = proto;
            continue;
        }
        /* -- transport -- */
        int64_t sport = u16(a, n, l4), dport = u16(a, n, l4 + 2);
        sport_col[i] = sport;
        dport_col[i] = dport;
        int dns_port = ((ports[sport >> 3] >> (sport & 7)) & 1) ||
                       ((ports[dport >> 3] >> (dport & 7)) & 1);
        if (proto == 6) {
            int64_t hlen = (at(a, n, l4 + 12) >> 4) * 4, flags = at(a, n, l4 + 13);
            pay_col[i] = l4 + hlen;
            plen_col[i] = ip_end - (l4 + hlen);
            if (!dns_port) {
                if (l4 + 4 <= ip_end)
                    c = NOT_DNS_PORT;
            } else if (hlen >= 20 && l4 + hlen <= ip_end) {
                c = (l4 + hlen == ip_end && (flags & 0x07) == 0) ? TCP_NO_PAYLOAD : TCP_SEGMENT;
            }
            cat[i] = c;
            if (c == SLOW) /* the per-packet path counts what it opens itself */
                encap_col[i] = 0, tunnels_col[i] = 0;
            continue;
        }
        int64_t ulen = u16(a, n, l4 + 4), p = l4 + 8, plen = ulen - 8;
        pay_col[i] = p;
        plen_col[i] = plen;
        if (l4 + 8 <= ip_end) {
            if (!dns_port) {
                c = NOT_DNS_PORT;
            } else if (ulen >= 20 && l4 + ulen <= ip_end) {
                if ((at(a, n, p + 2) >> 7) == 0) {
                    c = QUERY;
                    /* RFC 9567 §6.1.1: a report's QNAME starts with the label "_er". */
                    if (plen >= 16 && at(a, n, p + 12) == 3 && at(a, n, p + 13) == 0x5F &&
                        (at(a, n, p + 14) | 0x20) == 0x65 && (at(a, n, p + 15) | 0x20) == 0x72)
                        reports++, c = -1 - QUERY; /* marked; restored below */
                } else if (decode_all) {
                    c = CANDIDATE;
                } else {
                    c = RESPONSE;
                    if (u16(a, n, p + 10) > 0 && may_hold_ede(a, n, p + 12, p + plen))
                        c = CANDIDATE;
                }
            }
        }
        cat[i] = c;
        if (c == SLOW)
            encap_col[i] = 0, tunnels_col[i] = 0;
    }
    Py_END_ALLOW_THREADS
    result = PyList_New(0);
    if (result == NULL)
        goto done;
    for (Py_ssize_t i = 0; reports && i < count; i++) {
        if (cat[i] == -1 - QUERY) {
            cat[i] = QUERY;
            reports--;
            PyObject *index = PyLong_FromSsize_t(i);
            if (index == NULL || PyList_Append(result, index) < 0) {
                Py_XDECREF(index);
                Py_CLEAR(result);
                goto done;
            }
            Py_DECREF(index);
        }
    }
done:
    release_views(views, spec, got);
    return result;
}

static inline uint64_t be_bytes(const uint8_t *a, int64_t n, int64_t pos, int width) {
    uint64_t v = 0;
    for (int k = 0; k < width; k++)
        v = (v << 8) | (uint64_t)at(a, n, pos + k);
    return v;
}

/* matching.fold_ip: IPv4 as its 32-bit number, IPv6 as hi * M3 + lo (mod 2**64). */
static inline uint64_t fold_ip(const uint8_t *a, int64_t n, int64_t pos, int64_t version) {
    if (version != 6)
        return be_bytes(a, n, pos, 4);
    return be_bytes(a, n, pos, 8) * 0x165667B19E3779F9ULL + be_bytes(a, n, pos + 8, 8);
}

/* query_keys(arr, l3, ip_version, sport, dport, payload, out, responses)
 *
 * matching.query_keys_numpy for UDP messages: the 64-bit key a query shares with its
 * response (client address and port, server address and port, DNS id). For responses
 * the client is the destination.
 */
static PyObject *query_keys(PyObject *self, PyObject *args) {
    PyObject *objs[7];
    int responses;
    if (!PyArg_ParseTuple(args, "OOOOOOOp", &objs[0], &objs[1], &objs[2], &objs[3], &objs[4],
                          &objs[5], &objs[6], &responses))
        return NULL;
    static const BufSpec spec[7] = {
        {0, 1, "arr", 0}, {0, 8, "l3", 1}, {0, 8, "ip_version", 1}, {0, 8, "sport", 1},
        {0, 8, "dport", 1}, {0, 8, "payload", 1}, {1, 8, "out", 1}};
    Py_buffer views[7];
    int got = 0;
    Py_ssize_t count;
    PyObject *result = NULL;
    if (get_views(objs, views, spec, 7, &got, &count) < 0)
        goto done;
    const uint8_t *a = views[0].buf;
    const int64_t n = views[0].len;
    const int64_t *l3 = views[1].buf, *ver = views[2].buf, *sport = views[3].buf;
    const int64_t *dport = views[4].buf, *payload = views[5].buf;
    uint64_t *out = views[6].buf;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < count; i++) {
        int v6 = ver[i] == 6;
        uint64_t src = fold_ip(a, n, l3[i] + (v6 ? 8 : 12), ver[i]);
        uint64_t dst = fold_ip(a, n, l3[i] + (v6 ? 24 : 16), ver[i]);
        uint64_t client = responses ? dst : src, server = responses ? src : dst;
        uint64_t cport = (uint64_t)(responses ? dport[i] : sport[i]);
        uint64_t sport_ = (uint64_t)(responses ? sport[i] : dport[i]);
        uint64_t mix = (cport << 32) | (sport_ << 16) | (uint64_t)u16(a, n, payload[i]);
        out[i] = client * 0x9E3779B97F4A7C15ULL + server * 0xC2B2AE3D27D4EB4FULL + mix;
    }
    Py_END_ALLOW_THREADS
    result = Py_NewRef(Py_None);
done:
    release_views(views, spec, got);
    return result;
}

/* Bytes a name may hold and still print as itself (message._PLAIN_NAME, without the dot). */
static int plain_name_byte(uint8_t b) {
    return (b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z') || (b >= '0' && b <= '9') ||
           b == '_' || b == '*' || b == '-';
}


/* What parse_clean reads from a clean response. */
typedef struct {
    unsigned dns_id, flags, qtype, qclass, rcode, udp_size;
    int has_opt, dnssec_ok;
    Py_ssize_t question_end; /* the question is m[12:question_end] */
    Py_ssize_t name_len;
    char name[256];
} Clean;

/* Decode the common, clean response into ``out``, appending each EDE option's info-code and
 * text to ``codes`` and ``texts``. Return 1 when the message is clean; 0 when it is not and
 * the Python decoder must take it (then nothing stays appended); -1 with an exception set.
 *
 * Clean means: one question whose name prints as itself, RRs that parse, at most one OPT,
 * EDE texts in valid UTF-8, no Report-Channel. This mirrors message._parse step by step.
 */
static int parse_clean(const uint8_t *m, Py_ssize_t n, Clean *out, PyObject *codes,
                       PyObject *texts, PyObject *strings) {
    Py_ssize_t appended_from = PyList_GET_SIZE(codes);
    if (n < 12)
        goto fallback;
    out->dns_id = (m[0] << 8) | m[1];
    out->flags = (m[2] << 8) | m[3];
    unsigned qd = (m[4] << 8) | m[5], an = (m[6] << 8) | m[7], ns = (m[8] << 8) | m[9];
    unsigned ar = (m[10] << 8) | m[11];
    if (qd != 1)
        goto fallback;
    Py_ssize_t off = 12;
    int wire = 0;
    out->name_len = 0;
    for (;;) { /* the question name: plain labels only, no pointers */
        if (off >= n)
            goto fallback;
        uint8_t len = m[off];
        if (len == 0) {
            off += 1;
            break;
        }
        if (len > 63)
            goto fallback;
        wire += len + 1;
        if (wire > 255 || off + 1 + len > n)
            goto fallback;
        if (out->name_len)
            out->name[out->name_len++] = '.';
        for (int k = 1; k <= len; k++) {
            if (!plain_name_byte(m[off + k]))
                goto fallback;
            out->name[out->name_len++] = (char)m[off + k];
        }
        off += len + 1;
    }
    if (off + 4 > n)
        goto fallback;
    out->qtype = (m[off] << 8) | m[off + 1];
    out->qclass = (m[off + 2] << 8) | m[off + 3];
    off += 4;
    out->question_end = off;
    for (unsigned i = 0; i < an + ns; i++) {
        off = skip_name(m, n, off);
        if (off < 0 || off + 10 > n)
            goto fallback;
        off += 10 + ((m[off + 8] << 8) | m[off + 9]);
        if (off > n)
            goto fallback;
    }
    out->rcode = out->flags & 0xF;
    out->has_opt = out->dnssec_ok = 0;
    out->udp_size = 0;
    for (unsigned i = 0; i < ar; i++) {
        if (off >= n)
            goto fallback;
        Py_ssize_t at = skip_name(m, n, off);
        if (at < 0 || at + 10 > n)
            goto fallback;
        unsigned rtype = (m[at] << 8) | m[at + 1], rclass = (m[at + 2] << 8) | m[at + 3];
        uint32_t ttl = ((uint32_t)m[at + 4] << 24) | ((uint32_t)m[at + 5] << 16) |
                       ((uint32_t)m[at + 6] << 8) | m[at + 7];
        Py_ssize_t pos = at + 10, stop = pos + ((m[at + 8] << 8) | m[at + 9]);
        if (stop > n)
            goto fallback;
        if (rtype == 41) {
            if (out->has_opt)
                goto fallback; /* a second OPT is a problem the Python decoder names */
            out->has_opt = 1;
            out->udp_size = rclass;
            out->rcode |= (ttl >> 24) << 4;
            out->dnssec_ok = (ttl & 0x8000) != 0;
            while (pos < stop) {
                if (pos + 4 > stop)
                    goto fallback;
                unsigned code = (m[pos] << 8) | m[pos + 1], olen = (m[pos + 2] << 8) | m[pos + 3];
                pos += 4;
                if (pos + olen > stop || code == 18)
                    goto fallback;
                if (code == 15) {
                    if (olen < 2)
                        goto fallback;
                    Py_ssize_t tlen = olen - 2;
                    if (tlen && m[pos + 2 + tlen - 1] == 0) /* tolerate one trailing NUL */
                        tlen--;
                    PyObject *text = PyUnicode_DecodeUTF8((const char *)m + pos + 2, tlen, NULL);
                    if (text == NULL) {
                        if (!PyErr_ExceptionMatches(PyExc_UnicodeDecodeError))
                            goto error;
                        PyErr_Clear();
                        goto fallback;
                    }
                    if (strings != NULL) { /* one object per distinct text */
                        PyObject *same = PyDict_SetDefault(strings, text, text);
                        if (same == NULL) {
                            Py_DECREF(text);
                            goto error;
                        }
                        Py_INCREF(same);
                        Py_SETREF(text, same);
                    }
                    PyObject *info = PyLong_FromLong((m[pos] << 8) | m[pos + 1]);
                    int failed = info == NULL || PyList_Append(codes, info) < 0 ||
                                 PyList_Append(texts, text) < 0;
                    Py_XDECREF(info);
                    Py_DECREF(text);
                    if (failed)
                        goto error;
                }
                pos += olen;
            }
        }
        off = stop;
    }
    return 1;
fallback:
    if (PyList_SetSlice(codes, appended_from, PY_SSIZE_T_MAX, NULL) < 0 ||
        PyList_SetSlice(texts, appended_from, PY_SSIZE_T_MAX, NULL) < 0)
        return -1;
    return 0;
error:
    return -1;
}

static PyObject *clean_qname(const Clean *c) {
    return c->name_len ? PyUnicode_DecodeASCII(c->name, c->name_len, NULL)
                       : PyUnicode_FromString(".");
}

/* parse_response(msg) -> tuple | None
 *
 * message.parse_response for one clean response (see parse_clean); None leaves the message
 * to the Python decoder. The tuple is DnsResponse's first ten fields and a list of
 * (info-code, extra text).
 */
static PyObject *parse_response(PyObject *self, PyObject *arg) {
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    Clean c;
    PyObject *codes = PyList_New(0), *texts = PyList_New(0), *result = NULL;
    if (codes == NULL || texts == NULL)
        goto done;
    int state = parse_clean(view.buf, view.len, &c, codes, texts, NULL);
    if (state < 0)
        goto done;
    if (state == 0) {
        result = Py_NewRef(Py_None);
        goto done;
    }
    Py_ssize_t count = PyList_GET_SIZE(codes);
    PyObject *edes = PyList_New(count);
    if (edes == NULL)
        goto done;
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *pair = PyTuple_Pack(2, PyList_GET_ITEM(codes, i), PyList_GET_ITEM(texts, i));
        if (pair == NULL) {
            Py_DECREF(edes);
            goto done;
        }
        PyList_SET_ITEM(edes, i, pair);
    }
    result = Py_BuildValue(
        "(IINIINIONNN)", c.dns_id, c.flags, clean_qname(&c), c.qtype, c.qclass,
        PyBytes_FromStringAndSize((const char *)view.buf + 12, c.question_end - 12), c.rcode,
        c.has_opt ? Py_True : Py_False,
        c.has_opt ? PyLong_FromUnsignedLong(c.udp_size) : Py_NewRef(Py_None),
        c.has_opt ? PyBool_FromLong(c.dnssec_ok) : Py_NewRef(Py_None), edes);
done:
    Py_XDECREF(codes);
    Py_XDECREF(texts);
    PyBuffer_Release(&view);
    return result;
}

/* Columns of decode_responses' message rows. */
enum { R_CANDIDATE, R_DNS_ID, R_FLAGS, R_QTYPE, R_QCLASS, R_RCODE, R_UDP_SIZE, R_DO, R_EDES,
       R_QUESTION_LEN, R_COLUMNS };

/* decode_responses(arr, payload, payload_len, strings) -> (rows, qnames, codes, texts)
 *
 * parse_clean over every candidate response of a chunk. ``rows`` holds R_COLUMNS int64 per
 * clean message, starting with the candidate's index; ``qnames`` one name per clean
 * message; ``codes`` and ``texts`` one entry per EDE option, in message order. Candidates
 * missing from ``rows`` are left to the Python decoder. Names and texts are looked up in
 * the dict ``strings`` (and added to it), so equal ones are one object.
 */
static PyObject *decode_responses(PyObject *self, PyObject *args) {
    PyObject *objs[3], *strings;
    if (!PyArg_ParseTuple(args, "OOOO!", &objs[0], &objs[1], &objs[2], &PyDict_Type, &strings))
        return NULL;
    static const BufSpec spec[3] = {
        {0, 1, "arr", 0}, {0, 8, "payload", 1}, {0, 8, "payload_len", 1}};
    Py_buffer views[3];
    int got = 0;
    Py_ssize_t count;
    PyObject *rows = NULL, *qnames = NULL, *codes = NULL, *texts = NULL, *result = NULL;
    if (get_views(objs, views, spec, 3, &got, &count) < 0)
        goto done;
    const uint8_t *a = views[0].buf;
    const int64_t n = views[0].len, *payload = views[1].buf, *plen = views[2].buf;
    rows = PyBytes_FromStringAndSize(NULL, count * R_COLUMNS * (Py_ssize_t)sizeof(int64_t));
    qnames = PyList_New(0);
    codes = PyList_New(0);
    texts = PyList_New(0);
    if (rows == NULL || qnames == NULL || codes == NULL || texts == NULL)
        goto done;
    int64_t *row = (int64_t *)PyBytes_AS_STRING(rows);
    Py_ssize_t taken = 0;
    for (Py_ssize_t i = 0; i < count; i++) {
        if (payload[i] < 0 || plen[i] < 0 || payload[i] + plen[i] > n)
            continue; /* cannot happen for the classifier's candidates; never read past */
        Py_ssize_t before = PyList_GET_SIZE(codes);
        Clean c;
        int state = parse_clean(a + payload[i], plen[i], &c, codes, texts, strings);
        if (state < 0)
            goto done;
        if (state == 0)
            continue;
        PyObject *name = clean_qname(&c), *same = NULL;
        if (name == NULL || (same = PyDict_SetDefault(strings, name, name)) == NULL ||
            PyList_Append(qnames, same) < 0) {
            Py_XDECREF(name);
            goto done;
        }
        Py_DECREF(name);
        int64_t *r = row + taken * R_COLUMNS;
        r[R_CANDIDATE] = i;
        r[R_DNS_ID] = c.dns_id;
        r[R_FLAGS] = c.flags;
        r[R_QTYPE] = c.qtype;
        r[R_QCLASS] = c.qclass;
        r[R_RCODE] = c.rcode;
        r[R_UDP_SIZE] = c.has_opt ? (int64_t)c.udp_size : -1;
        r[R_DO] = c.has_opt ? c.dnssec_ok : -1;
        r[R_EDES] = PyList_GET_SIZE(codes) - before;
        r[R_QUESTION_LEN] = c.question_end - 12;
        taken++;
    }
    if (_PyBytes_Resize(&rows, taken * R_COLUMNS * (Py_ssize_t)sizeof(int64_t)) < 0)
        goto done;
    result = PyTuple_Pack(4, rows, qnames, codes, texts);
done:
    Py_XDECREF(rows);
    Py_XDECREF(qnames);
    Py_XDECREF(codes);
    Py_XDECREF(texts);
    release_views(views, spec, got);
    return result;
}

/* gather(arr, starts, lengths) -> bytes
 *
 * The byte ranges arr[starts[i]:starts[i] + lengths[i]], one after another: the queries a
 * chunk holds, copied out so that the chunk itself need not be kept (matching.QueryTable).
 * A range outside ``arr`` is an error, as in the twin (matching.gather_numpy).
 */
static PyObject *gather(PyObject *self, PyObject *args) {
    PyObject *objs[3];
    if (!PyArg_ParseTuple(args, "OOO", &objs[0], &objs[1], &objs[2]))
        return NULL;
    static const BufSpec spec[3] = {
        {0, 1, "arr", 0}, {0, 8, "starts", 1}, {0, 8, "lengths", 1}};
    Py_buffer views[3];
    int got = 0;
    Py_ssize_t count;
    PyObject *result = NULL;
    if (get_views(objs, views, spec, 3, &got, &count) < 0)
        goto done;
    const uint8_t *a = views[0].buf;
    const int64_t n = views[0].len;
    const int64_t *starts = views[1].buf, *lengths = views[2].buf;
    int64_t total = 0;
    for (Py_ssize_t i = 0; i < count; i++) {
        if (starts[i] < 0 || lengths[i] < 0 || starts[i] > n || lengths[i] > n - starts[i]) {
            PyErr_Format(PyExc_ValueError, "range %zd is outside the buffer", i);
            goto done;
        }
        total += lengths[i];  /* at most count * n: no overflow for any real buffer */
    }
    result = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)total);
    if (result == NULL)
        goto done;
    uint8_t *out = (uint8_t *)PyBytes_AS_STRING(result);
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < count; i++) {
        memcpy(out, a + starts[i], (size_t)lengths[i]);
        out += lengths[i];
    }
    Py_END_ALLOW_THREADS
done:
    release_views(views, spec, got);
    return result;
}

static PyMethodDef methods[] = {
    {"pcap_records", pcap_records, METH_VARARGS, "Walk classic pcap records."},
    {"pcapng_epbs", pcapng_epbs, METH_VARARGS, "Walk consecutive pcapng Enhanced Packet Blocks."},
    {"classify", classify, METH_VARARGS, "Classify a chunk of packets (see fastpath)."},
    {"query_keys", query_keys, METH_VARARGS, "Keys pairing UDP queries with responses."},
    {"parse_response", parse_response, METH_O, "Decode a clean DNS response (see message)."},
    {"decode_responses", decode_responses, METH_VARARGS, "Decode a chunk's clean responses."},
    {"gather", gather, METH_VARARGS, "Copy byte ranges out of a buffer, one after another."},
    {"zone_scan", zone_scan, METH_VARARGS, "Count and flag zone-cut evidence (see zonecuts)."},
    {"dnstap_frames", dnstap_frames, METH_VARARGS, "Decode dnstap data frames (see dnstap)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "analyzer._speedups",
    "Compiled twins of the record walk and the packet classifier.", -1, methods,
};

PyMODINIT_FUNC PyInit__speedups(void) {
    if (tcpstreams_ready() < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    if (PyModule_AddObjectRef(m, "TcpStreams", (PyObject *)&TcpStreamsType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
