// Load generator, verifier and reflector for `npm run bench` (bench/main.ts compiles this file
// with cc at bench time; it is not part of the product).
//
//   gen send    [options]   in the GWLB namespace: sends Geneve over a raw socket as GWLB does
//                           (paced or unpaced, bounded by --count packets and --seconds), receives
//                           what comes back on UDP 6081 and verifies every returned packet.
//   gen reflect [options]   in the appliance namespace: the ceiling. recvmmsg on UDP 6081, outer
//                           IPv4+UDP written in front of each payload, sendmmsg on a raw socket
//                           back to the sender: what any appliance must do at the least, without
//                           TUN devices or kernel forwarding. --gro 1: UDP_GRO on the socket, each
//                           merged train sent back datagram by datagram (bench/lib/rxgro.ts).
//   gen probe   [options]   in the GWLB namespace: round-trip times of single 64-byte probes at a
//                           fixed low rate, sleeping between them (bench/scenarios/latency.ts).
//   gen exec --cpus LIST -- CMD ARGS...
//                           set the CPU affinity, then exec CMD (the PID stays the same, so the
//                           caller can read /proc/<pid>/stat of CMD).
//
// Why C: the TypeScript emulator reaches ~240 kpps unpaced, about what the reflector returns, so
// it would measure itself. This sender builds each packet from a per-flow template with a few
// stores and hands 64 at a time to sendmmsg.
//
// Traffic (all addresses from the ranges the project may use):
//   outer  198.18.0.1 (GWLB) -> 198.18.0.2:6081, UDP source port = 20000 + f % 40000 per flow f
//   Geneve 40 bytes: base header + GWLB's three options (ENI ID, attachment ID, cookie of flow f)
//   inner  IPv4 UDP 192.0.2.(1 + f % 254):(10000 + (f / 254) % 50000) ->
//          198.51.100.(1 + (f / 12700000) % 254):7000 (distinct 5-tuples up to 12.7M flows),
//          TTL 64, UDP checksum 0 (legal in IPv4), payload: magic, flow, seq, fixed filler.
// Bulk TCP (--tcp-run N): inner IPv4 TCP instead (20-byte TCP header, ACK, port 443), each flow
//   sending runs of N consecutive full segments (a TCP window arriving) before the next flow's
//   turn: packet k of flow f has IP ID (7f + k), sequence number seed(f) + k * payload, valid IP
//   and TCP checksums, and carries magic, f, k in its first payload bytes -- what Linux GRO would
//   coalesce. Returned packets are checked byte for byte the same way (headers recomputed).
//   --udp-csum 1 (bulk TCP only): the outer UDP checksum is set (once per flow: it does not change
//   from segment to segment), since Linux's UDP GRO merges only checksummed datagrams.
// Verification of every returned datagram: from the appliance address, source port = the flow's
// GWLB port, length = 40 + inner size, Geneve header byte-identical to the flow's, inner IPv4 and
// UDP header as sent with the TTL decremented --ttl-dec times (checksum recomputed), magic, flow,
// a sequence number that was sent on that flow and not seen before (64-packet window per flow;
// older ones count as reordered), filler identical.

#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define GENEVE_PORT 6081
#define GENEVE_LEN 40
#define OUTER_LEN 28
#define INNER_HDR 28
#define PAYLOAD_MIN 12
#define MAGIC 0x42454e43u  // 'BENC'
#define MAX_BATCH 256
#define RX_BATCH 64
#define RX_SLOT 9216  // = RX_SLOT in src/wire/sizes.ts (the reasoning is there)
#define MAX_INNER 8500
#define WINDOW 64

static volatile sig_atomic_t stop_flag = 0;
static void on_signal(int s) { (void)s; stop_flag = 1; }

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void die(const char *what) {
  fprintf(stderr, "gen: %s: %s\n", what, strerror(errno));
  exit(1);
}

static void usage(void) {
  fprintf(stderr,
          "usage: gen send --eni HEX [--src IP] [--dst IP] [--flows N] [--size BYTES] [--rate PPS]\n"
          "                [--count N] [--seconds S] [--warmup-ms N] [--settle-ms N] [--batch N]\n"
          "                [--ttl-dec N] [--spin 0|1] [--cpus LIST] [--tcp-run N] [--udp-csum 0|1]\n"
          "       gen reflect [--seconds S] [--cpus LIST] [--batch N] [--gro 0|1]\n"
          "       gen probe --eni HEX --out FILE [--src IP] [--dst IP] [--family 4|6] [--rate PPS] [--start-ns T]\n"
          "                 [--count N] [--settle-ms N] [--cpus LIST]\n"
          "       gen exec --cpus LIST -- CMD [ARGS...]\n");
  exit(2);
}

static void set_cpus(const char *list) {
  if (list == NULL) return;
  cpu_set_t set;
  CPU_ZERO(&set);
  const char *p = list;
  while (*p) {
    char *end;
    long a = strtol(p, &end, 10);
    long b = a;
    if (end == p || a < 0 || a >= CPU_SETSIZE) usage();
    if (*end == '-') {
      p = end + 1;
      b = strtol(p, &end, 10);
      if (end == p || b < a || b >= CPU_SETSIZE) usage();
    }
    for (long c = a; c <= b; c++) CPU_SET((int)c, &set);
    p = end;
    if (*p == ',') p++;
    else if (*p) usage();
  }
  if (sched_setaffinity(0, sizeof set, &set) < 0) die("sched_setaffinity");
}

static void set_buf(int fd, int force, int plain, int bytes) {
  if (setsockopt(fd, SOL_SOCKET, force, &bytes, sizeof bytes) < 0 &&
      setsockopt(fd, SOL_SOCKET, plain, &bytes, sizeof bytes) < 0)
    die("setsockopt(buffer size)");
}

static uint16_t csum16(const uint8_t *p, int n) {
  uint32_t s = 0;
  for (int i = 0; i + 1 < n; i += 2) s += (uint32_t)(p[i] << 8 | p[i + 1]);
  if (n & 1) s += (uint32_t)p[n - 1] << 8;
  while (s >> 16) s = (s & 0xffff) + (s >> 16);
  return (uint16_t)~s;
}

static void put16(uint8_t *p, uint32_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static void put32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}
static uint32_t get32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

// Writes a 20-byte IPv4 header (DF, no options) with its checksum.
static void ip4_header(uint8_t *p, int total, int ttl, int proto, uint32_t src, uint32_t dst) {
  p[0] = 0x45; p[1] = 0;
  put16(p + 2, (uint32_t)total);
  put16(p + 4, 0);
  put16(p + 6, 0x4000);
  p[8] = (uint8_t)ttl; p[9] = (uint8_t)proto;
  put16(p + 10, 0);
  put32(p + 12, src);
  put32(p + 16, dst);
  put16(p + 10, csum16(p, 20));
}

