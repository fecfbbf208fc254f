# Shared by the example hooks two-arm-nat.sh and overlapping-cidrs.sh (sourced, not run).
# The sourcing hook sets: me (its name, for messages), gwi (the gwi- interface), eni (the ENI ID)
# NUM_BASE (its routing tables are NUM_BASE + n, n being the endpoint's number), tag (the comment on
# its iptables rules), nft_table (its nftables table), PREF_IIF and PREF_MARK (its rule priorities).

die() { echo "$me: $*" >&2; exit 1; }

# Which firewall front end to use: nftables when available (one table per endpoint, removed in one
# command), else iptables (both work on the same kernel; Debian's iptables is iptables-nft).
pick_firewall() {
  fw=${GWLBTUN_FIREWALL:-auto}
  if [ "$fw" = auto ]; then
    if command -v nft >/dev/null 2>&1; then fw=nft
    elif command -v iptables >/dev/null 2>&1; then fw=iptables
    else die "needs nft or iptables"; fi
  fi
  case "$fw" in nft|iptables) ;; *) die "GWLBTUN_FIREWALL must be nft, iptables or auto, not '$fw'" ;; esac
}

# Hooks of different endpoints may run at the same time; this lock serialises the number
# allocation and the rule changes (a hook that cannot take it within 20 s goes on without).
take_lock() {
  dir=${RUNTIME_DIRECTORY:-/run/gwlbtun}   # systemd sets RUNTIME_DIRECTORY (RuntimeDirectory=)
  mkdir -p "$dir" 2>/dev/null || true
  if command -v flock >/dev/null 2>&1 && [ -d "$dir" ] && [ -w "$dir" ]; then
    exec 9>>"$dir/hooks.lock"   # held until the hook exits
    flock -w 20 9 || echo "$me: warning: running without the hooks lock" >&2
  fi
}

# The endpoint's number if it has one already (from the table its ingress rule points to).
current_n() {
  t=$(ip -4 rule list iif "$gwi" 2>/dev/null | sed -n 's/.* lookup \([0-9][0-9]*\).*/\1/p' | head -n 1)
  if [ -n "$t" ] && [ "$t" -gt "$NUM_BASE" ]; then echo $((t - NUM_BASE)); fi
}

# A number for a new endpoint: derived from the low 16 bits of the ENI ID, so it is usually the
# same every time; if another endpoint holds it (its table has rules), try the next ones.
allocate_n() {
  n=$(current_n)
  if [ -n "$n" ]; then echo "$n"; return; fi
  start=$(( 0x$(printf '%s' "$eni" | tail -c 4) % 65000 ))
  i=0
  while [ "$i" -lt 1000 ]; do
    n=$(( (start + i) % 65000 + 1 ))
    if [ -z "$(ip -4 rule list table $((NUM_BASE + n)) 2>/dev/null)" ]; then echo "$n"; return; fi
    i=$((i + 1))
  done
  die "no free endpoint number near $start"
}

# Delete every iptables/ip6tables rule tagged with this endpoint's comment (whatever its numbers).
iptables_remove_tagged() {
  for cmd in iptables ip6tables; do
    command -v "$cmd-save" >/dev/null 2>&1 || continue
    for xt_table in raw mangle nat filter; do
      # iptables-save prints each rule as "-A CHAIN match... target"; the same words with -D delete
      # it. The tag has no spaces, so splitting the line on spaces is safe.
      "$cmd-save" -t "$xt_table" 2>/dev/null | grep -e "--comment $tag" | sed 's/^-A /-D /' |
        while read -r rule; do
          # shellcheck disable=SC2086
          "$cmd" -w -t "$xt_table" $rule 2>/dev/null || true
        done
    done
  done
}

firewall_remove() {
  if command -v nft >/dev/null 2>&1; then nft delete table inet "$nft_table" 2>/dev/null || true; fi
  if command -v iptables >/dev/null 2>&1; then iptables_remove_tagged; fi
}

# Remove this endpoint's 'ip rule's (at most 10 copies of each): those by ingress interface
# (PREF_IIF; 'ip rule del' finds them by name even when the interface is gone) and, when a table is
# given, the mark rule (PREF_MARK) that points to it.
rules_del() {
  for fam in -4 -6; do
    i=0
    while [ "$i" -lt 10 ] && ip "$fam" rule del pref "$PREF_IIF" iif "$gwi" 2>/dev/null; do i=$((i + 1)); done
    if [ -n "${1:-}" ]; then
      i=0
      while [ "$i" -lt 10 ] && ip "$fam" rule del pref "$PREF_MARK" lookup "$1" 2>/dev/null; do i=$((i + 1)); done
    fi
  done
}
