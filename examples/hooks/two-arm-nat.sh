#!/bin/sh
# gwlbtun hook: two-arm mode, the appliance as the customers' NAT gateway to the internet.
#
# How the traffic goes:
#  - Out. The customer's VPC routes internet-bound traffic (0.0.0.0/0, ::/0) to its GWLB endpoint.
#    GWLB sends it to this appliance; gwlbtun writes it into gwi-<X>. The kernel routes it out of
#    the appliance's egress interface ($GWLBTUN_EGRESS_IF, the second "arm"), and masquerades it:
#    the source becomes the egress interface's own address. This direction never returns to GWLB.
#  - Back. The internet answers the appliance's address, on the egress interface. conntrack
#    recognises the answer and reverses the NAT: the destination is the customer's address again.
#    The connection remembers which endpoint it came from (a connection mark), so the answer is
#    routed into gwo-<X> of that endpoint; gwlbtun finds the flow GWLB sent (the answer is its
#    reverse) and returns the answer to GWLB with that flow's Geneve header; GWLB hands it to the
#    endpoint, and so to the customer.
#  - What cannot work, by design: connections opened from the internet towards customers. They
#    have no conntrack entry to reverse, so they stay addressed to the appliance; and gwlbtun
#    drops anything on a flow GWLB never sent (metric reason "no_flow", docs/architecture.md).
#
# Unlike one-arm mode, the answer reaches this very appliance because it is addressed to its NAT
# address, not because GWLB's flow hashing picked it. No packet on the egress interface carries
# a foreign address, so the EC2 source/destination check does not get in the way there.
#
# Several endpoints may share the appliance, and their customers may use the same private
# addresses: each endpoint's connections live in their own conntrack zone in the original
# direction ("zone-orig"), so identical customer 5-tuples stay separate connections and get
# separate NAT bindings, while answers, which arrive on the shared egress interface in the default
# zone, still find them.
#
# MTU: GWLB carries inner packets up to 8500 bytes, the internet usually 1500. TCP is fixed by
# clamping the MSS of connections leaving through the egress interface. For other protocols the
# kernel's ICMP "fragmentation needed" cannot reach the customer: it is not part of a flow GWLB
# sent, so gwlbtun drops it ("no_flow"); large UDP datagrams with DF set are lost.
#
#   GWLBTUN_EGRESS_IF=eth1 gwlbtun -c /path/two-arm-nat.sh -r /path/two-arm-nat.sh
# Arguments: CREATE|DESTROY gwi-<X> gwo-<X> <ENI hex>
# Environment (gwlbtun passes its own environment to hooks):
#   GWLBTUN_EGRESS_IF   the internet-facing interface (default eth1)
#   GWLBTUN_EGRESS_GW   IPv4 next hop on it (default: the gateway of the main table's default
#                       route through that interface, if there is one, else none: on-link)
#   GWLBTUN_EGRESS_GW6  the same for IPv6
#   GWLBTUN_FIREWALL    nft | iptables | auto (default: nft when installed, else iptables)
#
# Numbers: each endpoint gets a number n (1..65000; from its ENI ID, the next free one on a
# clash): conntrack zone n; mark and "back" routing table 100000+n; "out" routing table
# 200000+n. DESTROY finds n again from the 'iif gwi-<X>' rule and removes the firewall rules by
# their name/tag, which contains the ENI ID.
#
# This hook does not filter. If your FORWARD policy drops by default, allow gwi-<X> -> egress,
# and egress -> gwo-<X> for established connections.
set -eu
op=${1:-} gwi=${2:-} gwo=${3:-} eni=${4:-}
me=two-arm-nat
egress=${GWLBTUN_EGRESS_IF:-eth1}