// ---------------------------------------------------------------------------------------------
// Flows

static uint32_t mix32(uint32_t x) {
  x ^= x >> 16; x *= 0x7feb352du; x ^= x >> 15; x *= 0x846ca68bu; x ^= x >> 16;
  return x;
}

typedef struct {
  uint64_t eni, attach;
  uint32_t nonce, nflows;
  int size;  // inner IPv4 packet length
  int hdr;   // inner IPv4 + UDP/TCP header bytes: 28, or 40 with --tcp-run
  int tcp_run;  // 0: UDP; else bulk TCP in runs of this many segments per flow
  int udp_csum;  // --udp-csum 1 (bulk TCP only): outer UDP checksum set, as the kernel needs for GRO
  uint32_t filler_sum;  // TCP: the 16-bit word sum of the filler
  uint32_t gwlb_ip, appl_ip;
  uint8_t filler[MAX_INNER];
} plan_t;

static int flow_port(uint32_t f) { return 20000 + (int)(f % 40000); }
static uint32_t flow_cookie(const plan_t *pl, uint32_t f) { return mix32(f ^ pl->nonce) | 1; }

static void geneve(const plan_t *pl, uint32_t f, uint8_t *p) {
  p[0] = 8;  // version 0, 8 words of options
  p[1] = 0;
  put16(p + 2, 0x0800);
  p[4] = p[5] = p[6] = p[7] = 0;
  put16(p + 8, 0x0108); p[10] = 1; p[11] = 2;
  put32(p + 12, (uint32_t)(pl->eni >> 32)); put32(p + 16, (uint32_t)pl->eni);
  put16(p + 20, 0x0108); p[22] = 2; p[23] = 2;
  put32(p + 24, (uint32_t)(pl->attach >> 32)); put32(p + 28, (uint32_t)pl->attach);
  put16(p + 32, 0x0108); p[34] = 3; p[35] = 1;
  put32(p + 36, flow_cookie(pl, f));
}

// Inner IPv4 + UDP headers of flow f (28 bytes) with the given TTL.
static void inner_hdr(const plan_t *pl, uint32_t f, int ttl, uint8_t *p) {
  uint32_t src = 0xc0000200u | (1 + f % 254);
  uint32_t dst = 0xc6336400u | (1 + (f / 12700000u) % 254);
  ip4_header(p, pl->size, ttl, 17, src, dst);
  put16(p + 20, 10000 + (f / 254) % 50000);
  put16(p + 22, 7000);
  put16(p + 24, (uint32_t)(pl->size - 20));
  put16(p + 26, 0);
}

// Bulk TCP: inner IPv4 + TCP headers of segment k of flow f (40 bytes) with the given TTL, the TCP
// checksum computed from the payload's fixed sum (filler) and its variable words (magic, f, k).
static void tcp_hdr(const plan_t *pl, uint32_t f, uint32_t k, int ttl, uint8_t *p) {
  uint32_t src = 0xc0000200u | (1 + f % 254);
  uint32_t dst = 0xc6336400u | (1 + (f / 12700000u) % 254);
  int pay = pl->size - 40;
  ip4_header(p, pl->size, ttl, 6, src, dst);
  put16(p + 4, (7 * f + k) & 0xffff);
  put16(p + 10, 0);
  put16(p + 10, csum16(p, 20));
  uint8_t *t = p + 20;
  put16(t, 10000 + (f / 254) % 50000);
  put16(t + 2, 443);
  put32(t + 4, mix32(f * 2 + 1) + k * (uint32_t)pay);
  put32(t + 8, 1);
  t[12] = 0x50;
  t[13] = 0x10;  // ACK
  put16(t + 14, 0xffff);
  put16(t + 16, 0);
  put16(t + 18, 0);
  uint64_t sum = (src >> 16) + (src & 0xffff) + (dst >> 16) + (dst & 0xffff) + 6 + (uint32_t)(20 + pay);
  for (int i = 0; i < 20; i += 2) sum += (uint32_t)(t[i] << 8 | t[i + 1]);
  sum += (MAGIC >> 16) + (MAGIC & 0xffff) + (f >> 16) + (f & 0xffff) + (k >> 16) + (k & 0xffff);
  sum += pl->filler_sum;
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  put16(t + 16, (uint32_t)(~sum & 0xffff));
}

// The whole outbound packet (outer IPv4 + UDP + Geneve + inner) of flow f, seq 0, into p.
static int build_packet(const plan_t *pl, uint32_t f, uint8_t *p) {
  int udp_len = 8 + GENEVE_LEN + pl->size;
  ip4_header(p, OUTER_LEN + GENEVE_LEN + pl->size, 64, 17, pl->gwlb_ip, pl->appl_ip);
  put16(p + 20, (uint32_t)flow_port(f));
  put16(p + 22, GENEVE_PORT);
  put16(p + 24, (uint32_t)udp_len);
  put16(p + 26, 0);
  geneve(pl, f, p + OUTER_LEN);
  uint8_t *in = p + OUTER_LEN + GENEVE_LEN;
  if (pl->tcp_run) tcp_hdr(pl, f, 0, 64, in);
  else inner_hdr(pl, f, 64, in);
  put32(in + pl->hdr, MAGIC);
  put32(in + pl->hdr + 4, f);
  put32(in + pl->hdr + 8, 0);
  memcpy(in + pl->hdr + PAYLOAD_MIN, pl->filler, (size_t)(pl->size - pl->hdr - PAYLOAD_MIN));
  if (pl->udp_csum) {
    // Outer UDP checksum over pseudo-header + UDP + Geneve + inner. With bulk TCP it stays right
    // for every segment of the flow: the inner IPv4 header and TCP segment each sum to a constant
    // (their own checksums make them so), whatever the ID, sequence number and payload.
    uint64_t sum = (pl->gwlb_ip >> 16) + (pl->gwlb_ip & 0xffff) + (pl->appl_ip >> 16) +
                   (pl->appl_ip & 0xffff) + 17 + (uint32_t)udp_len;
    const uint8_t *u = p + 20;
    for (int i = 0; i + 1 < udp_len; i += 2) sum += (uint32_t)(u[i] << 8 | u[i + 1]);
    if (udp_len & 1) sum += (uint32_t)u[udp_len - 1] << 8;
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    uint32_t c = ~sum & 0xffff;
    put16(p + 26, c == 0 ? 0xffff : c);
  }
  return OUTER_LEN + GENEVE_LEN + pl->size;
}

