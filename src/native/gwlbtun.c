// gwlbtun native addon: Linux syscall shims for the TypeScript data plane.
//
// Contract: src/io/native.ts. This file only moves bytes between the kernel and memory that JS
// preallocated; it never parses or builds a packet. Keeping packet logic in TS keeps one
// implementation of the protocol (tested without root) and keeps this file small enough to audit.
//
// Why batches: each JS->C call costs a few hundred ns of Node-API glue, and each syscall a kernel
// entry. recvmmsg/sendmmsg move a whole batch per syscall, and every packet call takes a batch,
// so both costs are paid once per batch. TUN has no batched read/write, so those loop in C.
//
// Safety rules followed by every function:
// - Only Node-API (ABI-stable); registered with NAPI_MODULE_INIT, no mutable globals, so the
//   addon can be loaded in several worker_threads of one process.
// - Every number read from JS (arguments and per-packet metadata) is read once into a local,
//   checked against the typed array's length, and only then used: whatever JS passes (even a
//   SharedArrayBuffer another thread is writing), we never touch memory outside the arrays.
// - No allocation per call or per packet: the syscall descriptor arrays live on the stack with
//   a fixed maximum batch (a larger batch is done in chunks).

#define _GNU_SOURCE
#include <node_api.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/ethtool.h>
#include <linux/if_tun.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sockios.h>
#include <math.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

// Largest batch handed to one recvmmsg/sendmmsg. Stack use: about 128 bytes per message, so
// 256 messages is ~32 KiB, comfortable on a worker thread's stack. Measured: batches beyond 64-256
// gain nothing, so bigger requests are simply split into several syscalls.
#define MAX_CHUNK 256
// epoll_wait events buffer (on the stack).
#define MAX_EVENTS 256

// ---------------------------------------------------------------------------------------------
// Errors

static const struct { int num; const char *name; } ERRNO_NAMES[] = {
  {EPERM, "EPERM"}, {ENOENT, "ENOENT"}, {ESRCH, "ESRCH"}, {EINTR, "EINTR"}, {EIO, "EIO"},
  {ENXIO, "ENXIO"}, {E2BIG, "E2BIG"}, {EBADF, "EBADF"}, {EAGAIN, "EAGAIN"}, {ENOMEM, "ENOMEM"},
  {EACCES, "EACCES"}, {EFAULT, "EFAULT"}, {EBUSY, "EBUSY"}, {EEXIST, "EEXIST"},
  {ENODEV, "ENODEV"}, {ENOTDIR, "ENOTDIR"}, {EINVAL, "EINVAL"}, {ENFILE, "ENFILE"},
  {EMFILE, "EMFILE"}, {ENOSPC, "ENOSPC"}, {EPIPE, "EPIPE"}, {ERANGE, "ERANGE"},
  {ENAMETOOLONG, "ENAMETOOLONG"}, {ENOSYS, "ENOSYS"}, {EBADFD, "EBADFD"},
  {ENOTSOCK, "ENOTSOCK"}, {EDESTADDRREQ, "EDESTADDRREQ"}, {EMSGSIZE, "EMSGSIZE"},
  {EPROTOTYPE, "EPROTOTYPE"}, {ENOPROTOOPT, "ENOPROTOOPT"},
  {EPROTONOSUPPORT, "EPROTONOSUPPORT"}, {EOPNOTSUPP, "EOPNOTSUPP"},
  {EAFNOSUPPORT, "EAFNOSUPPORT"}, {EADDRINUSE, "EADDRINUSE"},
  {EADDRNOTAVAIL, "EADDRNOTAVAIL"}, {ENETDOWN, "ENETDOWN"}, {ENETUNREACH, "ENETUNREACH"},
  {ECONNRESET, "ECONNRESET"}, {ENOBUFS, "ENOBUFS"}, {ENOTCONN, "ENOTCONN"},
  {ETIMEDOUT, "ETIMEDOUT"}, {ECONNREFUSED, "ECONNREFUSED"}, {EHOSTUNREACH, "EHOSTUNREACH"},
};

static void errno_name(int err, char *out, size_t n) {
  for (size_t i = 0; i < sizeof(ERRNO_NAMES) / sizeof(ERRNO_NAMES[0]); i++) {
    if (ERRNO_NAMES[i].num == err) {
      snprintf(out, n, "%s", ERRNO_NAMES[i].name);
      return;
    }
  }
  snprintf(out, n, "E%d", err);
}

// Throws Error("<what>: <syscall>: <strerror>") with .code = errno name and .errno = number.
// Returns NULL so callers can `return throw_errno(...)`.
static napi_value throw_errno(napi_env env, const char *what, const char *syscall, int err) {
  char msg[256], code[32];
  // strerror is thread-safe in glibc >= 2.32 and musl (static strings); we only read it.
  snprintf(msg, sizeof msg, "%s: %s: %s", what, syscall, strerror(err));
  errno_name(err, code, sizeof code);
  napi_value jmsg, jcode, jerr, jnum;
  if (napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &jmsg) != napi_ok ||
      napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &jcode) != napi_ok ||
      napi_create_error(env, jcode, jmsg, &jerr) != napi_ok ||
      napi_create_int32(env, err, &jnum) != napi_ok ||
      napi_set_named_property(env, jerr, "errno", jnum) != napi_ok) {
    napi_throw_error(env, code, msg);  // fallback: at least the message and code
    return NULL;
  }
  napi_throw(env, jerr);
  return NULL;
}

static napi_value throw_type(napi_env env, const char *msg) {
  napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", msg);
  return NULL;
}

static napi_value throw_range(napi_env env, const char *msg) {
  napi_throw_range_error(env, "ERR_OUT_OF_RANGE", msg);
  return NULL;
}

// ---------------------------------------------------------------------------------------------
// Argument helpers. Each returns 0 on success, or -1 after throwing (the caller returns NULL).

#define MAX_ARGS 8

static int get_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv,
                    const char *fn) {
  size_t argc = MAX_ARGS;
  napi_value tmp[MAX_ARGS];
  if (napi_get_cb_info(env, info, &argc, tmp, NULL, NULL) != napi_ok) return -1;
  if (argc < want) {
    char msg[96];
    snprintf(msg, sizeof msg, "%s: expected %zu arguments, got %zu", fn, want, argc);
    throw_type(env, msg);
    return -1;
  }
  for (size_t i = 0; i < want; i++) argv[i] = tmp[i];
  return 0;
}

// An integer-valued number within [lo, hi] (NaN, fractions and out-of-range values throw).
static int get_int(napi_env env, napi_value v, const char *name, int64_t lo, int64_t hi,
                   int64_t *out) {
  napi_valuetype t;
  double d;
  char msg[128];
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_number ||
      napi_get_value_double(env, v, &d) != napi_ok) {
    snprintf(msg, sizeof msg, "%s must be a number", name);
    throw_type(env, msg);
    return -1;
  }
  if (!(d >= (double)lo && d <= (double)hi) || d != floor(d)) {
    snprintf(msg, sizeof msg, "%s must be an integer in [%lld, %lld], got %g", name,
             (long long)lo, (long long)hi, d);
    throw_range(env, msg);
    return -1;
  }
  *out = (int64_t)d;
  return 0;
}