BASE_BACK=100000     # mark and table of answers going back to the customer = BASE_BACK + n
BASE_OUT=200000      # table of customer traffic going out = BASE_OUT + n
PREF_IIF=1000        # 'ip rule' priorities: traffic from gwi-<X> first,
PREF_MARK=1001       # then marked answers
NUM_BASE=$BASE_OUT
tag="gwlbtun-$eni"   # iptables comment on every rule of this endpoint
nft_table="gwlbtun_$eni"

# ---- helpers -------------------------------------------------------------------------------------

. "$(dirname "$0")/hooks-common.sh"   # die, pick_firewall, take_lock, current_n, allocate_n,
                                      # iptables_remove_tagged, firewall_remove, rules_del

# The gateway of the main table's default route through the egress interface, if any.
main_gateway() {  # $1 = -4 or -6
  ip "$1" route show default dev "$egress" 2>/dev/null | sed -n 's/.* via \([^ ]*\).*/\1/p' | head -n 1
}


# ---- the endpoint's firewall part: zone, marks, NAT, MSS ------------------------------------------

firewall_add_nft() {
  # One table per endpoint, replaced as a whole: the first two lines make sure it exists, then
  # delete it, so that running CREATE twice leaves exactly one copy (nft applies the file atomically).
  nft -f - <<EOF
table inet $nft_table
delete table inet $nft_table
table inet $nft_table {
  # The endpoint's conntrack zone, for the original direction only (see the top of the file).
  # Priority -450 runs before defragmentation (-400) and conntrack (-200).
  chain ep_zone {
    type filter hook prerouting priority -450; policy accept;
    iifname "$gwi" ct original zone set $n
  }
  chain ep_mark {
    type filter hook prerouting priority mangle; policy accept;
    # Customer traffic: mark the packet and its connection with the endpoint's number.
    iifname "$gwi" meta mark set $mark ct mark set $mark
    # Answers from the internet: conntrack has found their connection (it runs before this
    # chain); copy the connection's mark onto the packet, so that routing (after the NAT is
    # reversed, at priority dstnat) sends it to the endpoint's "back" table.
    iifname "$egress" ct mark $mark meta mark set $mark
  }
  # Source NAT to the egress interface's address, for this endpoint's connections only.
  chain ep_masquerade {
    type nat hook postrouting priority srcnat; policy accept;
    oifname "$egress" ct mark $mark masquerade
  }
  # TCP: announce an MSS that fits the egress path (route MTU), so that no segment is too big.
  chain ep_clamp_mss {
    type filter hook forward priority mangle; policy accept;
    oifname "$egress" ct mark $mark tcp flags syn / syn,rst tcp option maxseg size set rt mtu
  }
}
EOF
}

firewall_add_iptables() {
  iptables_remove_tagged   # CREATE twice leaves one copy
  for cmd in iptables ip6tables; do
    # The endpoint's conntrack zone, original direction only (CT runs in the raw table, before
    # conntrack).
    "$cmd" -w -t raw -A PREROUTING -i "$gwi" -m comment --comment "$tag" -j CT --zone-orig "$n"
    # Customer traffic: mark the packet and its connection.
    "$cmd" -w -t mangle -A PREROUTING -i "$gwi" -m comment --comment "$tag" -j MARK --set-mark "$mark"
    "$cmd" -w -t mangle -A PREROUTING -i "$gwi" -m comment --comment "$tag" -j CONNMARK --set-mark "$mark"
    # Answers from the internet: the connection's mark onto the packet, for the "back" table.
    "$cmd" -w -t mangle -A PREROUTING -i "$egress" -m connmark --mark "$mark" -m comment --comment "$tag" -j MARK --set-mark "$mark"
    # Source NAT to the egress address, for this endpoint's connections only.
    "$cmd" -w -t nat -A POSTROUTING -o "$egress" -m connmark --mark "$mark" -m comment --comment "$tag" -j MASQUERADE
    # TCP: clamp the MSS to the egress path's MTU.
    "$cmd" -w -t mangle -A FORWARD -o "$egress" -p tcp --tcp-flags SYN,RST SYN -m connmark --mark "$mark" \
      -m comment --comment "$tag" -j TCPMSS --clamp-mss-to-pmtu
  done
}