// ---------------------------------------------------------------------------------------------
// Verification state

enum { V_OK, V_REORDERED, V_BAD_SOURCE, V_BAD_PORT, V_BAD_LENGTH, V_BAD_HEADER, V_BAD_INNER,
       V_UNKNOWN_FLOW, V_UNKNOWN_SEQ, V_DUPLICATE, V_TRUNCATED, V_COUNT };
static const char *V_NAMES[V_COUNT] = {"ok", "reordered", "bad_source", "bad_port", "bad_length",
                                       "bad_header", "bad_inner", "unknown_flow", "unknown_seq",
                                       "duplicate", "truncated"};

typedef struct {
  uint32_t *next_seq;   // per flow: sequence numbers handed out
  int64_t *highest;     // per flow: highest verified, -1 none
  uint64_t *window;     // per flow: bit i = highest - i verified
  double counts[V_COUNT];
  double verified, verified_bytes;  // inner bytes
  int ttl_dec;
  // Expected first 68 bytes of a flow's return (Geneve + inner headers), cached for the last flow.
  uint32_t cached_flow;
  uint8_t exp[GENEVE_LEN + 40];
} verifier_t;

static int verify(const plan_t *pl, verifier_t *v, const uint8_t *d, int len, int truncated,
                  uint32_t src_ip, int src_port) {
  if (truncated) return V_TRUNCATED;
  if (src_ip != pl->appl_ip) return V_BAD_SOURCE;
  if (len != GENEVE_LEN + pl->size) return V_BAD_LENGTH;
  const uint8_t *in = d + GENEVE_LEN;
  const int H = pl->hdr;
  if (get32(in + H) != MAGIC) return V_BAD_INNER;
  uint32_t f = get32(in + H + 4);
  if (f >= pl->nflows) return V_UNKNOWN_FLOW;
  if (src_port != flow_port(f)) return V_BAD_PORT;
  if (f != v->cached_flow) {
    geneve(pl, f, v->exp);
    if (!pl->tcp_run) inner_hdr(pl, f, 64 - v->ttl_dec, v->exp + GENEVE_LEN);
    v->cached_flow = f;
  }
  uint32_t seq = get32(in + H + 8);
  // TCP: the headers depend on the segment's number too (ID, sequence number, checksum).
  if (pl->tcp_run) tcp_hdr(pl, f, seq, 64 - v->ttl_dec, v->exp + GENEVE_LEN);
  if (memcmp(d, v->exp, GENEVE_LEN) != 0) return V_BAD_HEADER;
  if (memcmp(in, v->exp + GENEVE_LEN, (size_t)H) != 0) return V_BAD_INNER;
  if (memcmp(in + H + PAYLOAD_MIN, pl->filler, (size_t)(pl->size - H - PAYLOAD_MIN)) != 0)
    return V_BAD_INNER;
  if (seq >= v->next_seq[f]) return V_UNKNOWN_SEQ;
  int64_t hi = v->highest[f];
  if ((int64_t)seq > hi) {
    uint64_t shift = hi < 0 ? WINDOW : (uint64_t)((int64_t)seq - hi);
    v->window[f] = shift >= WINDOW ? 1 : (v->window[f] << shift) | 1;
    v->highest[f] = seq;
    return V_OK;
  }
  uint64_t back = (uint64_t)(hi - (int64_t)seq);
  if (back >= WINDOW) return V_REORDERED;
  if (v->window[f] & (1ull << back)) return V_DUPLICATE;
  v->window[f] |= 1ull << back;
  return V_REORDERED;
}

// ---------------------------------------------------------------------------------------------
// send mode

typedef struct {
  const char *src, *dst, *cpus;
  uint64_t eni;
  uint32_t flows;
  int size, batch, ttl_dec, spin, tcp_run, udp_csum;
  double rate, seconds, count, warmup_ms, settle_ms;
} send_opts_t;

static uint8_t rx_buf[RX_BATCH * RX_SLOT];

// Drains up to `rounds` recvmmsg batches and verifies them. Returns datagrams received.
static int drain(int fd, const plan_t *pl, verifier_t *v, int rounds) {
  static struct mmsghdr msgs[RX_BATCH];
  static struct iovec iov[RX_BATCH];
  static struct sockaddr_in from[RX_BATCH];
  int total = 0;
  for (int r = 0; r < rounds; r++) {
    for (int i = 0; i < RX_BATCH; i++) {
      iov[i].iov_base = rx_buf + (size_t)i * RX_SLOT;
      iov[i].iov_len = RX_SLOT;
      memset(&msgs[i].msg_hdr, 0, sizeof msgs[i].msg_hdr);
      msgs[i].msg_hdr.msg_name = &from[i];
      msgs[i].msg_hdr.msg_namelen = sizeof from[i];
      msgs[i].msg_hdr.msg_iov = &iov[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
    }
    int n = recvmmsg(fd, msgs, RX_BATCH, MSG_DONTWAIT, NULL);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) break;
      die("recvmmsg");
    }
    for (int i = 0; i < n; i++) {
      int len = (int)msgs[i].msg_len;
      int trunc = (msgs[i].msg_hdr.msg_flags & MSG_TRUNC) != 0;
      int r2 = verify(pl, v, rx_buf + (size_t)i * RX_SLOT, len > RX_SLOT ? RX_SLOT : len, trunc,
                      ntohl(from[i].sin_addr.s_addr), ntohs(from[i].sin_port));
      v->counts[r2]++;
      if (r2 == V_OK || r2 == V_REORDERED) {
        v->verified++;
        v->verified_bytes += pl->size;
      }
    }
    total += n;
    if (n < RX_BATCH) break;
  }
  return total;
}

static uint32_t parse_ip(const char *s) {
  struct in_addr a;
  if (inet_pton(AF_INET, s, &a) != 1) usage();
  return ntohl(a.s_addr);
}