static int get_i32(napi_env env, napi_value v, const char *name, int32_t lo, int32_t *out) {
  int64_t x;
  if (get_int(env, v, name, lo, INT32_MAX, &x) != 0) return -1;
  *out = (int32_t)x;
  return 0;
}

// A typed array of the wanted element type (Uint8Array or Buffer for bytes, Int32Array for
// metadata). `len` is in elements. `data` already includes the view's byte offset.
static int get_typed(napi_env env, napi_value v, napi_typedarray_type want, const char *name,
                     void **data, size_t *len) {
  bool is;
  napi_typedarray_type type;
  char msg[96];
  if (napi_is_typedarray(env, v, &is) != napi_ok || !is ||
      napi_get_typedarray_info(env, v, &type, len, data, NULL, NULL) != napi_ok ||
      type != want) {
    snprintf(msg, sizeof msg, "%s must be %s", name,
             want == napi_uint8_array     ? "a Uint8Array"
             : want == napi_float64_array ? "a Float64Array"
                                          : "an Int32Array");
    throw_type(env, msg);
    return -1;
  }
  if (*data == NULL) *len = 0;  // detached buffer: treat as empty, bounds checks then reject
  return 0;
}

// An interface name: a non-empty string shorter than IFNAMSIZ.
static int get_ifname(napi_env env, napi_value v, const char *fn, char out[IFNAMSIZ]) {
  napi_valuetype t;
  size_t n;
  char msg[96];
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_string) {
    snprintf(msg, sizeof msg, "%s: name must be a string", fn);
    throw_type(env, msg);
    return -1;
  }
  if (napi_get_value_string_utf8(env, v, NULL, 0, &n) != napi_ok) return -1;
  if (n == 0 || n >= IFNAMSIZ) {
    snprintf(msg, sizeof msg, "%s: interface name must be 1..%d bytes", fn, IFNAMSIZ - 1);
    throw_range(env, msg);
    return -1;
  }
  memset(out, 0, IFNAMSIZ);
  napi_get_value_string_utf8(env, v, out, IFNAMSIZ, &n);
  if (strlen(out) != n) {  // embedded NUL would silently name another interface
    snprintf(msg, sizeof msg, "%s: interface name contains NUL", fn);
    throw_range(env, msg);
    return -1;
  }
  return 0;
}

static napi_value ret_int(napi_env env, int64_t v) {
  napi_value r;
  napi_create_int64(env, v, &r);
  return r;
}

static napi_value ret_undefined(napi_env env) {
  napi_value r;
  napi_get_undefined(env, &r);
  return r;
}

// ---------------------------------------------------------------------------------------------
// TUN devices and links

// One new queue of TUN/TAP device `name` with these TUNSETIFF flags, non-blocking and close-on-exec;
// -1 after throwing (the pending exception names `what`).
static int open_queue(napi_env env, const char *what, const char *name, short flags) {
  int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    throw_errno(env, what, "open /dev/net/tun", errno);
    return -1;
  }
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  ifr.ifr_flags = flags;
  memcpy(ifr.ifr_name, name, IFNAMSIZ);
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
    int e = errno;
    close(fd);
    throw_errno(env, what, "TUNSETIFF", e);
    return -1;
  }
  return fd;
}

// tunOpen(name[, vnetHdr]): fd of one new queue of TUN device `name`.
static napi_value TunOpen(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  size_t argc = 2;
  char name[IFNAMSIZ], what[48];
  bool vnet = false;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  if (argc < 1) return throw_type(env, "tunOpen: expected at least 1 argument");
  if (get_ifname(env, argv[0], "tunOpen", name)) return NULL;
  if (argc >= 2) {
    napi_valuetype t;
    if (napi_typeof(env, argv[1], &t) != napi_ok) return NULL;
    if (t != napi_undefined) {
      if (t != napi_boolean) return throw_type(env, "tunOpen: vnetHdr must be a boolean");
      if (napi_get_value_bool(env, argv[1], &vnet) != napi_ok) return NULL;
    }
  }
  snprintf(what, sizeof what, "tunOpen(%s)", name);
  // IFF_NO_PI: packets are bare IP (the version nibble tells v4 from v6).
  // IFF_MULTI_QUEUE: every worker attaches its own queue of the same device.
  // IFF_VNET_HDR (offloads): a 10-byte virtio_net_hdr in front of every packet both ways (the
  // kernel's default header size; src/wire/virtio.ts reads and writes it).
  int fd = open_queue(env, what, name, IFF_TUN | IFF_NO_PI | IFF_MULTI_QUEUE | (vnet ? IFF_VNET_HDR : 0));
  return fd < 0 ? NULL : ret_int(env, fd);
}

// tapOpen(name, vnetHdrSize): fd of one new queue of TAP device `name` (IFF_TAP | IFF_NO_PI |
// IFF_MULTI_QUEUE | IFF_VNET_HDR), its virtio header vnetHdrSize bytes (TUNSETVNETHDRSZ; 24 for
// the UDP tunnel GSO header). Frames written to it enter the kernel as if received on it.
static napi_value TapOpen(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int32_t hdr;
  char name[IFNAMSIZ], what[48];
  if (get_args(env, info, 2, argv, "tapOpen") || get_ifname(env, argv[0], "tapOpen", name) ||
      get_i32(env, argv[1], "vnetHdrSize", 10, &hdr))
    return NULL;
  if (hdr > 64) return throw_range(env, "tapOpen: vnetHdrSize must be 10..64");
  snprintf(what, sizeof what, "tapOpen(%s)", name);
  int fd = open_queue(env, what, name, IFF_TAP | IFF_NO_PI | IFF_MULTI_QUEUE | IFF_VNET_HDR);
  if (fd < 0) return NULL;
  int sz = hdr;
  if (ioctl(fd, TUNSETVNETHDRSZ, &sz) < 0) {
    int e = errno;
    close(fd);
    return throw_errno(env, what, "TUNSETVNETHDRSZ", e);
  }
  return ret_int(env, fd);
}

// tunSetOffload(fd, flags): TUNSETOFFLOAD; returns 0 or the errno (EINVAL: a flag this kernel
// does not know), so that TypeScript probes features without exceptions.
static napi_value TunSetOffload(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int32_t fd, flags;
  if (get_args(env, info, 2, argv, "tunSetOffload") || get_i32(env, argv[0], "fd", 0, &fd) ||
      get_i32(env, argv[1], "flags", 0, &flags))
    return NULL;
  if (ioctl(fd, TUNSETOFFLOAD, (unsigned long)(uint32_t)flags) < 0) return ret_int(env, errno);
  return ret_int(env, 0);
}

