/* Shared between the C files of analyzer._speedups. */
#ifndef EDE_PCAP_SPEEDUPS_H
#define EDE_PCAP_SPEEDUPS_H

#include <Python.h>

/* _tcpstreams.c: DNS-over-TCP reassembly, exposed as _speedups.TcpStreams. */
extern PyTypeObject TcpStreamsType;
int tcpstreams_ready(void); /* interns its category strings and readies the type */

/* _zonecuts.c: the zone-cut evidence scan (analyzer.zonecuts.zone_scan_py's twin). */
PyObject *zone_scan(PyObject *self, PyObject *args);

#endif
