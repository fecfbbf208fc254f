#!/bin/sh
# gwlbtun hook: one-arm mode for customers whose address ranges overlap.
#
# Every GWLB endpoint (one per customer VPC, say) gets its own pair gwi-<X>/gwo-<X>. Customers pick
# their private ranges freely, so two endpoints can carry flows with byte-identical 5-tuples
# (10.0.0.5:40000 -> 192.0.2.80:443 from customer A and from customer B). Linux must keep them
# apart in three places, and this hook sets up all three per endpoint:
#
#  1. Routing. Traffic that came in on gwi-<X> leaves through gwo-<X> (and so goes back to GWLB on
#     endpoint X), never through another endpoint's gwo-: a routing table per endpoint, chosen by
#     the ingress interface ('ip rule ... iif gwi-<X>'). The main table is never consulted, so no
#     route of the appliance itself (and no other customer's) can capture customer traffic.
#  2. Connection tracking. conntrack identifies a connection by its 5-tuple alone, so identical
#     tuples of A and B would be ONE connection: A's SYN and B's mid-stream segment would meet in
#     the same entry (B's segment then counts as invalid and a stateful firewall drops it), and
#     NAT bindings and connection marks would be shared. A conntrack zone per endpoint makes them
#     separate connections.
#  3. Packets the appliance sends itself towards a customer (the TCP reset or ICMP error of a
#     REJECT rule, the connections a local transparent TCP proxy accepts) never came in on a
#     gwi-, and their destination address exists behind several endpoints. Every packet from
#     gwi-<X> is marked with the endpoint's number; the kernel copies that mark onto its answers
#     (fwmark_reflect) and onto accepted TCP connections (tcp_fwmark_accept); an 'ip rule ...
#     fwmark' sends marked packets to the endpoint's table. The connection carries the mark too
#     (ct mark, per zone, so per endpoint): policy rules can match the endpoint where the ingress
#     interface is no longer known, and the appliance's own packets of a tracked connection get the
#     mark back in OUTPUT.
#
#   gwlbtun -c /path/overlapping-cidrs.sh -r /path/overlapping-cidrs.sh
# Arguments: CREATE|DESTROY gwi-<X> gwo-<X> <ENI hex>
# Environment (gwlbtun passes its own environment to hooks):
#   GWLBTUN_FIREWALL  nft | iptables | auto (default: nft when installed, else iptables)
#
# Numbers: each endpoint gets a number n (1..65000; from its ENI ID, the next free one on a
# clash): conntrack zone n, packet/connection mark and routing table 100000+n (ip rule prints the
# mark in hex: 0x186a5 for n = 5). Nothing is stored on disk: DESTROY finds n again from the
# 'iif gwi-<X>' rule, and removes the firewall rules by their name/tag, which contains the ENI ID.
# The hook owns the whole 32-bit mark of customer packets; an appliance that uses marks for its own
# policy should adapt the MARK rules to a mask.
#
# This hook only separates and routes; put your inspection policy (filter rules) where you like.
# Stateful rules now see each endpoint's connections separately; match '-i gwi-<X>' (or the
# mark) to give endpoints different policies.
set -eu
op=${1:-} gwi=${2:-} gwo=${3:-} eni=${4:-}
me=overlapping-cidrs

BASE=100000          # routing table and mark = BASE + n
PREF_IIF=1000        # 'ip rule' priorities: the ingress rule first,
PREF_MARK=1001       # then the mark rule (locally generated packets)
NUM_BASE=$BASE
tag="gwlbtun-$eni"   # iptables comment on every rule of this endpoint
nft_table="gwlbtun_$eni"

# ---- helpers -------------------------------------------------------------------------------------

. "$(dirname "$0")/hooks-common.sh"   # die, pick_firewall, take_lock, current_n, allocate_n,
                                      # iptables_remove_tagged, firewall_remove, rules_del


# ---- the endpoint's firewall part: zone, marks -----------------------------------------------------

firewall_add_nft() {
  # One table per endpoint, replaced as a whole: the first two lines make sure it exists, then
  # delete it, so that running CREATE twice leaves exactly one copy (nft applies the file atomically).
  nft -f - <<EOF
table inet $nft_table
delete table inet $nft_table
table inet $nft_table {
  # Conntrack zone of everything from this endpoint. Priority -450 runs before defragmentation
  # (-400), so even fragment reassembly is per endpoint; conntrack itself runs at -200.
  chain ep_zone {
    type filter hook prerouting priority -450; policy accept;
    iifname "$gwi" ct zone set $n
  }
  # Mark the packet (for routing) and its connection (so the appliance's own packets of the
  # connection can be marked again, below).
  chain ep_mark {
    type filter hook prerouting priority mangle; policy accept;
    iifname "$gwi" meta mark set $mark ct mark set $mark
  }
  # Packets the appliance itself sends on one of the endpoint's connections (a proxy's replies)
  # get the endpoint's mark; a 'route' chain makes the kernel route the packet again after a
  # mark change, now through the endpoint's table.
  chain ep_local_out {
    type route hook output priority mangle; policy accept;
    ct mark $mark meta mark set $mark
  }
}
EOF
}