// tunSetQueue(fd, attach): TUNSETQUEUE with IFF_ATTACH_QUEUE or IFF_DETACH_QUEUE. A detached
// queue stays open (and keeps the device alive) but the kernel queues nothing on it.
static napi_value TunSetQueue(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int32_t fd;
  bool attach;
  if (get_args(env, info, 2, argv, "tunSetQueue") || get_i32(env, argv[0], "fd", 0, &fd)) return NULL;
  if (napi_get_value_bool(env, argv[1], &attach) != napi_ok) return throw_type(env, "tunSetQueue: attach must be a boolean");
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  ifr.ifr_flags = attach ? IFF_ATTACH_QUEUE : IFF_DETACH_QUEUE;
  if (ioctl(fd, TUNSETQUEUE, &ifr) < 0) return throw_errno(env, "tunSetQueue", "TUNSETQUEUE", errno);
  return ret_undefined(env);
}

// tunSetPersist(fd, on): TUNSETPERSIST on a queue (the setting is the device's). A persistent
// device outlives its last queue; clearing it before that close restores the usual ending.
static napi_value TunSetPersist(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int32_t fd;
  bool on;
  if (get_args(env, info, 2, argv, "tunSetPersist") || get_i32(env, argv[0], "fd", 0, &fd)) return NULL;
  if (napi_get_value_bool(env, argv[1], &on) != napi_ok) return throw_type(env, "tunSetPersist: on must be a boolean");
  if (ioctl(fd, TUNSETPERSIST, (unsigned long)(on ? 1 : 0)) < 0) return throw_errno(env, "tunSetPersist", "TUNSETPERSIST", errno);
  return ret_undefined(env);
}

// An ordinary socket for interface ioctls and `ifr` cleared and naming `name`; -1 after throwing.
static int ifr_socket(napi_env env, const char *what, const char *name, struct ifreq *ifr) {
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) {
    throw_errno(env, what, "socket", errno);
    return -1;
  }
  memset(ifr, 0, sizeof *ifr);
  memcpy(ifr->ifr_name, name, IFNAMSIZ);
  return s;
}

// linkSetup(name, mtu): set the MTU and IFF_UP through an ordinary socket's interface ioctls.
static napi_value LinkSetup(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  char name[IFNAMSIZ], what[48];
  int32_t mtu, qlen;
  if (get_args(env, info, 3, argv, "linkSetup") || get_ifname(env, argv[0], "linkSetup", name) ||
      get_i32(env, argv[1], "mtu", 1, &mtu) || get_i32(env, argv[2], "txqueuelen", 0, &qlen))
    return NULL;
  snprintf(what, sizeof what, "linkSetup(%s)", name);
  struct ifreq ifr;
  int s = ifr_socket(env, what, name, &ifr);
  if (s < 0) return NULL;
  const char *step = "SIOCSIFMTU";
  ifr.ifr_mtu = mtu;
  if (ioctl(s, SIOCSIFMTU, &ifr) < 0) goto fail;
  if (qlen > 0) {
    // A TUN queue's ring is txqueuelen packets long (resized on change): what the kernel can hold
    // for us between two reads.
    step = "SIOCSIFTXQLEN";
    ifr.ifr_qlen = qlen;
    if (ioctl(s, SIOCSIFTXQLEN, &ifr) < 0) goto fail;
  }
  step = "SIOCGIFFLAGS";
  if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0) goto fail;
  step = "SIOCSIFFLAGS";
  ifr.ifr_flags |= IFF_UP;
  if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0) goto fail;
  close(s);
  return ret_undefined(env);
fail: {
    int e = errno;
    close(s);
    return throw_errno(env, what, step, e);
  }
}

// ifIndex(name): 0 when there is no such interface (also for names that cannot exist).
static napi_value IfIndex(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  napi_valuetype t;
  char name[IFNAMSIZ + 1];
  size_t n;
  if (get_args(env, info, 1, argv, "ifIndex")) return NULL;
  if (napi_typeof(env, argv[0], &t) != napi_ok || t != napi_string)
    return throw_type(env, "ifIndex: name must be a string");
  // Read one byte more than fits: a longer name is no interface, not an error.
  napi_get_value_string_utf8(env, argv[0], name, sizeof name, &n);
  if (n == 0 || n >= IFNAMSIZ || strlen(name) != n) return ret_int(env, 0);
  return ret_int(env, if_nametoindex(name));
}

// close(fd): EBADF is ignored (double close in teardown paths); EINTR too, because Linux has
// released the descriptor anyway and retrying could close someone else's new fd.
static napi_value Close(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int64_t fd;
  if (get_args(env, info, 1, argv, "close") || get_int(env, argv[0], "fd", INT32_MIN, INT32_MAX, &fd))
    return NULL;
  if (close((int)fd) < 0 && errno != EBADF && errno != EINTR) {
    char what[32];
    snprintf(what, sizeof what, "close(%d)", (int)fd);
    return throw_errno(env, what, "close", errno);
  }
  return ret_undefined(env);
}

// sdNotify(path, state): one datagram with `state` to systemd's notification socket (the
// NOTIFY_SOCKET path, '@' first for the abstract namespace), sent by this process itself, so that
// NotifyAccess=main accepts it (src/control/handover.ts). Returns 0 or -errno; never throws for
// the send.
static napi_value SdNotify(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  char path[sizeof(((struct sockaddr_un *)0)->sun_path) + 1];
  char msg[512];
  size_t plen = 0, mlen = 0;
  if (get_args(env, info, 2, argv, "sdNotify")) return NULL;
  if (napi_get_value_string_utf8(env, argv[0], path, sizeof path, &plen) != napi_ok ||
      napi_get_value_string_utf8(env, argv[1], msg, sizeof msg, &mlen) != napi_ok)
    return throw_type(env, "sdNotify: path and state must be strings");
  struct sockaddr_un sa;
  if (plen == 0 || plen >= sizeof sa.sun_path || mlen == 0 || mlen >= sizeof msg - 1) return ret_int(env, -EINVAL);
  memset(&sa, 0, sizeof sa);
  sa.sun_family = AF_UNIX;
  memcpy(sa.sun_path, path, plen);
  if (path[0] == '@') sa.sun_path[0] = 0;
  socklen_t salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + plen + (path[0] == '@' ? 0 : 1));
  int s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) return ret_int(env, -errno);
  int err = sendto(s, msg, mlen, MSG_NOSIGNAL, (struct sockaddr *)&sa, salen) < 0 ? errno : 0;
  close(s);
  return ret_int(env, -err);
}

// setCloexec(fd): FD_CLOEXEC on a descriptor a hand-over passed (dup2 in the new process cleared
// it; src/control/handover.ts), so that the hooks this process runs do not inherit it.
static napi_value SetCloexec(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int64_t fd;
  if (get_args(env, info, 1, argv, "setCloexec") || get_int(env, argv[0], "fd", 0, INT32_MAX, &fd))
    return NULL;
  int fl = fcntl((int)fd, F_GETFD);
  if (fl < 0 || fcntl((int)fd, F_SETFD, fl | FD_CLOEXEC) < 0) {
    char what[32];
    snprintf(what, sizeof what, "setCloexec(%d)", (int)fd);
    return throw_errno(env, what, "fcntl", errno);
  }
  return ret_undefined(env);
}

