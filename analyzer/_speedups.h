/* Shared between the C files of analyzer._speedups. */
#ifndef EDE_PCAP_SPEEDUPS_H
#define EDE_PCAP_SPEEDUPS_H

#include <Python.h>
#include <stdint.h>

/* Past the DNS name at ``off`` (labels, or a compression pointer that ends it), or -1 where
 * it runs past ``n`` or a label length is reserved: where message._skip_name would raise. */
static inline Py_ssize_t skip_name(const uint8_t *m, Py_ssize_t n, Py_ssize_t off) {
    for (;;) {
        if (off >= n)
            return -1;
        uint8_t len = m[off];
        if (len == 0)
            return off + 1;
        if (len >= 0xC0)
            return off + 1 < n ? off + 2 : -1;
        if (len > 63)
            return -1;
        off += len + 1;
    }
}

/* _tcpstreams.c: DNS-over-TCP reassembly, exposed as _speedups.TcpStreams. */
extern PyTypeObject TcpStreamsType;
int tcpstreams_ready(void); /* interns its category strings and readies the type */

/* _zonecuts.c: the zone-cut evidence scan (analyzer.zonecuts.zone_scan_py's twin). */
PyObject *zone_scan(PyObject *self, PyObject *args);

/* _dnstap.c: dnstap data frames -> DNS messages (analyzer.dnstap.walk_py's twin). */
PyObject *dnstap_frames(PyObject *self, PyObject *args);

#endif
