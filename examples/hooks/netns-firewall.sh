#!/bin/sh
# gwlbtun hook for an endpoint in a network namespace of its own (`netns=NAME` in the endpoints
# file, or --netns-per-endpoint): one-arm routing and a plain stateful firewall, nothing else.
# gwlbtun runs it inside the endpoint's namespace (ip netns exec), so every command here sees
# only this endpoint's interfaces, routes, nftables tables and conntrack entries: two endpoints
# whose customers use identical addresses and ports need no zones, marks or per-endpoint routing
# tables (compare overlapping-cidrs.sh, which does that in one shared namespace).
#
#   endpoints file:  vpce-0123456789abcdef0  consumer-a  netns=consumer-a
#   gwlbtun --endpoints FILE -c /path/netns-firewall.sh -r /path/netns-firewall.sh
# Arguments: CREATE|DESTROY gwi-<X> gwo-<X> <ENI hex>
#
# The firewall (nftables table inet gwlbtun_fw, in this namespace only): forwarded traffic must
# enter on gwi-, and leave on gwo-; conntrack drops what it finds invalid; replies and related
# packets (ICMP errors) of accepted connections pass. Edit the `new` rule to filter.
# gwlbtun has already set forwarding, rp_filter 0 and the IPv6 settings in the namespace.
set -eu
op=$1 gwi=$2 gwo=$3 eni=$4

case "$op" in
CREATE)
  command -v nft >/dev/null 2>&1 || { echo "netns-firewall: needs nft" >&2; exit 1; }
  # The namespace is the endpoint's alone: its main table is its routing table.
  ip route replace default dev "$gwo"
  ip -6 route replace default dev "$gwo"
  nft -f - <<EOF
table inet gwlbtun_fw
delete table inet gwlbtun_fw
table inet gwlbtun_fw {
  chain forward {
    type filter hook forward priority filter; policy drop;
    ct state invalid counter drop
    ct state established,related counter accept
    iifname "$gwi" oifname "$gwo" ct state new counter accept
  }
}
EOF
  echo "netns-firewall: $gwi -> $gwo, stateful firewall on, for vpce-$eni"
  ;;
DESTROY)
  nft delete table inet gwlbtun_fw 2>/dev/null || true
  ip route del default dev "$gwo" 2>/dev/null || true
  ip -6 route del default dev "$gwo" 2>/dev/null || true
  echo "netns-firewall: removed for vpce-$eni"
  ;;
*)
  echo "netns-firewall: unknown operation '$op'" >&2
  exit 1
  ;;
esac