// ---------------------------------------------------------------------------------------------
// UDP receive (Geneve from GWLB)

// Buffer-size option: the *FORCE variant lets root exceed net.core.[rw]mem_max; without
// CAP_NET_ADMIN it fails and we fall back to the plain option (clamped by the kernel).
static int set_bufsize(int fd, int force_opt, int opt, int bytes) {
  if (setsockopt(fd, SOL_SOCKET, force_opt, &bytes, sizeof bytes) == 0) return 0;
  return setsockopt(fd, SOL_SOCKET, opt, &bytes, sizeof bytes);
}

// udpOpen(port, rcvbuf, reusePort)
static napi_value UdpOpen(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  int64_t port, rcvbuf;
  bool reuse_port;
  napi_valuetype t;
  if (get_args(env, info, 3, argv, "udpOpen") ||
      get_int(env, argv[0], "port", 0, 65535, &port) ||
      get_int(env, argv[1], "rcvbuf", 0, INT32_MAX, &rcvbuf))
    return NULL;
  if (napi_typeof(env, argv[2], &t) != napi_ok || t != napi_boolean ||
      napi_get_value_bool(env, argv[2], &reuse_port) != napi_ok)
    return throw_type(env, "udpOpen: reusePort must be a boolean");
  char what[32];
  snprintf(what, sizeof what, "udpOpen(%d)", (int)port);

  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_errno(env, what, "socket", errno);
  int one = 1;
  const char *step;
  // No SO_REUSEADDR, deliberately, although the contract lists it: for UDP on Linux it lets a
  // second socket (say, a second daemon) bind the same port when both set it, silently
  // splitting or stealing traffic, and UDP has no TIME_WAIT for it to help with. Port sharing
  // is exactly what SO_REUSEPORT is for, and only when asked.
  step = "setsockopt(SO_REUSEPORT)";
  if (reuse_port && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0) goto fail;
  // IP_PKTINFO: which of our addresses the datagram was sent to (the GWLB-facing one).
  step = "setsockopt(IP_PKTINFO)";
  if (setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof one) < 0) goto fail;
  step = "setsockopt(SO_RCVBUF)";
  if (rcvbuf > 0 && set_bufsize(fd, SO_RCVBUFFORCE, SO_RCVBUF, (int)rcvbuf) < 0) goto fail;
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_ANY);
  sa.sin_port = htons((uint16_t)port);
  step = "bind";
  if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) goto fail;
  return ret_int(env, fd);
fail: {
    int e = errno;
    close(fd);
    return throw_errno(env, what, step, e);
  }
}

// Control buffer per message: room for one in_pktinfo (the only cmsg we enable).
#define CMSG_ROOM CMSG_SPACE(sizeof(struct in_pktinfo))

// udpRecv(fd, buf, slotSize, maxPkts, meta): recvmmsg into fixed slots, metadata per datagram.
static napi_value UdpRecv(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  int32_t fd, slot_size, max_pkts;
  uint8_t *buf;
  int32_t *meta;
  size_t buf_len, meta_len;
  if (get_args(env, info, 5, argv, "udpRecv") || get_i32(env, argv[0], "fd", 0, &fd) ||
      get_typed(env, argv[1], napi_uint8_array, "buf", (void **)&buf, &buf_len) ||
      get_i32(env, argv[2], "slotSize", 1, &slot_size) ||
      get_i32(env, argv[3], "maxPkts", 0, &max_pkts) ||
      get_typed(env, argv[4], napi_int32_array, "meta", (void **)&meta, &meta_len))
    return NULL;
  if ((uint64_t)max_pkts * (uint64_t)slot_size > buf_len)
    return throw_range(env, "udpRecv: maxPkts * slotSize exceeds buf.length");
  if ((uint64_t)max_pkts * 5 > meta_len)
    return throw_range(env, "udpRecv: meta.length must be at least maxPkts * 5");

  struct mmsghdr msgs[MAX_CHUNK];
  struct iovec iov[MAX_CHUNK];
  struct sockaddr_in from[MAX_CHUNK];
  // union forces the alignment CMSG_* macros expect.
  union { char b[CMSG_ROOM]; struct cmsghdr align; } ctl[MAX_CHUNK];

  int total = 0, eintr_retried = 0;
  while (total < max_pkts) {
    int want = max_pkts - total < MAX_CHUNK ? max_pkts - total : MAX_CHUNK;
    for (int i = 0; i < want; i++) {
      iov[i].iov_base = buf + (size_t)(total + i) * (size_t)slot_size;
      iov[i].iov_len = (size_t)slot_size;
      memset(&msgs[i].msg_hdr, 0, sizeof msgs[i].msg_hdr);
      msgs[i].msg_hdr.msg_name = &from[i];
      msgs[i].msg_hdr.msg_namelen = sizeof from[i];
      msgs[i].msg_hdr.msg_iov = &iov[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
      msgs[i].msg_hdr.msg_control = ctl[i].b;
      msgs[i].msg_hdr.msg_controllen = sizeof ctl[i].b;
      msgs[i].msg_len = 0;
    }
    int n = recvmmsg(fd, msgs, (unsigned)want, MSG_DONTWAIT, NULL);
    if (n < 0) {
      if (errno == EINTR && !eintr_retried) {
        eintr_retried = 1;
        continue;
      }
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR || total > 0) break;
      return ret_int(env, -errno);
    }
    for (int i = 0; i < n; i++) {
      int32_t *m = meta + (size_t)(total + i) * 5;
      struct msghdr *h = &msgs[i].msg_hdr;
      uint32_t len = msgs[i].msg_len;  // bytes stored (the kernel truncates to the slot)
      m[0] = (int32_t)(len > (uint32_t)slot_size ? (uint32_t)slot_size : len);
      if (h->msg_namelen >= sizeof(struct sockaddr_in) && from[i].sin_family == AF_INET) {
        m[1] = (int32_t)ntohl(from[i].sin_addr.s_addr);
        m[2] = ntohs(from[i].sin_port);
      } else {
        m[1] = 0;
        m[2] = 0;
      }
      m[3] = 0;
      for (struct cmsghdr *c = CMSG_FIRSTHDR(h); c != NULL; c = CMSG_NXTHDR(h, c)) {
        if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO &&
            c->cmsg_len >= CMSG_LEN(sizeof(struct in_pktinfo))) {
          struct in_pktinfo pi;
          memcpy(&pi, CMSG_DATA(c), sizeof pi);
          m[3] = (int32_t)ntohl(pi.ipi_addr.s_addr);  // header destination, not ipi_spec_dst
        }
      }
      m[4] = (h->msg_flags & MSG_TRUNC) ? 1 : 0;
    }
    total += n;
    if (n < want) break;  // queue drained
  }
  return ret_int(env, total);
}