# ---- CREATE / DESTROY -------------------------------------------------------------------------------

case "$op" in
CREATE)
  [ "$gwo" != none ] || die "gwlbtun runs with --no-return: answers could not go back to GWLB"
  [ -e "/sys/class/net/$egress" ] || die "egress interface '$egress' does not exist (set GWLBTUN_EGRESS_IF)"
  pick_firewall
  take_lock
  n=$(allocate_n)
  mark=$((BASE_BACK + n))
  back=$mark
  out=$((BASE_OUT + n))

  # Forwarding on. With forwarding on, the kernel ignores IPv6 router advertisements unless
  # accept_ra is 2: keep the egress interface's IPv6 default route (on AWS it comes by RA).
  echo 1 > /proc/sys/net/ipv4/ip_forward
  echo 2 > "/proc/sys/net/ipv6/conf/$egress/accept_ra"
  echo 1 > /proc/sys/net/ipv6/conf/all/forwarding
  # Customer addresses are not routed via gwi-<X>: reverse-path filtering would drop everything.
  echo 0 > /proc/sys/net/ipv4/conf/all/rp_filter
  echo 0 > "/proc/sys/net/ipv4/conf/$gwi/rp_filter"
  # ICMP errors the appliance sends about a customer's packet carry its mark, so they go to the
  # endpoint (where gwlbtun counts and drops them, see MTU above) rather than out to the internet
  # with a customer's private address as destination.
  echo 1 > /proc/sys/net/ipv4/fwmark_reflect
  echo 1 > /proc/sys/net/ipv6/fwmark_reflect

  # "out" table: customer traffic leaves through the egress interface, whatever the main table's
  # default route is (it may point at a management interface).
  gw4=${GWLBTUN_EGRESS_GW:-$(main_gateway -4)}
  gw6=${GWLBTUN_EGRESS_GW6:-$(main_gateway -6)}
  ip -4 route replace default ${gw4:+via "$gw4"} dev "$egress" table "$out"
  ip -6 route replace default ${gw6:+via "$gw6"} dev "$egress" table "$out"
  # "back" table: answers (marked with the endpoint's number) go into gwo-<X>.
  ip -4 route replace default dev "$gwo" table "$back"
  ip -6 route replace default dev "$gwo" table "$back"
  # 'ip rule add' refuses an exact duplicate, which keeps CREATE repeatable.
  for fam in -4 -6; do
    ip "$fam" rule add pref "$PREF_IIF" iif "$gwi" lookup "$out" 2>/dev/null || true
    ip "$fam" rule add pref "$PREF_MARK" fwmark "$mark" lookup "$back" 2>/dev/null || true
  done

  "firewall_add_$fw"
  echo "$me: $gwi -> $egress (masquerade), answers -> $gwo, for vpce-$eni: zone $n, mark $mark, tables $out/$back ($fw)"
  ;;
DESTROY)
  take_lock
  n=$(current_n)   # before the rules go: it is read from them
  rules_del "${n:+$((BASE_BACK + n))}"
  if [ -n "$n" ]; then
    for fam in -4 -6; do
      ip "$fam" route flush table $((BASE_OUT + n)) 2>/dev/null || true
      ip "$fam" route flush table $((BASE_BACK + n)) 2>/dev/null || true
    done
    # Forget the endpoint's connections and their NAT bindings (needs the conntrack tool;
    # otherwise they time out, and their answers find no route).
    if command -v conntrack >/dev/null 2>&1; then conntrack -D --orig-zone "$n" >/dev/null 2>&1 || true; fi
  fi
  firewall_remove
  echo "$me: removed $gwi (vpce-$eni${n:+, zone $n})"
  ;;
*)
  die "unknown operation '$op' (expected CREATE or DESTROY)"
  ;;
esac
