#!/bin/sh
# gwlbtun hook: pass-through ("bump in the wire"). Every packet gwlbtun writes into gwi-<X> is
# handed straight to gwo-<X> by a tc filter on gwi-<X>'s ingress, before the IP stack sees it:
# no routing, no TTL/hop-limit decrement, no netfilter, no ip_forward needed. gwlbtun then returns
# each packet to GWLB with its flow's Geneve header. Useful as a baseline (measure gwlbtun alone),
# or as the skeleton of a tc/eBPF-based appliance: put your own tc actions in front of mirred.
#
#   gwlbtun -c /path/passthrough.sh -r /path/passthrough.sh
# Arguments: CREATE|DESTROY gwi-<X> gwo-<X> <ENI hex>
# Needs: tc (iproute2), a kernel with the ingress qdisc, mirred action and the matchall or u32
# classifier (CONFIG_NET_SCH_INGRESS, CONFIG_NET_ACT_MIRRED, CONFIG_NET_CLS_MATCHALL or _U32).
set -eu
op=${1:-} gwi=${2:-} gwo=${3:-} eni=${4:-}

case "$op" in
CREATE)
  if [ "$gwo" = none ]; then
    echo "passthrough: gwlbtun runs with --no-return (no $gwo interface): nothing to pass through to" >&2
    exit 1
  fi
  # Start from a clean slate so that running CREATE twice leaves exactly one filter: deleting the
  # ingress qdisc removes every filter attached to it.
  tc qdisc del dev "$gwi" ingress 2>/dev/null || true
  # The ingress qdisc (handle ffff:) is where filters on received packets attach. On a TUN device,
  # "received" is what gwlbtun writes into it.
  tc qdisc add dev "$gwi" ingress
  # One filter for every packet of every protocol (IPv4 and IPv6 alike): 'mirred egress redirect'
  # moves the packet to gwo-<X>'s transmit path, which is what gwlbtun reads. matchall is the
  # direct way to say "every packet"; some kernels are built without it, and there the classic
  # u32 form (match 32 bits at offset 0 under mask 0: always true) does the same.
  if tc filter add dev "$gwi" parent ffff: protocol all prio 1 \
      matchall action mirred egress redirect dev "$gwo" 2>/dev/null; then
    how=matchall
  else
    tc filter add dev "$gwi" parent ffff: protocol all prio 1 \
      u32 match u32 0 0 action mirred egress redirect dev "$gwo"
    how=u32
  fi
  echo "passthrough: $gwi -> $gwo ($how + mirred) for vpce-$eni"
  ;;
DESTROY)
  # Usually the interface is already gone (and its qdisc with it); then this is a no-op.
  tc qdisc del dev "$gwi" ingress 2>/dev/null || true
  echo "passthrough: removed $gwi"
  ;;
*)
  echo "passthrough: unknown operation '$op' (expected CREATE or DESTROY)" >&2
  exit 1
  ;;
esac