static int run_send(send_opts_t *o) {
  set_cpus(o->cpus);
  prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);  // ppoll timeouts of tens of microseconds, not 50 us
  static plan_t pl;
  pl.eni = o->eni;
  pl.attach = 0x0123456789abcdefull;
  pl.nonce = (uint32_t)getpid() * 2654435761u ^ (uint32_t)time(NULL);
  pl.nflows = o->flows;
  pl.size = o->size;
  pl.tcp_run = o->tcp_run;
  pl.udp_csum = o->udp_csum;
  if (pl.udp_csum && !pl.tcp_run) usage();
  pl.hdr = o->tcp_run ? 40 : INNER_HDR;
  if (pl.size < pl.hdr + PAYLOAD_MIN) usage();
  pl.gwlb_ip = parse_ip(o->src);
  pl.appl_ip = parse_ip(o->dst);
  for (int i = 0; i < MAX_INNER; i++) pl.filler[i] = (uint8_t)(i * 7 + 3);
  {
    int n = pl.size - pl.hdr - PAYLOAD_MIN;
    uint64_t fs = 0;
    for (int i = 0; i + 1 < n; i += 2) fs += (uint32_t)(pl.filler[i] << 8 | pl.filler[i + 1]);
    if (n & 1) fs += (uint32_t)pl.filler[n - 1] << 8;
    while (fs >> 16) fs = (fs & 0xffff) + (fs >> 16);
    pl.filler_sum = (uint32_t)fs;
  }

  verifier_t v;
  memset(&v, 0, sizeof v);
  v.ttl_dec = o->ttl_dec;
  v.cached_flow = UINT32_MAX;
  v.next_seq = calloc(o->flows, sizeof *v.next_seq);
  v.highest = malloc(o->flows * sizeof *v.highest);
  v.window = calloc(o->flows, sizeof *v.window);
  if (!v.next_seq || !v.highest || !v.window) die("malloc");
  for (uint32_t f = 0; f < o->flows; f++) v.highest[f] = -1;

  int udp = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (udp < 0) die("socket(udp)");
  set_buf(udp, SO_RCVBUFFORCE, SO_RCVBUF, 64 << 20);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(GENEVE_PORT)};
  a.sin_addr.s_addr = htonl(pl.gwlb_ip);
  if (bind(udp, (struct sockaddr *)&a, sizeof a) < 0) die("bind(6081)");
  int raw = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW);
  if (raw < 0) die("socket(raw)");
  set_buf(raw, SO_SNDBUFFORCE, SO_SNDBUF, 8 << 20);

  // Send batch: a template per batch slot is rebuilt from scratch only when the slot's flow
  // changes; with flows a multiple of the batch (64 flows, batch 64) the templates stay put and
  // a packet costs one 4-byte sequence store.
  int batch = o->batch;
  int slot_size = (OUTER_LEN + GENEVE_LEN + pl.size + 63) & ~63;
  uint8_t *tx = aligned_alloc(64, (size_t)slot_size * MAX_BATCH);
  uint32_t slot_flow[MAX_BATCH];
  if (!tx) die("malloc");
  for (int i = 0; i < MAX_BATCH; i++) slot_flow[i] = UINT32_MAX;
  static struct mmsghdr msgs[MAX_BATCH];
  static struct iovec iov[MAX_BATCH];
  struct sockaddr_in dst = {.sin_family = AF_INET};
  dst.sin_addr.s_addr = htonl(pl.appl_ip);
  int pkt_len = OUTER_LEN + GENEVE_LEN + pl.size;
  for (int i = 0; i < MAX_BATCH; i++) {
    iov[i].iov_base = tx + (size_t)i * slot_size;
    iov[i].iov_len = (size_t)pkt_len;
    memset(&msgs[i].msg_hdr, 0, sizeof msgs[i].msg_hdr);
    msgs[i].msg_hdr.msg_name = &dst;
    msgs[i].msg_hdr.msg_namelen = sizeof dst;
    msgs[i].msg_hdr.msg_iov = &iov[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
  }

  double sent = 0, send_errors = 0, queue_full = 0;
  uint32_t rr = 0;
  int run_left = o->tcp_run;  // TCP: segments left in the current flow's run
  double t0 = now_s();
  double warm_end = t0 + o->warmup_ms / 1000;
  double deadline = t0 + o->seconds;
  double per_pkt = o->rate > 0 ? 1.0 / o->rate : 0;
  double due = t0;
  double sent_w = 0, ver_w = 0, bytes_w = 0, t_w = 0;  // snapshot at the end of the warm-up
  int warm_taken = o->warmup_ms <= 0;
  if (warm_taken) t_w = t0;
  double t_end = t0;
  int pending = 0;  // prepared, not yet accepted

  for (;;) {
    double t = now_s();
    if (!warm_taken && t >= warm_end) {
      warm_taken = 1;
      sent_w = sent; ver_w = v.verified; bytes_w = v.verified_bytes; t_w = t;
    }
    if (stop_flag || t >= deadline || sent >= o->count) break;
    if (pending == 0 && (per_pkt == 0 || t >= due)) {
      double left = o->count - sent;
      int k = batch < left ? batch : (int)left;
      for (int i = 0; i < k; i++) {
        uint32_t f = rr;
        if (!pl.tcp_run) rr = rr + 1 == pl.nflows ? 0 : rr + 1;
        else if (--run_left == 0) {
          run_left = pl.tcp_run;
          rr = rr + 1 == pl.nflows ? 0 : rr + 1;
        }
        uint8_t *p = tx + (size_t)i * slot_size;
        if (slot_flow[i] != f) {
          build_packet(&pl, f, p);
          slot_flow[i] = f;
        }
        uint32_t seq = v.next_seq[f]++;
        put32(p + OUTER_LEN + GENEVE_LEN + pl.hdr + 8, seq);
        if (pl.tcp_run) tcp_hdr(&pl, f, seq, 64, p + OUTER_LEN + GENEVE_LEN);
      }
      pending = k;
      if (per_pkt > 0) {
        due += k * per_pkt;
        if (due < t - 0.005) due = t - 0.005;  // fell behind: catch up by at most 5 ms
      }
    }
    if (pending > 0) {
      int n = sendmmsg(raw, msgs, (unsigned)pending, 0);
      if (n < 0) {
        if (errno == EAGAIN || errno == ENOBUFS) {
          queue_full++;
          struct pollfd pf = {.fd = raw, .events = POLLOUT};
          poll(&pf, 1, 1);
        } else if (errno != EINTR) {
          send_errors++;
          pending = 0;  // drop this batch: a persistent error must not wedge the loop
        }
      } else {
        sent += n;
        if (n < pending) {
          // Move the unsent ones to the front (their flows' templates move with them).
          for (int i = n; i < pending; i++) {
            memcpy(tx + (size_t)(i - n) * slot_size, tx + (size_t)i * slot_size, (size_t)pkt_len);
            slot_flow[i - n] = slot_flow[i];
            slot_flow[i] = UINT32_MAX;
          }
        }
        pending -= n;
      }
    }
    int got = drain(udp, &pl, &v, 4);
    if (per_pkt > 0 && got == 0 && pending == 0 && !o->spin) {
      double wait = due - now_s();
      if (wait > 20e-6) {
        struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)(wait * 1e9)};
        struct pollfd pf = {.fd = udp, .events = POLLIN};
        ppoll(&pf, 1, &ts, NULL);
      }
    }
  }
  t_end = now_s();
  if (!warm_taken) { sent_w = sent; ver_w = v.verified; bytes_w = v.verified_bytes; t_w = t_end; }
  double ver_end = v.verified, bytes_end = v.verified_bytes, sent_end = sent;
  // Settle: wait for what is still in flight.
  double settle_end = t_end + o->settle_ms / 1000;
  for (;;) {
    double t = now_s();
    if (v.verified >= sent || t >= settle_end || stop_flag > 1) break;
    if (drain(udp, &pl, &v, 16) == 0) {
      struct pollfd pf = {.fd = udp, .events = POLLIN};
      int ms = (int)((settle_end - t) * 1000) + 1;
      poll(&pf, 1, ms < 20 ? ms : 20);
    }
  }
  double win = t_end - t_w;
  printf("{\"mode\":\"send\",\"tcpRun\":%d,\"flows\":%u,\"size\":%d,\"rate\":%.0f,\"batch\":%d,"
         "\"sent\":%.0f,\"verified\":%.0f,\"lost\":%.0f,\"sendErrors\":%.0f,\"sendQueueFull\":%.0f,"
         "\"sendSeconds\":%.4f,\"windowSeconds\":%.4f,\"windowSent\":%.0f,\"windowVerified\":%.0f,"
         "\"windowInnerBytes\":%.0f,\"sentPps\":%.0f,\"returnedPps\":%.0f,\"innerGbps\":%.4f,\"counts\":{",
         pl.tcp_run, pl.nflows, pl.size, o->rate, batch, sent, v.verified, sent > v.verified ? sent - v.verified : 0,
         send_errors, queue_full, t_end - t0, win, sent_end - sent_w, ver_end - ver_w,
         bytes_end - bytes_w, win > 0 ? (sent_end - sent_w) / win : 0,
         win > 0 ? (ver_end - ver_w) / win : 0, win > 0 ? (bytes_end - bytes_w) * 8 / win / 1e9 : 0);
  for (int i = 0; i < V_COUNT; i++) printf("%s\"%s\":%.0f", i ? "," : "", V_NAMES[i], v.counts[i]);
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  printf("},\"cpuSeconds\":%.3f}\n", (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 +
                                          (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec * 1e-6);
  return 0;
}

// ---------------------------------------------------------------------------------------------
// reflect mode

#ifndef UDP_GRO
#define UDP_GRO 104  // linux/udp.h: receive trains of same-flow datagrams as one, with a gso_size cmsg
#endif
#define GRO_SLOT 65536
#define GRO_MAX_SEGS 64  // the kernel merges at most 64 datagrams (UDP_GRO_CNT_MAX)

// Sends tx[0..out) (each already addressed) on the raw socket; returns how many went.
static int send_all(int raw, struct mmsghdr *tx, int out) {
  int done = 0, tries = 0;
  while (done < out) {
    int k = sendmmsg(raw, tx + done, (unsigned)(out - done), 0);
    if (k < 0) {
      if ((errno == EAGAIN || errno == ENOBUFS) && ++tries < 200) {
        struct pollfd pf = {.fd = raw, .events = POLLOUT};
        poll(&pf, 1, 1);
        continue;
      }
      if (errno == EINTR) continue;
      break;
    }
    done += k;
  }
  return done;
}

// --gro 1: the socket asks for UDP GRO; a read may then hold a train of same-flow datagrams of
// gso_size bytes each (the last one shorter), which are sent back one by one, each with its own
// outer header (two iovecs: header, payload in place).
static int run_reflect(double seconds, const char *cpus, int batch, int gro) {
  set_cpus(cpus);
  int udp = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (udp < 0) die("socket(udp)");
  int one = 1;
  if (setsockopt(udp, IPPROTO_IP, IP_PKTINFO, &one, sizeof one) < 0) die("IP_PKTINFO");
  if (gro && setsockopt(udp, IPPROTO_UDP, UDP_GRO, &one, sizeof one) < 0) die("UDP_GRO");
  set_buf(udp, SO_RCVBUFFORCE, SO_RCVBUF, 8 << 20);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(GENEVE_PORT)};
  if (bind(udp, (struct sockaddr *)&a, sizeof a) < 0) die("bind(6081)");
  int raw = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW);
  if (raw < 0) die("socket(raw)");
  set_buf(raw, SO_SNDBUFFORCE, SO_SNDBUF, 4 << 20);
  printf("{\"mode\":\"reflect\",\"ready\":true}\n");
  fflush(stdout);

  // Slot i: 28 bytes of room for the outer headers, then the received payload.
  const int slot = gro ? GRO_SLOT : RX_SLOT;
  const size_t stride = (size_t)(OUTER_LEN + slot);
  uint8_t *buf = malloc(stride * (size_t)batch);
  const int max_out = gro ? batch * GRO_MAX_SEGS : batch;
  struct mmsghdr *tx = calloc((size_t)max_out, sizeof *tx);
  struct iovec *tiov = calloc((size_t)max_out * 2, sizeof *tiov);
  struct sockaddr_in *to = calloc((size_t)max_out, sizeof *to);
  uint8_t *hdrs = malloc((size_t)max_out * OUTER_LEN);
  if (!buf || !tx || !tiov || !to || !hdrs) die("malloc");
  static struct mmsghdr rx[MAX_BATCH];
  static struct iovec riov[MAX_BATCH];
  static struct sockaddr_in from[MAX_BATCH];
  static union {
    char b[CMSG_SPACE(sizeof(struct in_pktinfo)) + CMSG_SPACE(sizeof(int))];
    struct cmsghdr al;
  } ctl[MAX_BATCH];
  double received = 0, reflected = 0, dropped = 0, reads = 0;
  double t0 = now_s(), end = t0 + seconds;
  while (!stop_flag && now_s() < end) {
    for (int i = 0; i < batch; i++) {
      riov[i].iov_base = buf + (size_t)i * stride + OUTER_LEN;
      riov[i].iov_len = (size_t)slot;
      memset(&rx[i].msg_hdr, 0, sizeof rx[i].msg_hdr);
      rx[i].msg_hdr.msg_name = &from[i];
      rx[i].msg_hdr.msg_namelen = sizeof from[i];
      rx[i].msg_hdr.msg_iov = &riov[i];
      rx[i].msg_hdr.msg_iovlen = 1;
      rx[i].msg_hdr.msg_control = ctl[i].b;
      rx[i].msg_hdr.msg_controllen = sizeof ctl[i].b;
    }
    int n = recvmmsg(udp, rx, (unsigned)batch, MSG_DONTWAIT, NULL);
    if (n < 0) {
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) die("recvmmsg");
      struct pollfd pf = {.fd = udp, .events = POLLIN};
      poll(&pf, 1, 50);
      continue;
    }
    reads += n;
    int out = 0;
    for (int i = 0; i < n; i++) {
      int len = (int)rx[i].msg_len;
      if ((rx[i].msg_hdr.msg_flags & MSG_TRUNC) || len > slot) { dropped++; received++; continue; }
      uint32_t local = 0;
      int seg = len;
      for (struct cmsghdr *c = CMSG_FIRSTHDR(&rx[i].msg_hdr); c; c = CMSG_NXTHDR(&rx[i].msg_hdr, c)) {
        if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
          struct in_pktinfo pi;
          memcpy(&pi, CMSG_DATA(c), sizeof pi);
          local = ntohl(pi.ipi_addr.s_addr);
        } else if (c->cmsg_level == IPPROTO_UDP && c->cmsg_type == UDP_GRO) {
          int g;
          memcpy(&g, CMSG_DATA(c), sizeof g);
          if (g > 0 && g < seg) seg = g;
        }
      }
      uint32_t peer = ntohl(from[i].sin_addr.s_addr);
      uint8_t *payload = buf + (size_t)i * stride + OUTER_LEN;
      if (!gro) {
        received++;
        uint8_t *p = payload - OUTER_LEN;
        ip4_header(p, OUTER_LEN + len, 64, 17, local, peer);
        put16(p + 20, ntohs(from[i].sin_port));
        put16(p + 22, GENEVE_PORT);
        put16(p + 24, (uint32_t)(8 + len));
        put16(p + 26, 0);
        tiov[out].iov_base = p;
        tiov[out].iov_len = (size_t)(OUTER_LEN + len);
        to[out] = from[i];
        to[out].sin_port = 0;
        memset(&tx[out].msg_hdr, 0, sizeof tx[out].msg_hdr);
        tx[out].msg_hdr.msg_name = &to[out];
        tx[out].msg_hdr.msg_namelen = sizeof to[out];
        tx[out].msg_hdr.msg_iov = &tiov[out];
        tx[out].msg_hdr.msg_iovlen = 1;
        out++;
        continue;
      }
      for (int off = 0; off < len && out < max_out; off += seg) {
        int l = len - off < seg ? len - off : seg;
        received++;
        uint8_t *h = hdrs + (size_t)out * OUTER_LEN;
        ip4_header(h, OUTER_LEN + l, 64, 17, local, peer);
        put16(h + 20, ntohs(from[i].sin_port));
        put16(h + 22, GENEVE_PORT);
        put16(h + 24, (uint32_t)(8 + l));
        put16(h + 26, 0);
        tiov[2 * out].iov_base = h;
        tiov[2 * out].iov_len = OUTER_LEN;
        tiov[2 * out + 1].iov_base = payload + off;
        tiov[2 * out + 1].iov_len = (size_t)l;
        to[out] = from[i];
        to[out].sin_port = 0;
        memset(&tx[out].msg_hdr, 0, sizeof tx[out].msg_hdr);
        tx[out].msg_hdr.msg_name = &to[out];
        tx[out].msg_hdr.msg_namelen = sizeof to[out];
        tx[out].msg_hdr.msg_iov = &tiov[2 * out];
        tx[out].msg_hdr.msg_iovlen = 2;
        out++;
      }
    }
    int done = send_all(raw, tx, out);
    dropped += out - done;
    reflected += done;
  }
  printf("{\"mode\":\"reflect\",\"received\":%.0f,\"reads\":%.0f,\"reflected\":%.0f,\"dropped\":%.0f,\"seconds\":%.3f}\n",
         received, reads, reflected, dropped, now_s() - t0);
  return 0;
}

