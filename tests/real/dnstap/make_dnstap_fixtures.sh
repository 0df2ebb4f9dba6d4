#!/usr/bin/env bash
# Record dnstap written by real resolvers, and a pcap of the same traffic, on loopback.
#
# Writes tests/real/dnstap/<software>.dnstap and <software>.pcap for unbound, bind,
# knot-resolver and dnsdist, then runs oracle.py on them (see README.md beside this file).
# Run it again to remake them: keys, ports, IDs and times change; the tests assert on what
# holds. `./make_dnstap_fixtures.sh unbound bind` remakes only those; KEEP=1 keeps the work
# directory and the namespace for a look afterwards.
#
# Needs root (a network namespace) and Debian 12's packages: bind9 and bind9-utils (named,
# dnssec-keygen, dnssec-signzone), bind9-dnsutils (dig), knot-dnsutils (kdig), unbound,
# knot-resolver, dnsdist, fstrm-bin (fstrm_capture), tcpdump, openssl, iproute2. It
# installs nothing. oracle.py needs tshark and a Python with protobuf, grpcio-tools and
# dnspython (PYTHON=/path/to/python, default .venv/bin/python of the repository).
#
# Everything runs in a fresh network namespace, so no other DNS server on the machine is
# disturbed and nothing leaves the machine:
#   127.0.0.2   authoritative BIND: the signed root ".", "example.", good.example (valid),
#               expired.example (signatures expired in 2020), badds.example (the parent's
#               DS matches no DNSKEY), algo.example and digest.example (unsigned, with a DS
#               of an unassigned algorithm or digest type)
#   127.0.0.3   a second authoritative BIND for stale.example (TTL 2); stopped mid-run so
#               the resolver can only answer from stale cache. lame.example is delegated
#               to it too, but it refuses those queries (a lame delegation)
#   127.0.0.53  the resolver under test, UDP and TCP on 53, DoT on 853; also [::1]:53 and
#               [::1]:853.  For dnsdist, dnsdist listens there and an Unbound without
#               dnstap answers it on 127.0.0.54.
# The resolvers validate with the root's KSK as their only trust anchor. tcpdump writes
# everything on lo (ports 53 and 853); fstrm_capture writes the dnstap stream.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../../.." && pwd)
PYTHON=${PYTHON:-$REPO/.venv/bin/python}
SOFTWARE=("$@")
[[ ${#SOFTWARE[@]} -gt 0 ]] || SOFTWARE=(unbound bind knot-resolver dnsdist)
NS=edetap$$
WORK=$(mktemp -d /tmp/dnstap-fixtures.XXXXXX)
PIDS=()

cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    sleep 1
    [[ ${KEEP:-} ]] && { echo "kept $WORK and namespace $NS" >&2; return; }
    ip netns del "$NS" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

inns() { ip netns exec "$NS" "$@"; }
start() {  # start NAME CMD...: run CMD in the namespace, logging to $WORK/NAME.log
    local name=$1; shift
    # not through inns: $! must be the daemon itself, not a subshell
    ip netns exec "$NS" "$@" > "$WORK/$name.log" 2>&1 &
    PIDS+=($!)
    eval "PID_${name//-/_}=$!"
}
stop() {  # stop NAME: SIGTERM the process started as NAME and wait for it to flush
    local var="PID_${1//-/_}"
    kill "${!var}" 2>/dev/null || true
    wait "${!var}" 2>/dev/null || true
}
wait_port() {  # wait_port ADDR PORT: until something answers DNS there (at most 10 s)
    local i
    for i in $(seq 50); do
        inns dig +tries=1 +time=1 +norec @"$1" -p "$2" . SOA > /dev/null 2>&1 && return 0
        sleep 0.2
    done
    echo "nothing answers on $1 port $2" >&2
    return 1
}

ip netns add "$NS"
inns ip link set lo up
# BIND listens only on addresses an interface has, not on all of 127.0.0.0/8
for a in 2 3 53 54 200; do inns ip addr add 127.0.0.$a/32 dev lo; done
cd "$WORK"

# -- the signed zone tree ----------------------------------------------------------------------
keys() {  # keys ZONE FILE: a KSK (its name in FILE.ksk) and a ZSK, appended to FILE.zone
    dnssec-keygen -q -a ECDSAP256SHA256 -f KSK "$1" > "$2.ksk"
    dnssec-keygen -q -a ECDSAP256SHA256 "$1" > "$2.zsk"
    cat "$(cat "$2.ksk").key" "$(cat "$2.zsk").key" >> "$2.zone"
}
soa() { printf '$ORIGIN %s\n$TTL %s\n@ SOA ns.example. hostmaster.example. 1 3600 600 86400 60\n' "$1" "$2"; }
for z in good expired badds; do
    { soa "$z.example." 300; printf '@ NS ns.example.\nwww A 192.0.2.80\nwww AAAA 2001:db8::80\napi A 192.0.2.81\n'; } > "$z.example.zone"
    keys "$z.example" "$z.example"
done
# algo.example and digest.example are unsigned; the parent's DS for them names an
# unassigned algorithm (200) or digest type (200), so a validator must treat them as insecure
for z in algo digest; do
    { soa "$z.example." 300; printf '@ NS ns.example.\nwww A 192.0.2.82\n'; } > "$z.example.zone"
done
HEX=$(printf '%064d' 0)
{ soa stale.example. 2; printf '@ NS ns.stale.example.\nns A 127.0.0.3\nwww A 192.0.2.90\n'; } > stale.example.zone
keys stale.example stale.example
dnssec-signzone -q -o good.example -f good.example.signed good.example.zone > /dev/null
dnssec-signzone -q -o stale.example -f stale.example.signed stale.example.zone > /dev/null
dnssec-signzone -q -o badds.example -f badds.example.signed badds.example.zone > /dev/null
dnssec-signzone -P -q -s 20200101000000 -e 20200201000000 -o expired.example \
    -f expired.example.signed expired.example.zone > /dev/null
# badds.example: the parent publishes the DS of a key the child never had
dnssec-keygen -q -a ECDSAP256SHA256 -f KSK badds.example > badds.example.ghost
{
    soa example. 300
    printf '@ NS ns.example.\nns A 127.0.0.2\n'
    for z in good expired badds algo digest; do printf '%s NS ns.example.\n' "$z"; done
    printf 'algo DS 12345 200 2 %s\ndigest DS 12345 13 200 %s\n' "$HEX" "$HEX"
    printf 'stale NS ns.stale.example.\nns.stale A 127.0.0.3\n'
    printf 'lame NS ns.lame.example.\nns.lame A 127.0.0.3\n'
    cat dsset-good.example. dsset-expired.example. dsset-stale.example.
    dnssec-dsfromkey -a SHA-256 "$(cat badds.example.ghost).key"
} > example.zone
keys example example
dnssec-signzone -q -o example -f example.signed example.zone > /dev/null
{
    soa . 300
    printf '@ NS a.root-servers.net.\na.root-servers.net. A 127.0.0.2\n'
    printf 'example. NS ns.example.\nns.example. A 127.0.0.2\n'
    cat dsset-example.
} > root.zone
keys . root
dnssec-signzone -q -o . -f root.signed root.zone > /dev/null
printf '. 3600000 NS a.root-servers.net.\na.root-servers.net. 3600000 A 127.0.0.2\n' > root.hints
grep -v '^;' "$(cat root.ksk).key" > root.anchor  # ". IN DNSKEY 257 3 13 <key>"
ANCHOR_KEY=$(awk '{for (i = 7; i <= NF; i++) printf "%s", $i}' root.anchor)
# a self-signed certificate for DoT
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 -subj /CN=resolver.example \
    -keyout tls.key -out tls.crt > /dev/null 2>&1

# -- authoritative servers ----------------------------------------------------------------------
auth_conf() {  # auth_conf NAME ADDR ZONE FILE [ZONE FILE]...
    local name=$1 addr=$2; shift 2
    mkdir -p "$name"
    {
        printf 'options { directory "%s/%s"; pid-file none; session-keyfile none;\n' "$WORK" "$name"
        printf '  listen-on { %s; }; listen-on-v6 { none; }; recursion no;\n  notify no; dnssec-validation no; };\n' "$addr"
        printf 'controls { };\n'
        while [[ $# -gt 0 ]]; do
            printf 'zone "%s" { type primary; file "%s/%s"; };\n' "$1" "$WORK" "$2"
            shift 2
        done
    } > "$name.conf"
}
auth_conf auth 127.0.0.2 . root.signed example example.signed good.example good.example.signed \
    expired.example expired.example.signed badds.example badds.example.signed \
    algo.example algo.example.zone digest.example digest.example.zone
auth_conf auth-stale 127.0.0.3 stale.example stale.example.signed
start auth named -g -c "$WORK/auth.conf"
wait_port 127.0.0.2 53

# -- resolver configurations --------------------------------------------------------------------
unbound_conf() {  # unbound_conf NAME ADDR DNSTAP(yes|no)
    cat <<EOF
server:
    directory: "$WORK"
    chroot: ""
    username: ""
    pidfile: ""
    use-syslog: no
    verbosity: 1
    num-threads: 1
    interface: $2
    interface: $2@853
    interface: ::1
    interface: ::1@853
    tls-port: 853
    tls-service-key: "$WORK/tls.key"
    tls-service-pem: "$WORK/tls.crt"
    do-ip6: yes
    access-control: 127.0.0.0/8 allow
    access-control: 127.0.0.200/32 refuse
    access-control: ::1/128 allow
    do-not-query-localhost: no
    root-hints: "$WORK/root.hints"
    trust-anchor-file: "$WORK/root.anchor"
    module-config: "validator iterator"
    val-log-level: 2
    ede: yes
    serve-expired: yes
    serve-expired-client-timeout: 0
    ede-serve-expired: yes
    qname-minimisation: no
remote-control:
    control-enable: no
EOF
    [[ $3 == yes ]] && cat <<EOF
dnstap:
    dnstap-enable: yes
    dnstap-socket-path: "$WORK/$1.sock"
    dnstap-send-identity: yes
    dnstap-send-version: yes
    dnstap-identity: "unbound-fixture"
    dnstap-log-client-query-messages: yes
    dnstap-log-client-response-messages: yes
    dnstap-log-resolver-query-messages: yes
    dnstap-log-resolver-response-messages: yes
EOF
    return 0
}

bind_conf() {
    mkdir -p bind
    cat <<EOF
options {
    directory "$WORK/bind";
    pid-file none;
    session-keyfile none;
    listen-on port 53 { 127.0.0.53; };
    listen-on port 853 tls local-tls { 127.0.0.53; };
    listen-on-v6 port 53 { ::1; };
    listen-on-v6 port 853 tls local-tls { ::1; };
    recursion yes;
    allow-query { !127.0.0.200; any; };
    allow-recursion { !127.0.0.200; any; };
    dnssec-validation yes;
    qname-minimization off;
    stale-answer-enable yes;
    stale-cache-enable yes;
    stale-answer-client-timeout 0;
    max-stale-ttl 3600;
    dnstap { client; resolver; };
    dnstap-output unix "$WORK/bind.sock";
    dnstap-identity "bind-fixture";
};
tls local-tls { key-file "$WORK/tls.key"; cert-file "$WORK/tls.crt"; };
controls { };
trust-anchors { . static-key 257 3 13 "$ANCHOR_KEY"; };
zone "." { type hint; file "$WORK/root.hints"; };
EOF
}

kresd_conf() {
    mkdir -p kresd
    cat <<EOF
net.listen('127.0.0.53', 53, { kind = 'dns' })
net.listen('::1', 53, { kind = 'dns' })
net.listen('127.0.0.53', 853, { kind = 'tls' })
net.listen('::1', 853, { kind = 'tls' })
net.tls('$WORK/tls.crt', '$WORK/tls.key')
modules = {
    'hints > iterate',
    'serve_stale < cache',
    'view',
    dnstap = {
        socket_path = '$WORK/knot-resolver.sock',
        identity = 'kresd-fixture',
        client = { log_queries = true, log_responses = true },
    },
}
trust_anchors.remove('.')
trust_anchors.add('$(cat root.anchor)')
hints.root({ ['a.root-servers.net.'] = '127.0.0.2' })
view:addr('127.0.0.200/32', policy.all(policy.REFUSE))
cache.size = 10 * MB
-- the name servers are on 127.0.0.0/8, which kresd ignores in glue unless told
policy.add(policy.all(policy.FLAGS('ALLOW_LOCAL')))
EOF
}

dnsdist_conf() {
    cat <<EOF
setSecurityPollSuffix('')  -- no security-status lookup: it would be sent off the machine
setLocal('127.0.0.53:53')
addLocal('[::1]:53')
addTLSLocal('127.0.0.53:853', '$WORK/tls.crt', '$WORK/tls.key')
addTLSLocal('[::1]:853', '$WORK/tls.crt', '$WORK/tls.key')
-- no health checks: they would add the backend's answers to the capture
newServer({ address = '127.0.0.54:53', healthCheckMode = 'up' })
fsul = newFrameStreamUnixLogger('$WORK/dnsdist.sock')
addAction(AllRule(), DnstapLogAction('dnsdist-fixture', fsul))
refused = newNMG()
refused:addMask('127.0.0.200/32')
addAction(NetmaskGroupRule(refused, true), RCodeAction(DNSRCode.REFUSED))
addResponseAction(AllRule(), DnstapLogResponseAction('dnsdist-fixture', fsul))
addSelfAnsweredResponseAction(AllRule(), DnstapLogResponseAction('dnsdist-fixture', fsul))
EOF
}

# -- the client queries -------------------------------------------------------------------------
d() { inns dig +tries=1 +time=6 "$@" > /dev/null 2>&1 || true; }
k() { inns kdig +edns +tls +retry=0 +timeout=6 "$@" > /dev/null 2>&1 || true; }
ask() {  # ask: the same client queries for every resolver, in a fixed order
    local r=127.0.0.53
    d @$r www.good.example A                 # valid, NOERROR
    d @$r nope.good.example A                # signed NXDOMAIN
    d @$r www.expired.example A              # signatures expired in 2020
    d @$r www.badds.example A                # DS matches no DNSKEY
    d @$r www.lame.example A                 # its server refuses
    d @$r www.stale.example A                # fine now, stale later
    d @$r www.expired.example A              # the bogus answer again, now from cache
    d @$r www.algo.example A                 # DS with an unassigned algorithm: insecure
    d @$r www.digest.example A               # DS with an unassigned digest type: insecure
    d -b 127.0.0.200 @$r www.good.example A  # from a client the ACL refuses
    d +tcp @$r api.good.example A
    d +tcp @$r api.expired.example A
    d @::1 www.good.example AAAA
    d @::1 www.badds.example AAAA
    k @$r www.good.example A
    k @$r api.badds.example A
    k @::1 nope.good.example A
    k @::1 www.expired.example A
    # stale.example's server goes away; once the TTL of 2 s has run out, only stale data is left
    stop auth_stale
    sleep 7
    d @$r www.stale.example A
    d +tcp @$r www.stale.example A
}

record() {  # record SOFTWARE: run the resolver, capture both sides, ask, stop
    local sw=$1 sock="$WORK/$1.sock"
    rm -f "$sock"
    start auth-stale named -g -c "$WORK/auth-stale.conf"
    wait_port 127.0.0.3 53
    start fstrm fstrm_capture -t protobuf:dnstap.Dnstap -u "$sock" -w "$WORK/$sw.dnstap"
    start tcpdump tcpdump -q -n -U --immediate-mode -Z root -i lo -w "$WORK/$sw.pcap" 'port 53 or port 853'
    sleep 1
    case $sw in
        unbound)
            unbound_conf unbound 127.0.0.53 yes > unbound.conf
            start resolver unbound -d -c "$WORK/unbound.conf" ;;
        bind)
            bind_conf > bind.conf
            start resolver named -g -c "$WORK/bind.conf" ;;
        knot-resolver)
            kresd_conf > kresd.conf
            start resolver kresd -n -c "$WORK/kresd.conf" "$WORK/kresd" ;;
        dnsdist)
            unbound_conf backend 127.0.0.54 no | grep -v -e '@853' -e '::1' > backend.conf
            start backend unbound -d -c "$WORK/backend.conf"
            wait_port 127.0.0.54 53
            dnsdist_conf > dnsdist.conf
            start resolver dnsdist --supervised --disable-syslog -C "$WORK/dnsdist.conf" ;;
    esac
    sleep 2
    ask
    sleep 2
    stop resolver
    [[ $sw == dnsdist ]] && stop backend
    sleep 1
    stop fstrm
    stop tcpdump
    mv resolver.log "$sw.log"
    cp "$WORK/$sw.dnstap" "$WORK/$sw.pcap" "$HERE/"
    echo "$sw: $(stat -c %s "$HERE/$sw.dnstap") bytes of dnstap, $(stat -c %s "$HERE/$sw.pcap") bytes of pcap" >&2
}

for sw in "${SOFTWARE[@]}"; do record "$sw"; done
stop auth
if "$PYTHON" -c 'import google.protobuf, grpc_tools, dns.message' 2> /dev/null; then
    "$PYTHON" "$HERE/oracle.py" "${SOFTWARE[@]}"
else
    echo "no protobuf/grpcio-tools/dnspython in $PYTHON: run oracle.py yourself" >&2
fi