// ---------------------------------------------------------------------------------------------
// Raw IPv4 send (Geneve back to GWLB; JS builds the whole IPv4 packet)

// rawOpen(sndbuf)
static napi_value RawOpen(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int64_t sndbuf;
  if (get_args(env, info, 1, argv, "rawOpen") ||
      get_int(env, argv[0], "sndbuf", 0, INT32_MAX, &sndbuf))
    return NULL;
  int fd = socket(AF_INET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_RAW);
  if (fd < 0) return throw_errno(env, "rawOpen", "socket", errno);
  int one = 1;
  const char *step = "setsockopt(IP_HDRINCL)";
  // IPPROTO_RAW implies IP_HDRINCL; set it anyway so the intent is explicit.
  if (setsockopt(fd, IPPROTO_IP, IP_HDRINCL, &one, sizeof one) < 0) goto fail;
  step = "setsockopt(SO_SNDBUF)";
  if (sndbuf > 0 && set_bufsize(fd, SO_SNDBUFFORCE, SO_SNDBUF, (int)sndbuf) < 0) goto fail;
  return ret_int(env, fd);
fail: {
    int e = errno;
    close(fd);
    return throw_errno(env, "rawOpen", step, e);
  }
}

// Reads packet i's (offset, length) from meta at stride `stride` starting at `base` and checks it
// lies inside buf. Returns 0 if valid.
static int packet_span(const int32_t *meta, size_t i, int stride, int base, size_t buf_len,
                       int32_t *off, int32_t *len) {
  *off = meta[i * stride + base];
  *len = meta[i * stride + base + 1];
  return (*off < 0 || *len < 0 || (uint64_t)*off + (uint64_t)*len > buf_len) ? -1 : 0;
}

// rawSend(fd, buf, meta, count, status)
static napi_value RawSend(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  int32_t fd, count;
  uint8_t *buf;
  int32_t *meta, *status;
  size_t buf_len, meta_len, status_len;
  if (get_args(env, info, 5, argv, "rawSend") || get_i32(env, argv[0], "fd", 0, &fd) ||
      get_typed(env, argv[1], napi_uint8_array, "buf", (void **)&buf, &buf_len) ||
      get_typed(env, argv[2], napi_int32_array, "meta", (void **)&meta, &meta_len) ||
      get_i32(env, argv[3], "count", 0, &count) ||
      get_typed(env, argv[4], napi_int32_array, "status", (void **)&status, &status_len))
    return NULL;
  if ((uint64_t)count * 3 > meta_len)
    return throw_range(env, "rawSend: meta.length must be at least count * 3");
  if ((uint64_t)status_len < (uint64_t)count)
    return throw_range(env, "rawSend: status.length must be at least count");
  // Validate the whole batch before sending anything, so a bad argument throws without a
  // half-sent batch whose count would be lost.
  for (int32_t i = 0; i < count; i++) {
    int32_t off, len;
    if (packet_span(meta, (size_t)i, 3, 0, buf_len, &off, &len))
      return throw_range(env, "rawSend: packet offset/length outside buf");
    status[i] = 0;
  }

  // One failed datagram must not cost its neighbours (docs/protocol.md, "Sending back"): an
  // OUTPUT rule that rejects one flow (EPERM), a datagram too big for the route (EMSGSIZE) or an
  // unreachable GWLB address (EHOSTUNREACH) concern that datagram only, so it is marked with its
  // errno and the batch goes on after it. Only a full send queue (EAGAIN, ENOBUFS) stops the
  // batch: every datagram from there on is marked with that errno, and the caller drops them.
  struct mmsghdr msgs[MAX_CHUNK];
  struct iovec iov[MAX_CHUNK];
  struct sockaddr_in dst[MAX_CHUNK];
  int eintr_retries = 0;
  int32_t next = 0;      // first datagram not yet sent or marked
  int32_t done = count;  // where a full queue stopped the batch
  while (next < count) {
    int want = count - next < MAX_CHUNK ? count - next : MAX_CHUNK;
    for (int i = 0; i < want; i++) {
      int32_t off, len;
      // Re-checked: meta could be shared memory changed since the pass above.
      if (packet_span(meta, (size_t)(next + i), 3, 0, buf_len, &off, &len)) {
        if (i == 0) {
          status[next++] = EINVAL;
          goto next_round;
        }
        want = i;  // send the valid ones; the next round marks this one
        break;
      }
      iov[i].iov_base = buf + off;  // no copy: the kernel reads straight from the JS buffer
      iov[i].iov_len = (size_t)len;
      memset(&dst[i], 0, sizeof dst[i]);
      dst[i].sin_family = AF_INET;
      dst[i].sin_addr.s_addr = htonl((uint32_t)meta[(size_t)(next + i) * 3 + 2]);
      memset(&msgs[i].msg_hdr, 0, sizeof msgs[i].msg_hdr);
      msgs[i].msg_hdr.msg_name = &dst[i];
      msgs[i].msg_hdr.msg_namelen = sizeof dst[i];
      msgs[i].msg_hdr.msg_iov = &iov[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
    }
    {
      // sendmmsg returns fewer than asked when message k>0 fails, and drops that error; the next
      // round starts at message k, which then fails alone and reports its errno.
      int n = sendmmsg(fd, msgs, (unsigned)want, 0);
      if (n < 0) {
        int e = errno;
        if (e == EINTR && eintr_retries++ < 4) continue;
        if (e == EAGAIN || e == EWOULDBLOCK || e == ENOBUFS) {
          done = next;
          while (next < count) status[next++] = e;
          break;
        }
        status[next++] = e;  // this datagram only; the batch goes on
        continue;
      }
      next += n;
    }
  next_round:;
  }
  return ret_int(env, done);
}

// ---------------------------------------------------------------------------------------------
// TUN read/write. TUN has no batch syscall, so it is one read/write per packet in a C loop;
// still one JS->C crossing per batch.
//
// Raw syscall(2) instead of glibc's read()/write(): those are pthread cancellation points, and in
// a multi-threaded process (Node always is) every call brackets the syscall with
// __pthread_enable_asynccancel/__pthread_disable_asynccancel. perf put that bracket at 0.6% of
// the worker's CPU at saturation (two calls per packet); nothing here uses cancellation.
static inline ssize_t sys_read(int fd, void *p, size_t n) { return syscall(SYS_read, fd, p, n); }
static inline ssize_t sys_write(int fd, const void *p, size_t n) { return syscall(SYS_write, fd, p, n); }

// tunRead(fd, buf, slotSize, headroom, firstSlot, maxPkts, lens)
static napi_value TunRead(napi_env env, napi_callback_info info) {
  napi_value argv[7];
  int32_t fd, slot_size, headroom, first, max_pkts;
  uint8_t *buf;
  int32_t *lens;
  size_t buf_len, lens_len;
  if (get_args(env, info, 7, argv, "tunRead") || get_i32(env, argv[0], "fd", 0, &fd) ||
      get_typed(env, argv[1], napi_uint8_array, "buf", (void **)&buf, &buf_len) ||
      get_i32(env, argv[2], "slotSize", 1, &slot_size) ||
      get_i32(env, argv[3], "headroom", 0, &headroom) ||
      get_i32(env, argv[4], "firstSlot", 0, &first) ||
      get_i32(env, argv[5], "maxPkts", 0, &max_pkts) ||
      get_typed(env, argv[6], napi_int32_array, "lens", (void **)&lens, &lens_len))
    return NULL;
  if (headroom >= slot_size) return throw_range(env, "tunRead: headroom must be < slotSize");
  uint64_t end_slot = (uint64_t)first + (uint64_t)max_pkts;
  if (end_slot * (uint64_t)slot_size > buf_len)
    return throw_range(env, "tunRead: (firstSlot + maxPkts) * slotSize exceeds buf.length");
  if (end_slot > lens_len)
    return throw_range(env, "tunRead: lens.length must be at least firstSlot + maxPkts");

  size_t room = (size_t)(slot_size - headroom);
  int k = 0, eintr_retried = 0;
  while (k < max_pkts) {
    size_t slot = (size_t)first + (size_t)k;
    ssize_t n = sys_read(fd, buf + slot * (size_t)slot_size + (size_t)headroom, room);
    if (n < 0) {
      if (errno == EINTR && !eintr_retried) {
        eintr_retried = 1;
        continue;
      }
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR || k > 0) break;
      return ret_int(env, -errno);  // EBADFD/EIO: the device is gone
    }
    if (n == 0) break;  // not expected from TUN; nothing stored
    // A packet longer than the room is cut to `room` bytes. Clamp anyway (older tun drivers
    // returned the full length): lens must say how many bytes are in the slot, so JS never
    // reads past it; the IP header's own length field then shows the truncation.
    lens[slot] = (int32_t)((size_t)n > room ? room : (size_t)n);
    k++;
  }
  return ret_int(env, k);
}

