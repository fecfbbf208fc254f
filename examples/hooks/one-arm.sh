#!/bin/sh
# gwlbtun hook: one-arm mode. Traffic from GWLB arrives on gwi-<X>; the kernel routes it back out
# of gwo-<X> (policy routing on the ingress interface), and gwlbtun returns it to GWLB. Filter it
# on the way with iptables/nftables FORWARD rules.
#
#   gwlbtun -c /path/one-arm.sh -r /path/one-arm.sh
# Arguments: CREATE|DESTROY gwi-<X> gwo-<X> <ENI hex>
set -eu
op=$1 gwi=$2 gwo=$3 eni=$4

# One routing table per endpoint, numbered from the ENI ID so that CREATE and DESTROY agree
# (ifindex would not: on DESTROY after an external deletion the interface may be gone).
table=$(( 0x$(printf '%s' "$eni" | tail -c 6) % 200000000 + 10000 ))

case "$op" in
CREATE)
  echo 1 > /proc/sys/net/ipv4/ip_forward
  echo 1 > /proc/sys/net/ipv6/conf/all/forwarding
  # GWLB's traffic has sources that are not routed via gwi-: turn reverse-path filtering off.
  echo 0 > /proc/sys/net/ipv4/conf/all/rp_filter
  echo 0 > "/proc/sys/net/ipv4/conf/$gwi/rp_filter"
  ip rule add iif "$gwi" lookup "$table" 2>/dev/null || true
  ip route replace default dev "$gwo" table "$table"
  ip -6 rule add iif "$gwi" lookup "$table" 2>/dev/null || true
  ip -6 route replace default dev "$gwo" table "$table"
  echo "one-arm: $gwi -> $gwo (table $table) for vpce-$eni"
  ;;
DESTROY)
  ip rule del iif "$gwi" lookup "$table" 2>/dev/null || true
  ip -6 rule del iif "$gwi" lookup "$table" 2>/dev/null || true
  ip route flush table "$table" 2>/dev/null || true
  ip -6 route flush table "$table" 2>/dev/null || true
  echo "one-arm: removed $gwi (table $table)"
  ;;
*)
  echo "one-arm: unknown operation '$op'" >&2
  exit 1
  ;;
esac