// ---------------------------------------------------------------------------------------------
// probe mode (bench/scenarios/latency.ts): round-trip time of single small packets through the
// appliance. One flow of 64-byte inner packets (IPv4 or IPv6 UDP) at a fixed low rate; the
// sender SLEEPS between probes (a periodic timerfd, poll on it and the receive socket), so it
// takes no CPU from the appliance or the load beside it. Each probe carries its sequence number;
// its send time is CLOCK_REALTIME just before sendto (the raw send on a veth runs the appliance
// side's receive in the same call, so everything after it is the path's), its arrival time is
// the kernel's receive timestamp of the returned datagram (SO_TIMESTAMPNS, same clock), so this
// program's own wake-up delay is not in the figure. The RTTs (ns, uint32 little-endian, one per
// returned probe in arrival order) go to --out FILE; the summary line counts sent, returned, lost,
// duplicates, bad returns and late timer ticks (ticks that found the previous one still unserved).
// --src must be an address of its own (bench/scenarios/latency.ts adds 198.18.0.3): the returns
// come back to UDP 6081 of the source address, and `gen send` beside it has 198.18.0.1:6081.

#define PROBE_INNER 64
#define PROBE_PORT 61000

static int run_probe(const char *src, const char *dst, uint64_t eni, int family, double rate,
                     uint32_t count, double settle_ms, const char *cpus, const char *out_path,
                     double start_ns) {
  set_cpus(cpus);
  uint32_t gwlb_ip = parse_ip(src), appl_ip = parse_ip(dst);
  FILE *out = fopen(out_path, "wb");
  if (!out) die("fopen(--out)");
  int64_t *sent_at = malloc((size_t)count * sizeof *sent_at);
  uint32_t *rtt = malloc((size_t)count * sizeof *rtt);
  uint8_t *seen = calloc(count, 1);
  if (!sent_at || !rtt || !seen) die("malloc");

  // The packet: outer IPv4 + UDP + Geneve (GWLB's options) + the 64-byte inner packet.
  static plan_t pl;
  pl.eni = eni;
  pl.attach = 0x0123456789abcdefull;
  pl.nonce = (uint32_t)getpid() * 2654435761u;
  uint8_t pkt[OUTER_LEN + GENEVE_LEN + PROBE_INNER];
  const int len = (int)sizeof pkt;
  memset(pkt, 0, sizeof pkt);
  ip4_header(pkt, len, 64, 17, gwlb_ip, appl_ip);
  put16(pkt + 20, PROBE_PORT);
  put16(pkt + 22, GENEVE_PORT);
  put16(pkt + 24, (uint32_t)(8 + GENEVE_LEN + PROBE_INNER));
  geneve(&pl, 0, pkt + OUTER_LEN);
  uint8_t *in = pkt + OUTER_LEN + GENEVE_LEN;
  int hdr;  // inner IP + UDP header bytes; the payload (magic, seq, filler) follows
  if (family == 6) {
    put16(pkt + OUTER_LEN + 2, 0x86dd);
    hdr = 48;
    in[0] = 0x60;
    put16(in + 4, PROBE_INNER - 40);
    in[6] = 17;
    in[7] = 64;
    static const uint8_t s6[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xc8};
    static const uint8_t d6[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xc8};
    memcpy(in + 8, s6, 16);
    memcpy(in + 24, d6, 16);
  } else {
    hdr = INNER_HDR;
    ip4_header(in, PROBE_INNER, 64, 17, 0xc00002c8u, 0xc63364c8u);  // 192.0.2.200 -> 198.51.100.200
  }
  put16(in + hdr - 8, 10200);
  put16(in + hdr - 6, 7000);
  put16(in + hdr - 4, (uint32_t)(PROBE_INNER - hdr + 8));
  put32(in + hdr, MAGIC);
  for (int i = hdr + 8; i < PROBE_INNER; i++) in[i] = (uint8_t)(i * 7 + 3);

  int udp = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (udp < 0) die("socket(udp)");
  int one = 1;
  if (setsockopt(udp, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one) < 0) die("SO_TIMESTAMPNS");
  set_buf(udp, SO_RCVBUFFORCE, SO_RCVBUF, 4 << 20);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(GENEVE_PORT)};
  a.sin_addr.s_addr = htonl(gwlb_ip);
  if (bind(udp, (struct sockaddr *)&a, sizeof a) < 0) die("bind(6081)");
  int raw = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW);
  if (raw < 0) die("socket(raw)");
  struct sockaddr_in to = {.sin_family = AF_INET};
  to.sin_addr.s_addr = htonl(appl_ip);
  int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
  if (tfd < 0) die("timerfd_create");
  long period_ns = (long)(1e9 / rate);
  struct itimerspec its = {.it_interval = {period_ns / 1000000000L, period_ns % 1000000000L},
                           .it_value = {0, 1000000}};
  // --start-ns: the first probe at this CLOCK_MONOTONIC time (absolute), so that several probe
  // clients probing several appliances at once can be spread over the period, not all at once.
  int tflags = 0;
  if (start_ns > 0) {
    its.it_value.tv_sec = (time_t)(start_ns / 1e9);
    its.it_value.tv_nsec = (long)(start_ns - (double)its.it_value.tv_sec * 1e9);
    tflags = TFD_TIMER_ABSTIME;
  }
  if (timerfd_settime(tfd, tflags, &its, NULL) < 0) die("timerfd_settime");

  double returned = 0, dup = 0, bad = 0, late = 0, send_err = 0;
  uint32_t sent = 0;
  double t_end_send = 0, settle = settle_ms / 1000;
  uint8_t rbuf[2048];
  union {
    char b[CMSG_SPACE(sizeof(struct timespec))];
    struct cmsghdr al;
  } ctl;
  while (!stop_flag) {
    if (sent == count) {
      if (t_end_send == 0) t_end_send = now_s();
      if (now_s() - t_end_send >= settle || returned + bad >= count) break;
    }
    struct pollfd pf[2] = {{.fd = udp, .events = POLLIN}, {.fd = tfd, .events = POLLIN}};
    int np = sent == count ? 1 : 2;
    if (poll(pf, (nfds_t)np, sent == count ? 10 : 1000) < 0) {
      if (errno == EINTR) continue;
      die("poll");
    }
    if (np == 2 && (pf[1].revents & POLLIN)) {
      uint64_t ticks = 0;
      if (read(tfd, &ticks, sizeof ticks) == (ssize_t)sizeof ticks && ticks > 1) late += (double)(ticks - 1);
      // One probe per tick that fired: a late tick does not send a burst.
      put32(in + hdr + 4, sent);
      if (family == 6) {
        // UDP checksum (mandatory in IPv6) over the pseudo-header and the datagram.
        put16(in + 46, 0);
        uint32_t s = 0;
        for (int i = 8; i < 40; i += 2) s += (uint32_t)(in[i] << 8 | in[i + 1]);
        s += 17 + (uint32_t)(PROBE_INNER - 40);
        for (int i = 40; i < PROBE_INNER; i += 2) s += (uint32_t)(in[i] << 8 | in[i + 1]);
        while (s >> 16) s = (s & 0xffff) + (s >> 16);
        uint32_t c = ~s & 0xffff;
        put16(in + 46, c == 0 ? 0xffff : c);
      }
      struct timespec ts;
      clock_gettime(CLOCK_REALTIME, &ts);
      sent_at[sent] = (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
      if (sendto(raw, pkt, (size_t)len, 0, (struct sockaddr *)&to, sizeof to) != len) send_err++;
      sent++;
    }
    for (;;) {
      struct sockaddr_in from;
      struct iovec iov = {.iov_base = rbuf, .iov_len = sizeof rbuf};
      struct msghdr mh = {.msg_name = &from, .msg_namelen = sizeof from, .msg_iov = &iov,
                          .msg_iovlen = 1, .msg_control = ctl.b, .msg_controllen = sizeof ctl.b};
      ssize_t n = recvmsg(udp, &mh, MSG_DONTWAIT);
      if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) break;
        die("recvmsg");
      }
      int64_t at = -1;
      for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
          struct timespec ts;
          memcpy(&ts, CMSG_DATA(c), sizeof ts);
          at = (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
        }
      }
      const uint8_t *r = rbuf + GENEVE_LEN;
      if (n != GENEVE_LEN + PROBE_INNER || at < 0 || ntohl(from.sin_addr.s_addr) != appl_ip ||
          ntohs(from.sin_port) != PROBE_PORT || (r[0] >> 4) != (family == 6 ? 6 : 4) ||
          get32(r + hdr) != MAGIC || get32(r + hdr + 4) >= sent) {
        bad++;
        continue;
      }
      uint32_t seq = get32(r + hdr + 4);
      if (seen[seq]) { dup++; continue; }
      seen[seq] = 1;
      int64_t d = at - sent_at[seq];
      rtt[(uint32_t)returned] = d < 0 ? 0 : d > 0xffffffffLL ? 0xffffffffu : (uint32_t)d;
      returned++;
    }
  }
  for (uint32_t i = 0; i < (uint32_t)returned; i++) {
    uint8_t b[4] = {(uint8_t)rtt[i], (uint8_t)(rtt[i] >> 8), (uint8_t)(rtt[i] >> 16), (uint8_t)(rtt[i] >> 24)};
    if (fwrite(b, 1, 4, out) != 4) die("fwrite(--out)");
  }
  if (fclose(out) != 0) die("fclose(--out)");
  printf("{\"mode\":\"probe\",\"family\":%d,\"rate\":%.0f,\"sent\":%u,\"returned\":%.0f,\"lost\":%.0f,"
         "\"duplicates\":%.0f,\"bad\":%.0f,\"late\":%.0f,\"sendErrors\":%.0f}\n",
         family, rate, sent, returned, (double)sent - returned, dup, bad, late, send_err);
  return 0;
}