// tunWrite(buf, meta, count)
static napi_value TunWrite(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  int32_t count;
  uint8_t *buf;
  int32_t *meta;
  size_t buf_len, meta_len;
  if (get_args(env, info, 3, argv, "tunWrite") ||
      get_typed(env, argv[0], napi_uint8_array, "buf", (void **)&buf, &buf_len) ||
      get_typed(env, argv[1], napi_int32_array, "meta", (void **)&meta, &meta_len) ||
      get_i32(env, argv[2], "count", 0, &count))
    return NULL;
  if ((uint64_t)count * 3 > meta_len)
    return throw_range(env, "tunWrite: meta.length must be at least count * 3");
  for (int32_t i = 0; i < count; i++) {  // validate all first: throw before writing any
    int32_t off, len;
    if (packet_span(meta, (size_t)i, 3, 1, buf_len, &off, &len))
      return throw_range(env, "tunWrite: packet offset/length outside buf");
  }
  int written = 0;
  for (int32_t i = 0; i < count; i++) {
    int32_t *m = meta + (size_t)i * 3;
    int32_t off, len;
    if (packet_span(meta, (size_t)i, 3, 1, buf_len, &off, &len)) {  // shared memory changed
      m[2] = -EINVAL;
      continue;
    }
    ssize_t n = sys_write(m[0], buf + off, (size_t)len);
    if (n < 0 && errno == EINTR) n = sys_write(m[0], buf + off, (size_t)len);
    if (n < 0) {
      m[2] = -errno;  // EAGAIN: that queue is full; the packet is dropped
      continue;
    }
    written++;
  }
  return ret_int(env, written);
}

// ---------------------------------------------------------------------------------------------
// epoll

static napi_value EpollCreate(napi_env env, napi_callback_info info) {
  (void)info;
  int ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) return throw_errno(env, "epollCreate", "epoll_create1", errno);
  return ret_int(env, ep);
}

static napi_value epoll_ctl_js(napi_env env, napi_callback_info info, int op) {
  napi_value argv[2];
  const char *fn = op == EPOLL_CTL_ADD ? "epollAdd" : "epollDel";
  int32_t ep, fd;
  if (get_args(env, info, 2, argv, fn) || get_i32(env, argv[0], "ep", 0, &ep) ||
      get_i32(env, argv[1], "fd", 0, &fd))
    return NULL;
  struct epoll_event ev;
  memset(&ev, 0, sizeof ev);
  ev.events = EPOLLIN;
  ev.data.fd = fd;
  if (epoll_ctl(ep, op, fd, &ev) < 0) {
    int e = errno;
    if (op == EPOLL_CTL_DEL && (e == ENOENT || e == EBADF)) return ret_undefined(env);
    char what[48];
    snprintf(what, sizeof what, "%s(%d, %d)", fn, ep, fd);
    return throw_errno(env, what, "epoll_ctl", e);
  }
  return ret_undefined(env);
}

static napi_value EpollAdd(napi_env env, napi_callback_info info) {
  return epoll_ctl_js(env, info, EPOLL_CTL_ADD);
}

static napi_value EpollDel(napi_env env, napi_callback_info info) {
  return epoll_ctl_js(env, info, EPOLL_CTL_DEL);
}

// epollWait(ep, fds, timeoutMs). Blocks the calling thread for up to timeoutMs: meant for
// worker threads, with short timeouts so they notice a stop flag.
static napi_value EpollWait(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  int32_t ep, timeout;
  int32_t *fds;
  size_t fds_len;
  if (get_args(env, info, 3, argv, "epollWait") || get_i32(env, argv[0], "ep", 0, &ep) ||
      get_typed(env, argv[1], napi_int32_array, "fds", (void **)&fds, &fds_len) ||
      get_i32(env, argv[2], "timeoutMs", 0, &timeout))
    return NULL;
  if (fds_len < 1) return throw_range(env, "epollWait: fds must have at least 1 element");
  int max = fds_len < MAX_EVENTS ? (int)fds_len : MAX_EVENTS;
  struct epoll_event evs[MAX_EVENTS];
  int n = epoll_wait(ep, evs, max, timeout);
  if (n < 0) {
    if (errno == EINTR) return ret_int(env, 0);
    char what[32];
    snprintf(what, sizeof what, "epollWait(%d)", ep);
    return throw_errno(env, what, "epoll_wait", errno);
  }
  for (int i = 0; i < n; i++) fds[i] = evs[i].data.fd;
  return ret_int(env, n);
}

