#!/usr/bin/env bash
# Capture a real resolver's EDE answers inside real Linux tunnels, as a mirror delivers them.
#
# Needs root (network namespaces), Debian's unbound, bind9-utils (dnssec-signzone),
# bind9-dnsutils (dig), tcpdump, iproute2 and iptables. Writes tests/real/*.pcap; run it
# again to remake them (keys and timestamps change; the tests assert on what holds).
#
# Two namespaces joined by a veth pair (the "underlay", 10.99.0.0/24 and fd99::/64): "res"
# runs Unbound 1.17 validating two local signed zones (shop.example, signatures expired in
# 2020: EDE 9 then 6; good.example, valid), "cli" asks with dig through one tunnel at a
# time. tcpdump on the client's underlay interface sees what the kernel wrote.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=$(mktemp -d)
[[ ${KEEP:-} ]] || trap 'pkill -f "unbound -c $WORK" || true; ip netns del res 2>/dev/null || true; ip netns del cli 2>/dev/null || true; rm -rf "$WORK"' EXIT

# -- two signed zones: shop.example expired, good.example valid ---------------------------
cd "$WORK"
for z in shop.example good.example; do
    printf '$ORIGIN %s.\n$TTL 300\n@ SOA ns host 1 3600 600 86400 300\n@ NS ns\nns A 192.0.2.1\nwww A 192.0.2.80\napi A 192.0.2.81\n' "$z" > "$z.zone"
    dnssec-keygen -q -a ECDSAP256SHA256 -f KSK "$z" > /dev/null
    dnssec-keygen -q -a ECDSAP256SHA256 "$z" > /dev/null
    cat K"$z"*.key >> "$z.zone"
done
dnssec-signzone -P -q -s 20200101000000 -e 20200201000000 -o shop.example -f shop.example.signed shop.example.zone > /dev/null
dnssec-signzone -q -o good.example -f good.example.signed good.example.zone > /dev/null
grep -h DNSKEY K*.key | grep -v '^;' > anchors.txt
sed "s#@DIR@#$WORK#g" "$HERE/unbound.conf.in" > unbound.conf

# -- the underlay -----------------------------------------------------------------------------
ip netns add res
ip netns add cli
ip link add res0 netns res type veth peer name cli0 netns cli
for ns in res cli; do ip -n $ns link set lo up; done
ip -n res addr add 10.99.0.1/24 dev res0
ip -n cli addr add 10.99.0.2/24 dev cli0
ip -n res addr add fd99::1/64 dev res0 nodad
ip -n cli addr add fd99::2/64 dev cli0 nodad
ip -n res link set res0 up
ip -n cli link set cli0 up

# VXLAN (VNI 100) between the two. GRE, Geneve, IP in IP, the IPv6 tunnels and VLAN
# devices need kernel modules the machine these were made on did not have; the scapy
# samples in samples/tunnels/ cover them.
for pair in "res 10.99.0.1 10.99.0.2 53" "cli 10.99.0.2 10.99.0.1 10"; do
    read -r ns local remote host <<< "$pair"
    ip -n "$ns" link add vx0 type vxlan id 100 dstport 4789 local "$local" remote "$remote"
    ip -n "$ns" addr add "10.1.0.$host/24" dev vx0
    ip -n "$ns" link set vx0 up
done

ip netns exec res unbound -c "$WORK/unbound.conf" &
sleep 2

ask() {  # ask SERVER: the three names, UDP
    for name in www.shop.example api.shop.example www.good.example; do
        ip netns exec cli dig +tries=1 +time=2 @"$1" "$name" A > /dev/null || true
    done
}
capture() {  # capture OUT SERVER: what the client's underlay carries while it asks
    ip netns exec cli tcpdump -q -n -U --immediate-mode -Z root -i cli0 -w "$HERE/$1" 'not arp and not icmp6' 2> /dev/null &
    local pid=$!
    sleep 2
    ask "$2"
    sleep 1
    kill "$pid"
    wait "$pid" || true
}
capture vxlan.pcap 10.1.0.53
# tcpdump -i any on a VTEP: every response twice, inside VXLAN on cli0 and bare on vx0
# (Linux cooked v2).
ip netns exec cli tcpdump -q -n -U --immediate-mode -Z root -i any -w "$HERE/vxlan-any.pcap" 'udp' 2> /dev/null &
pid=$!
sleep 2
ask 10.1.0.53
sleep 1
kill "$pid"
wait "$pid" || true

# NFLOG: the resolver logs its own DNS packets to group 5 (iptables -j NFLOG)
ip netns exec res iptables -A INPUT -p udp --dport 53 -j NFLOG --nflog-group 5
ip netns exec res iptables -A OUTPUT -p udp --sport 53 -j NFLOG --nflog-group 5
ip netns exec res tcpdump -q -n -U --immediate-mode -Z root -i nflog:5 -w "$HERE/nflog.pcap" 2> /dev/null &
pid=$!
sleep 2
ask 10.99.0.1
sleep 1
kill "$pid"
wait "$pid" || true
ls -la "$HERE"/*.pcap