// ---------------------------------------------------------------------------------------------

static double num(const char *s, double lo, double hi) {
  char *end;
  double v = strtod(s, &end);
  if (end == s || *end || !(v >= lo && v <= hi)) usage();
  return v;
}

int main(int argc, char **argv) {
  if (argc < 2) usage();
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  const char *mode = argv[1];
  if (strcmp(mode, "exec") == 0) {
    const char *cpus = NULL;
    int i = 2;
    for (; i < argc; i++) {
      if (strcmp(argv[i], "--cpus") == 0 && i + 1 < argc) cpus = argv[++i];
      else if (strcmp(argv[i], "--") == 0) { i++; break; }
      else usage();
    }
    if (i >= argc) usage();
    set_cpus(cpus);
    execvp(argv[i], argv + i);
    die("execvp");
  }
  if (strcmp(mode, "reflect") == 0) {
    double seconds = 10;
    const char *cpus = NULL;
    int batch = 64, gro = 0;
    for (int i = 2; i < argc; i++) {
      if (i + 1 >= argc) usage();
      if (strcmp(argv[i], "--seconds") == 0) seconds = num(argv[++i], 0.001, 3600);
      else if (strcmp(argv[i], "--cpus") == 0) cpus = argv[++i];
      else if (strcmp(argv[i], "--batch") == 0) batch = (int)num(argv[++i], 1, MAX_BATCH);
      else if (strcmp(argv[i], "--gro") == 0) gro = (int)num(argv[++i], 0, 1);
      else usage();
    }
    return run_reflect(seconds, cpus, batch, gro);
  }
  if (strcmp(mode, "probe") == 0) {
    const char *src = "198.18.0.3", *dst = "198.18.0.2", *cpus = NULL, *out = NULL;
    uint64_t eni = 0;
    int family = 4, have_eni = 0;
    double rate = 2000, count = 60000, settle_ms = 1000, start_ns = 0;
    for (int i = 2; i < argc; i++) {
      if (i + 1 >= argc) usage();
      const char *k = argv[i], *val = argv[++i];
      if (strcmp(k, "--src") == 0) src = val;
      else if (strcmp(k, "--dst") == 0) dst = val;
      else if (strcmp(k, "--cpus") == 0) cpus = val;
      else if (strcmp(k, "--out") == 0) out = val;
      else if (strcmp(k, "--family") == 0) family = (int)num(val, 4, 6);
      else if (strcmp(k, "--rate") == 0) rate = num(val, 1, 100000);
      else if (strcmp(k, "--count") == 0) count = num(val, 1, 10000000);
      else if (strcmp(k, "--settle-ms") == 0) settle_ms = num(val, 0, 60000);
      else if (strcmp(k, "--start-ns") == 0) start_ns = num(val, 0, 1e19);
      else if (strcmp(k, "--eni") == 0) {
        char *end;
        errno = 0;
        eni = strtoull(val, &end, 16);
        if (end == val || *end || errno) usage();
        have_eni = 1;
      } else usage();
    }
    if (!have_eni || out == NULL || (family != 4 && family != 6)) usage();
    return run_probe(src, dst, eni, family, rate, (uint32_t)count, settle_ms, cpus, out, start_ns);
  }
  if (strcmp(mode, "send") != 0) usage();
  send_opts_t o = {.src = "198.18.0.1", .dst = "198.18.0.2", .cpus = NULL, .eni = 0, .flows = 64,
                   .size = 100, .batch = 0, .ttl_dec = 1, .rate = 0, .seconds = 5, .count = 1e7,
                   .warmup_ms = 500, .settle_ms = 1000};
  int have_eni = 0;
  for (int i = 2; i < argc; i++) {
    if (i + 1 >= argc) usage();
    const char *k = argv[i], *val = argv[++i];
    if (strcmp(k, "--src") == 0) o.src = val;
    else if (strcmp(k, "--dst") == 0) o.dst = val;
    else if (strcmp(k, "--cpus") == 0) o.cpus = val;
    else if (strcmp(k, "--eni") == 0) {
      char *end;
      errno = 0;
      o.eni = strtoull(val, &end, 16);
      if (end == val || *end || errno) usage();
      have_eni = 1;
    } else if (strcmp(k, "--flows") == 0) o.flows = (uint32_t)num(val, 1, 12700000);
    else if (strcmp(k, "--size") == 0) o.size = (int)num(val, INNER_HDR + PAYLOAD_MIN, MAX_INNER);
    else if (strcmp(k, "--tcp-run") == 0) o.tcp_run = (int)num(val, 0, 1024);
    else if (strcmp(k, "--udp-csum") == 0) o.udp_csum = (int)num(val, 0, 1);
    else if (strcmp(k, "--rate") == 0) o.rate = num(val, 0, 1e8);
    else if (strcmp(k, "--count") == 0) o.count = num(val, 1, 1e10);
    else if (strcmp(k, "--seconds") == 0) o.seconds = num(val, 0.001, 600);
    else if (strcmp(k, "--warmup-ms") == 0) o.warmup_ms = num(val, 0, 600000);
    else if (strcmp(k, "--settle-ms") == 0) o.settle_ms = num(val, 0, 600000);
    else if (strcmp(k, "--batch") == 0) o.batch = (int)num(val, 1, MAX_BATCH);
    else if (strcmp(k, "--ttl-dec") == 0) o.ttl_dec = (int)num(val, 0, 63);
    else if (strcmp(k, "--spin") == 0) o.spin = (int)num(val, 0, 1);
    else usage();
  }
  if (!have_eni) usage();
  // Paced: about 4 batches per millisecond (as the TypeScript emulator), so a fixed rate arrives
  // as small bursts; unpaced: 64 per sendmmsg.
  if (o.batch == 0) {
    if (o.rate > 0) {
      int b = (int)((o.rate + 3999) / 4000);
      o.batch = b < 1 ? 1 : b > 64 ? 64 : b;
    } else o.batch = 64;
  }
  return run_send(&o);
}