// monoInto(out): CLOCK_MONOTONIC in milliseconds into out[0] (a Float64Array), returning
// undefined. The worker's loop reads its clock with this, twice a turn, because the JS ways
// allocate: performance.now() (an argument array in Node's internal receiver check, and the
// boxed double it returns), process.hrtime() (an array), process.hrtime.bigint() (a BigInt), and a
// worker that allocates a little every turn pays for it in scavenges (src/dataplane/loop.ts).
static napi_value MonoInto(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  double *out;
  size_t out_len;
  if (get_args(env, info, 1, argv, "monoInto") ||
      get_typed(env, argv[0], napi_float64_array, "out", (void **)&out, &out_len))
    return NULL;
  if (out_len < 1) return throw_range(env, "monoInto: out must have at least 1 element");
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  out[0] = (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
  return ret_undefined(env);
}

// ---------------------------------------------------------------------------------------------
// CPU affinity

// setAffinity(cpus): pid 0 means the calling thread (Linux affinity is per thread), so each
// worker pins itself.
static napi_value SetAffinity(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  bool is_array;
  uint32_t n;
  if (get_args(env, info, 1, argv, "setAffinity")) return NULL;
  if (napi_is_array(env, argv[0], &is_array) != napi_ok || !is_array ||
      napi_get_array_length(env, argv[0], &n) != napi_ok)
    return throw_type(env, "setAffinity: cpus must be an array of numbers");
  cpu_set_t set;
  CPU_ZERO(&set);
  for (uint32_t i = 0; i < n; i++) {
    napi_value v;
    int64_t cpu;
    if (napi_get_element(env, argv[0], i, &v) != napi_ok ||
        get_int(env, v, "cpu", 0, CPU_SETSIZE - 1, &cpu))
      return NULL;
    CPU_SET((size_t)cpu, &set);
  }
  if (sched_setaffinity(0, sizeof set, &set) < 0)
    return throw_errno(env, "setAffinity", "sched_setaffinity", errno);
  return ret_undefined(env);
}

// Scheduling class of the calling thread (src/control/sched.ts has the design). The kernel's
// struct sched_attr, declared here: glibc has no wrapper for sched_setattr before 2.41.
struct gw_sched_attr {
  uint32_t size, sched_policy;
  uint64_t sched_flags;
  int32_t sched_nice;
  uint32_t sched_priority;
  uint64_t sched_runtime, sched_deadline, sched_period;
};

// setSched(batch, sliceNs): SCHED_BATCH (batch true) or SCHED_OTHER for the calling thread, its
// nice value kept; sliceNs > 0 also asks for that time slice (Linux 6.12+: EEVDF's
// sched_attr.sched_runtime; older kernels ignore it). Returns the slice in effect afterwards in
// ns (0 where the kernel does not report one).
static napi_value SetSched(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  bool batch;
  int64_t slice;
  if (get_args(env, info, 2, argv, "setSched")) return NULL;
  if (napi_get_value_bool(env, argv[0], &batch) != napi_ok) return throw_type(env, "setSched: batch must be a boolean");
  if (get_int(env, argv[1], "sliceNs", 0, 100000000, &slice)) return NULL;
  struct gw_sched_attr a;
  memset(&a, 0, sizeof a);
  if (syscall(SYS_sched_getattr, 0, &a, sizeof a, 0) < 0) return throw_errno(env, "setSched", "sched_getattr", errno);
  a.size = sizeof a;
  a.sched_policy = batch ? SCHED_BATCH : SCHED_OTHER;
  a.sched_flags = 0;
  a.sched_priority = 0;
  a.sched_runtime = (uint64_t)slice;
  a.sched_deadline = a.sched_period = 0;
  if (syscall(SYS_sched_setattr, 0, &a, 0) < 0) return throw_errno(env, "setSched", "sched_setattr", errno);
  memset(&a, 0, sizeof a);
  if (syscall(SYS_sched_getattr, 0, &a, sizeof a, 0) < 0) return throw_errno(env, "setSched", "sched_getattr", errno);
  return ret_int(env, (int32_t)(a.sched_runtime > 0x7fffffff ? 0x7fffffff : a.sched_runtime));
}

// ---------------------------------------------------------------------------------------------
// Orphans (when gwlbtun is PID 1; src/control/reaper.ts has the design)

// Most children collected per call: bounds the time spent here whatever piled up.
#define MAX_REAP 1024

// reapOrphans(ours): collect exited children whose PID is not in `ours` (the children Node's
// child_process waits for by PID: taking one of their exit statuses would hide it from libuv for
// ever). waitid(WNOWAIT) only peeks, so a child of ours is left exactly as it was; the call then
// stops, since the kernel would show the same child first again until libuv collects it.
static napi_value ReapOrphans(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  void *data;
  size_t n;
  if (get_args(env, info, 1, argv, "reapOrphans") ||
      get_typed(env, argv[0], napi_int32_array, "reapOrphans: ours", &data, &n))
    return NULL;
  const int32_t *ours = data;
  int reaped = 0;
  while (reaped < MAX_REAP) {
    siginfo_t si;
    memset(&si, 0, sizeof si);
    // ECHILD (no children), EINTR (next call), or si_pid 0: nothing has exited.
    if (waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) < 0 || si.si_pid <= 0) break;
    const pid_t pid = si.si_pid;
    for (size_t i = 0; i < n; i++)
      if (ours[i] == pid) return ret_int(env, reaped);
    if (waitpid(pid, NULL, WNOHANG) != pid) break;
    reaped++;
  }
  return ret_int(env, reaped);
}

// The egress device towards GWLB (src/control/egress.ts): off the data path, called by the main
// thread every few seconds.

// routeDev(dst): the name of the device the kernel's route to IPv4 `dst` leaves through
// (`ip route get` through one RTM_GETROUTE on a NETLINK_ROUTE socket), "" when there is no route
// (ENETUNREACH and the like) or its device has no name any more.
static napi_value RouteDev(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int64_t dst;
  if (get_args(env, info, 1, argv, "routeDev") || get_int(env, argv[0], "dst", 0, 0xffffffffLL, &dst)) return NULL;
  int s = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (s < 0) return throw_errno(env, "routeDev", "socket(NETLINK_ROUTE)", errno);
  struct timeval tv = {1, 0};  // the kernel answers at once; never block the main thread long
  setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  struct {
    struct nlmsghdr nh;
    struct rtmsg rt;
    char attrs[RTA_SPACE(4)];
  } req;
  memset(&req, 0, sizeof req);
  req.nh.nlmsg_len = NLMSG_LENGTH(sizeof req.rt);
  req.nh.nlmsg_type = RTM_GETROUTE;
  req.nh.nlmsg_flags = NLM_F_REQUEST;
  req.nh.nlmsg_seq = 1;
  req.rt.rtm_family = AF_INET;
  req.rt.rtm_dst_len = 32;
  struct rtattr *a = (struct rtattr *)((char *)&req + NLMSG_ALIGN(req.nh.nlmsg_len));
  a->rta_type = RTA_DST;
  a->rta_len = RTA_LENGTH(4);
  uint32_t d = htonl((uint32_t)dst);
  memcpy(RTA_DATA(a), &d, 4);
  req.nh.nlmsg_len = NLMSG_ALIGN(req.nh.nlmsg_len) + RTA_SPACE(4);
  struct sockaddr_nl kernel;
  memset(&kernel, 0, sizeof kernel);
  kernel.nl_family = AF_NETLINK;
  if (sendto(s, &req, req.nh.nlmsg_len, 0, (struct sockaddr *)&kernel, sizeof kernel) < 0) {
    int e = errno;
    close(s);
    return throw_errno(env, "routeDev", "sendto(RTM_GETROUTE)", e);
  }
  // The answer: one RTM_NEWROUTE (or an NLMSG_ERROR), a few hundred bytes.
  union {
    struct nlmsghdr nh;
    char b[8192];
  } ans;
  ssize_t n = recv(s, &ans, sizeof ans, 0);
  int e = errno;
  close(s);
  if (n < 0) return throw_errno(env, "routeDev", "recv(RTM_GETROUTE)", e);
  char name[IF_NAMESIZE] = "";
  int len = (int)n;
  for (struct nlmsghdr *nh = &ans.nh; NLMSG_OK(nh, len); nh = NLMSG_NEXT(nh, len)) {
    if (nh->nlmsg_type != RTM_NEWROUTE) break;  // NLMSG_ERROR: no route
    struct rtmsg *rt = NLMSG_DATA(nh);
    int alen = RTM_PAYLOAD(nh);
    for (struct rtattr *at = RTM_RTA(rt); RTA_OK(at, alen); at = RTA_NEXT(at, alen)) {
      if (at->rta_type == RTA_OIF && RTA_PAYLOAD(at) >= 4) {
        uint32_t oif;
        memcpy(&oif, RTA_DATA(at), 4);
        if (if_indextoname(oif, name) == NULL) name[0] = 0;
      }
    }
    break;
  }
  napi_value r;
  napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &r);
  return r;
}