firewall_add_iptables() {
  iptables_remove_tagged   # CREATE twice leaves one copy
  for cmd in iptables ip6tables; do
    # The raw table runs before conntrack: the CT target sets the endpoint's zone. (The raw table
    # runs after defragmentation, so unlike the nft variant, reassembly is not per endpoint.)
    "$cmd" -w -t raw -A PREROUTING -i "$gwi" -m comment --comment "$tag" -j CT --zone "$n"
    # Mark the packet (for routing) and its connection.
    "$cmd" -w -t mangle -A PREROUTING -i "$gwi" -m comment --comment "$tag" -j MARK --set-mark "$mark"
    "$cmd" -w -t mangle -A PREROUTING -i "$gwi" -m comment --comment "$tag" -j CONNMARK --set-mark "$mark"
    # The appliance's own packets of the endpoint's connections get the mark back; a mark change
    # in the mangle OUTPUT chain makes the kernel route the packet again.
    "$cmd" -w -t mangle -A OUTPUT -m connmark --mark "$mark" -m comment --comment "$tag" -j MARK --set-mark "$mark"
  done
}

# ---- CREATE / DESTROY -------------------------------------------------------------------------------

case "$op" in
CREATE)
  [ "$gwo" != none ] || die "gwlbtun runs with --no-return: there is no gwo- to route back to"
  pick_firewall
  take_lock
  n=$(allocate_n)
  mark=$((BASE + n))
  table=$mark

  # The kernel must forward between interfaces (IPv4 and IPv6).
  # Note: with forwarding on, the kernel ignores IPv6 router advertisements on interfaces whose
  # accept_ra is 1; set accept_ra=2 on an interface that gets its IPv6 default route by RA.
  echo 1 > /proc/sys/net/ipv4/ip_forward
  echo 1 > /proc/sys/net/ipv6/conf/all/forwarding
  # Customer addresses are not routed via gwi-<X> (they are not routed anywhere in the main
  # table), so reverse-path filtering would drop everything: turn it off for gwi-<X>.
  echo 0 > /proc/sys/net/ipv4/conf/all/rp_filter
  echo 0 > "/proc/sys/net/ipv4/conf/$gwi/rp_filter"
  # TCP resets and ICMP errors the kernel sends in answer to a packet carry that packet's mark
  # (fwmark_reflect), and so does a TCP connection a local proxy accepts (tcp_fwmark_accept):
  # both are then routed back through the right endpoint.
  echo 1 > /proc/sys/net/ipv4/fwmark_reflect
  echo 1 > /proc/sys/net/ipv6/fwmark_reflect
  echo 1 > /proc/sys/net/ipv4/tcp_fwmark_accept

  # The endpoint's table: everything goes back out of gwo-<X>.
  ip -4 route replace default dev "$gwo" table "$table"
  ip -6 route replace default dev "$gwo" table "$table"
  # Which packets use it: those that came in on gwi-<X>, and those marked with the endpoint's
  # number. 'ip rule add' refuses an exact duplicate, which keeps CREATE repeatable.
  for fam in -4 -6; do
    ip "$fam" rule add pref "$PREF_IIF" iif "$gwi" lookup "$table" 2>/dev/null || true
    ip "$fam" rule add pref "$PREF_MARK" fwmark "$mark" lookup "$table" 2>/dev/null || true
  done

  "firewall_add_$fw"
  echo "$me: $gwi -> $gwo for vpce-$eni: zone $n, mark/table $table ($fw)"
  ;;
DESTROY)
  take_lock
  n=$(current_n)   # before the rules go: it is read from them
  rules_del "${n:+$((BASE + n))}"
  if [ -n "$n" ]; then
    for fam in -4 -6; do ip "$fam" route flush table $((BASE + n)) 2>/dev/null || true; done
    # Forget the endpoint's connections, so that a later endpoint with the same number starts
    # clean (needs the conntrack tool; otherwise they simply time out).
    if command -v conntrack >/dev/null 2>&1; then conntrack -D --zone "$n" >/dev/null 2>&1 || true; fi
  fi
  firewall_remove
  echo "$me: removed $gwi (vpce-$eni${n:+, zone $n})"
  ;;
*)
  die "unknown operation '$op' (expected CREATE or DESTROY)"
  ;;
esac