// linkOffloads(name): { driver, features } of interface `name` through the ethtool ioctls:
// ETHTOOL_GDRVINFO's driver ("" when the device answers none, e.g. lo), and the names of its
// active features (ETHTOOL_GSSET_INFO + ETHTOOL_GSTRINGS for the names, ETHTOOL_GFEATURES for the
// bits; [] when the device reports none). Throws ENODEV when there is no such interface.
static napi_value LinkOffloads(napi_env env, napi_callback_info info) {
  napi_value argv[1], out, feats, v;
  char name[IFNAMSIZ], what[48];
  if (get_args(env, info, 1, argv, "linkOffloads") || get_ifname(env, argv[0], "linkOffloads", name)) return NULL;
  snprintf(what, sizeof what, "linkOffloads(%s)", name);
  struct ifreq ifr;
  int s = ifr_socket(env, what, name, &ifr);
  if (s < 0) return NULL;
  if (ioctl(s, SIOCGIFINDEX, &ifr) < 0) {
    int e = errno;
    close(s);
    return throw_errno(env, what, "SIOCGIFINDEX", e);
  }
  struct ethtool_drvinfo di;
  memset(&di, 0, sizeof di);
  di.cmd = ETHTOOL_GDRVINFO;
  ifr.ifr_data = (void *)&di;
  if (ioctl(s, SIOCETHTOOL, &ifr) < 0) di.driver[0] = 0;
  di.driver[sizeof di.driver - 1] = 0;
  napi_create_object(env, &out);
  napi_create_string_utf8(env, di.driver, NAPI_AUTO_LENGTH, &v);
  napi_set_named_property(env, out, "driver", v);
  napi_create_array(env, &feats);
  napi_set_named_property(env, out, "features", feats);
  // How many features: ethtool_sset_info is followed by one u32 per set asked for.
  union {
    struct ethtool_sset_info si;
    char b[sizeof(struct ethtool_sset_info) + sizeof(uint32_t)];
  } ss;
  memset(&ss, 0, sizeof ss);
  ss.si.cmd = ETHTOOL_GSSET_INFO;
  ss.si.sset_mask = 1ULL << ETH_SS_FEATURES;
  ifr.ifr_data = (void *)&ss;
  uint32_t count = 0;
  if (ioctl(s, SIOCETHTOOL, &ifr) == 0 && (ss.si.sset_mask & (1ULL << ETH_SS_FEATURES)) != 0)
    memcpy(&count, ss.b + sizeof(struct ethtool_sset_info), sizeof count);
  if (count == 0 || count > 4096) {
    close(s);
    return out;
  }
  uint32_t blocks = (count + 31) / 32;
  struct ethtool_gstrings *gs = calloc(1, sizeof *gs + (size_t)count * ETH_GSTRING_LEN);
  struct ethtool_gfeatures *gf = calloc(1, sizeof *gf + blocks * sizeof(struct ethtool_get_features_block));
  if (gs != NULL && gf != NULL) {
    gs->cmd = ETHTOOL_GSTRINGS;
    gs->string_set = ETH_SS_FEATURES;
    gs->len = count;
    gf->cmd = ETHTOOL_GFEATURES;
    gf->size = blocks;
    ifr.ifr_data = (void *)gs;
    int ok = ioctl(s, SIOCETHTOOL, &ifr) == 0;
    ifr.ifr_data = (void *)gf;
    ok = ok && ioctl(s, SIOCETHTOOL, &ifr) == 0;
    uint32_t k = 0;
    for (uint32_t i = 0; ok && i < count && i < gs->len && i / 32 < gf->size; i++) {
      if (((gf->features[i / 32].active >> (i % 32)) & 1) == 0) continue;
      const char *f = (const char *)gs->data + (size_t)i * ETH_GSTRING_LEN;
      napi_create_string_utf8(env, f, strnlen(f, ETH_GSTRING_LEN), &v);
      napi_set_element(env, feats, k++, v);
    }
  }
  free(gs);
  free(gf);
  close(s);
  return out;
}

// ---------------------------------------------------------------------------------------------

NAPI_MODULE_INIT() {
  napi_property_descriptor props[] = {
#define FN(js, c) {js, NULL, c, NULL, NULL, NULL, napi_enumerable, NULL}
    FN("tunOpen", TunOpen),         FN("linkSetup", LinkSetup),
    FN("ifIndex", IfIndex),         FN("close", Close),       FN("setCloexec", SetCloexec),
    FN("sdNotify", SdNotify),       FN("monoInto", MonoInto),
    FN("udpOpen", UdpOpen),         FN("udpRecv", UdpRecv),
    FN("rawOpen", RawOpen),         FN("rawSend", RawSend),
    FN("tunRead", TunRead),         FN("tunWrite", TunWrite),
    FN("epollCreate", EpollCreate), FN("epollAdd", EpollAdd),
    FN("epollDel", EpollDel),       FN("epollWait", EpollWait),
    FN("setAffinity", SetAffinity), FN("setSched", SetSched), FN("tunSetQueue", TunSetQueue),
    FN("tunSetOffload", TunSetOffload), FN("tapOpen", TapOpen),
    FN("tunSetPersist", TunSetPersist),
    FN("reapOrphans", ReapOrphans),
    FN("routeDev", RouteDev),       FN("linkOffloads", LinkOffloads),
#undef FN
  };
  if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok)
    return NULL;
  return exports;
}
