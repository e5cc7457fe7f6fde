#include "netlink_socket.h"
#include "portid_name.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <sched.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <string>
#include <thread>
#include <vector>

#ifndef SOL_NETLINK
#define SOL_NETLINK 270
#endif

namespace {

Napi::Error ErrnoError(Napi::Env env, const char* syscall, int err,
                       const std::string& detail = "") {
  const char* name = strerrorname_np(err);
  std::string msg = std::string(syscall) + ": " + (name ? name : "E?") + " (" +
                    strerror(err) + ")";
  if (!detail.empty()) msg += " " + detail;
  Napi::Error e = Napi::Error::New(env, msg);
  e.Set("code", Napi::String::New(env, name ? name : "EUNKNOWN"));
  e.Set("errno", Napi::Number::New(env, err));
  e.Set("syscall", Napi::String::New(env, syscall));
  return e;
}

// Opens the socket inside the network namespace at `path` from a helper
// thread, so the calling (JS) thread never changes namespace. A netlink
// socket belongs for its whole life to the namespace it was created in.
int OpenInNamespace(const std::string& path, int protocol, int* err_out,
                    const char** where, int* proc_netlink_fd) {
  int nsfd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (nsfd < 0) {
    *err_out = errno;
    *where = "open";
    return -1;
  }
  int fd = -1;
  int err = 0;
  const char* w = nullptr;
  std::thread t([&]() {
    if (setns(nsfd, CLONE_NEWNET) != 0) {
      err = errno;
      w = "setns";
      return;
    }
    fd = socket(AF_NETLINK, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, protocol);
    if (fd < 0) {
      err = errno;
      w = "socket";
    }
    // the namespace's netlink table, to name the processes behind portids
    // (the open file stays in this namespace)
    if (proc_netlink_fd) *proc_netlink_fd = open("/proc/thread-self/net/netlink", O_RDONLY | O_CLOEXEC);
  });
  t.join();
  close(nsfd);
  *err_out = err;
  *where = w;
  return fd;
}

uint32_t GetU32(const Napi::Object& o, const char* key, uint32_t def) {
  Napi::Value v = o.Get(key);
  if (v.IsNumber()) return v.As<Napi::Number>().Uint32Value();
  return def;
}

}  // namespace

// writeSysctl(netns | "", name, value): writes /proc/sys/<name> ("net.netfilter.x"
// -> net/netfilter/x) as seen from that network namespace. /proc/sys/net is
// the namespace of the task that opens it, so a helper thread enters the
// namespace, opens and writes; the JS thread never moves.
Napi::Value WriteSysctl(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[0].IsString() || !info[1].IsString() || !info[2].IsString()) {
    Napi::TypeError::New(env, "writeSysctl(netns, name, value) expected").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  std::string ns = info[0].As<Napi::String>().Utf8Value();
  std::string name = info[1].As<Napi::String>().Utf8Value();
  std::string value = info[2].As<Napi::String>().Utf8Value();
  if (name.find("..") != std::string::npos || name.find('/') != std::string::npos) {
    Napi::RangeError::New(env, "writeSysctl: bad name").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  std::string path = "/proc/sys/";
  for (char c : name) path += (c == '.' ? '/' : c);
  int err = 0;
  const char* where = "open";
  std::thread t([&]() {
    if (!ns.empty()) {
      std::string nspath = ns.find('/') == std::string::npos ? "/run/netns/" + ns : ns;
      int nsfd = open(nspath.c_str(), O_RDONLY | O_CLOEXEC);
      if (nsfd < 0) { err = errno; where = "open netns"; return; }
      int r = setns(nsfd, CLONE_NEWNET);
      int e = errno;
      close(nsfd);
      if (r != 0) { err = e; where = "setns"; return; }
    }
    int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) { err = errno; where = "open"; return; }
    if (write(fd, value.data(), value.size()) < 0) { err = errno; where = "write"; }
    close(fd);
  });
  t.join();
  if (err) ErrnoError(env, where, err, path).ThrowAsJavaScriptException();
  return env.Undefined();
}

// readSysctl(netns | "", [names]) -> [value | null]: reads /proc/sys/<name>
// for each name as seen from that network namespace (one helper thread for
// all of them); a name that cannot be read gives null.
Napi::Value ReadSysctl(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsString() || !info[1].IsArray()) {
    Napi::TypeError::New(env, "readSysctl(netns, names) expected").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  std::string ns = info[0].As<Napi::String>().Utf8Value();
  Napi::Array arr = info[1].As<Napi::Array>();
  std::vector<std::string> paths;
  for (uint32_t i = 0; i < arr.Length(); i++) {
    Napi::Value v = arr.Get(i);
    std::string name = v.IsString() ? v.As<Napi::String>().Utf8Value() : "";
    if (name.empty() || name.find("..") != std::string::npos || name.find('/') != std::string::npos) {
      Napi::RangeError::New(env, "readSysctl: bad name").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    std::string path = "/proc/sys/";
    for (char c : name) path += (c == '.' ? '/' : c);
    paths.push_back(path);
  }
  std::vector<std::string> values(paths.size());
  std::vector<bool> ok(paths.size(), false);
  int err = 0;
  const char* where = "open netns";
  std::thread t([&]() {
    if (!ns.empty()) {
      std::string nspath = ns.find('/') == std::string::npos ? "/run/netns/" + ns : ns;
      int nsfd = open(nspath.c_str(), O_RDONLY | O_CLOEXEC);
      if (nsfd < 0) { err = errno; return; }
      int r = setns(nsfd, CLONE_NEWNET);
      int e = errno;
      close(nsfd);
      if (r != 0) { err = e; where = "setns"; return; }
    }
    for (size_t i = 0; i < paths.size(); i++) {
      int fd = open(paths[i].c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) continue;
      char b[256];
      ssize_t n = read(fd, b, sizeof(b) - 1);
      close(fd);
      if (n < 0) continue;
      while (n > 0 && (b[n - 1] == '\n' || b[n - 1] == ' ')) n--;
      values[i].assign(b, static_cast<size_t>(n));
      ok[i] = true;
    }
  });
  t.join();
  if (err) {
    ErrnoError(env, where, err, ns).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Array out = Napi::Array::New(env, paths.size());
  for (size_t i = 0; i < paths.size(); i++)
    out.Set(static_cast<uint32_t>(i), ok[i] ? Napi::Value(Napi::String::New(env, values[i])) : env.Null());
  return out;
}

Napi::Object NetlinkSocket::Init(Napi::Env env, Napi::Object exports) {
  Napi::Function fn = DefineClass(
      env, "NetlinkSocket",
      {
          InstanceMethod("addMembership", &NetlinkSocket::AddMembership),
          InstanceMethod("dropMembership", &NetlinkSocket::DropMembership),
          InstanceMethod("setRcvbuf", &NetlinkSocket::SetRcvbuf),
          InstanceMethod("getRcvbuf", &NetlinkSocket::GetRcvbuf),
          InstanceMethod("setsockoptInt", &NetlinkSocket::SetSockoptInt),
          InstanceMethod("getsockoptInt", &NetlinkSocket::GetSockoptInt),
          InstanceMethod("attachFilter", &NetlinkSocket::AttachFilter),
          InstanceMethod("detachFilter", &NetlinkSocket::DetachFilter),
          InstanceMethod("send", &NetlinkSocket::Send),
          InstanceMethod("start", &NetlinkSocket::Start),
          InstanceMethod("pause", &NetlinkSocket::Pause),
          InstanceMethod("resume", &NetlinkSocket::Resume),
          InstanceMethod("stats", &NetlinkSocket::Stats),
          InstanceMethod("takeLoss", &NetlinkSocket::TakeLoss),
          InstanceMethod("close", &NetlinkSocket::Close),
          InstanceMethod("portidName", &NetlinkSocket::PortidName),
          InstanceAccessor("portid", &NetlinkSocket::GetPortId, nullptr),
          InstanceAccessor("fd", &NetlinkSocket::GetFd, nullptr),
      });
  exports.Set("NetlinkSocket", fn);
  exports.Set("writeSysctl", Napi::Function::New(env, WriteSysctl));
  exports.Set("readSysctl", Napi::Function::New(env, ReadSysctl));
  return exports;
}

// new NetlinkSocket({ protocol, netns?, groups?, slotSize?, slots?,
//                     bufferSize?, coalesceMs? })
NetlinkSocket::NetlinkSocket(const Napi::CallbackInfo& info)
    : Napi::ObjectWrap<NetlinkSocket>(info), env_(info.Env()) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject()) {
    Napi::TypeError::New(env, "NetlinkSocket: options object expected")
        .ThrowAsJavaScriptException();
    return;
  }
  Napi::Object o = info[0].As<Napi::Object>();
  int protocol = static_cast<int>(GetU32(o, "protocol", 0));
  uint32_t groups = GetU32(o, "groups", 0);
  slot_size_ = GetU32(o, "slotSize", 32768);
  slots_ = GetU32(o, "slots", 64);
  coalesce_ms_ = GetU32(o, "coalesceMs", 0);
  bool names = o.Get("portidNames").IsBoolean() && o.Get("portidNames").As<Napi::Boolean>().Value();
  int proc_fd = -1;
  if (slot_size_ < 4096) slot_size_ = 4096;
  if (slots_ < 1) slots_ = 1;
  if (slots_ > 1024) slots_ = 1024;
  buf_size_ = GetU32(o, "bufferSize", 0);
  if (buf_size_ < slot_size_ * slots_) buf_size_ = slot_size_ * slots_ * 2;

  Napi::Value ns = o.Get("netns");
  if (ns.IsString() && !ns.As<Napi::String>().Utf8Value().empty()) {
    std::string name = ns.As<Napi::String>().Utf8Value();
    std::string path = name.find('/') == std::string::npos
                           ? "/run/netns/" + name
                           : name;
    int err = 0;
    const char* where = "socket";
    fd_ = OpenInNamespace(path, protocol, &err, &where, names ? &proc_fd : nullptr);
    if (fd_ < 0) {
      ErrnoError(env, where, err, "network namespace " + path)
          .ThrowAsJavaScriptException();
      return;
    }
  } else {
    fd_ = socket(AF_NETLINK, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, protocol);
    if (fd_ < 0) {
      ErrnoError(env, "socket", errno).ThrowAsJavaScriptException();
      return;
    }
    if (names) proc_fd = open("/proc/thread-self/net/netlink", O_RDONLY | O_CLOEXEC);
  }
  if (names) portid_names_.reset(new PortidNames(proc_fd));

  struct sockaddr_nl addr;
  memset(&addr, 0, sizeof(addr));
  addr.nl_family = AF_NETLINK;
  addr.nl_groups = groups;
  if (bind(fd_, reinterpret_cast<struct sockaddr*>(&addr), sizeof(addr)) < 0) {
    int e = errno;
    close(fd_);
    fd_ = -1;
    ErrnoError(env, "bind", e).ThrowAsJavaScriptException();
    return;
  }
  socklen_t alen = sizeof(addr);
  if (getsockname(fd_, reinterpret_cast<struct sockaddr*>(&addr), &alen) == 0)
    portid_ = addr.nl_pid;
}

NetlinkSocket::~NetlinkSocket() { CloseInternal(); }

bool NetlinkSocket::CheckOpen(Napi::Env env) {
  if (closed_ || fd_ < 0) {
    Napi::Error e = Napi::Error::New(env, "netlink socket is closed");
    e.Set("code", Napi::String::New(env, "ERR_SOCKET_CLOSED"));
    e.ThrowAsJavaScriptException();
    return false;
  }
  return true;
}

Napi::Value NetlinkSocket::AddMembership(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!CheckOpen(env)) return env.Undefined();
  int group = info[0].As<Napi::Number>().Int32Value();
  if (setsockopt(fd_, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, &group,
                 sizeof(group)) < 0)
    ErrnoError(env, "setsockopt(NETLINK_ADD_MEMBERSHIP)", errno)
        .ThrowAsJavaScriptException();
  return env.Undefined();
}

Napi::Value NetlinkSocket::DropMembership(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!CheckOpen(env)) return env.Undefined();
  int group = info[0].As<Napi::Number>().Int32Value();
  if (setsockopt(fd_, SOL_NETLINK, NETLINK_DROP_MEMBERSHIP, &group,
                 sizeof(group)) < 0)
    ErrnoError(env, "setsockopt(NETLINK_DROP_MEMBERSHIP)", errno)
        .ThrowAsJavaScriptException();
  return env.Undefined();
}

// Asks for `bytes` of receive buffer: SO_RCVBUFFORCE (CAP_NET_ADMIN, above
// rmem_max), falling back to SO_RCVBUF. Returns what the kernel granted, as
// getsockopt(SO_RCVBUF) reports it (the kernel doubles the request for its
// bookkeeping overhead).
Napi::Value NetlinkSocket::SetRcvbuf(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!CheckOpen(env)) return env.Undefined();
  double want = info[0].IsNumber() ? info[0].As<Napi::Number>().DoubleValue() : -1;
  // the kernel stores twice the request in an int
  if (!(want >= 0 && want <= 1073741824.0)) {
    Napi::RangeError::New(env, "setRcvbuf: bytes must be 0..1073741824")
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }
  int bytes = static_cast<int>(want);
  if (setsockopt(fd_, SOL_SOCKET, SO_RCVBUFFORCE, &bytes, sizeof(bytes)) < 0) {
    if (errno != EPERM ||
        setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof(bytes)) < 0) {
      ErrnoError(env, "setsockopt(SO_RCVBUF)", errno)
          .ThrowAsJavaScriptException();
      return env.Undefined();
    }
  }
  return GetRcvbuf(info);
}

Napi::Value NetlinkSocket::GetRcvbuf(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!CheckOpen(env)) return env.Undefined();
  int v = 0;
  socklen_t l = sizeof(v);
  if (getsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &v, &l) < 0) {
    ErrnoError(env, "getsockopt(SO_RCVBUF)", errno)
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }
  return Napi::Number::New(env, v);
}

Napi::Value NetlinkSocket::SetSockoptInt(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!CheckOpen(env)) return env.Undefined();
  int level = info[0].As<Napi::Number>().Int32Value();
  int opt = info[1].As<Napi::Number>().Int32Value();
  int val = info[2].As<Napi::Number>().Int32Value();
  if (setsockopt(fd_, level, opt, &val, sizeof(val)) < 0)
    ErrnoError(env, "setsockopt", errno).ThrowAsJavaScriptException();
  return env.Undefined();
}

Napi::Value NetlinkSocket::GetSockoptInt(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!CheckOpen(env)) return env.Undefined();
  int level = info[0].As<Napi::Number>().Int32Value();
  int opt = info[1].As<Napi::Number>().Int32Value();
  int val = 0;
  socklen_t l = sizeof(val);
  if (getsockopt(fd_, level, opt, &val, &l) < 0) {
    ErrnoError(env, "getsockopt", errno).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  return Napi::Number::New(env, val);
}

// attachFilter(Buffer): classic BPF, 8 bytes per instruction in host order
// (struct sock_filter), built in TypeScript.
Napi::Value NetlinkSocket::AttachFilter(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!CheckOpen(env)) return env.Undefined();
  if (!info[0].IsBuffer()) {
    Napi::TypeError::New(env, "attachFilter: Buffer expected")
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Buffer<uint8_t> b = info[0].As<Napi::Buffer<uint8_t>>();
  if (b.Length() == 0 || b.Length() % sizeof(struct sock_filter) != 0 ||
      b.Length() / sizeof(struct sock_filter) > BPF_MAXINSNS) {
    Napi::RangeError::New(env, "attachFilter: bad program length")
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }
  struct sock_fprog prog;
  prog.len = static_cast<unsigned short>(b.Length() / sizeof(struct sock_filter));
  prog.filter = reinterpret_cast<struct sock_filter*>(b.Data());
  if (setsockopt(fd_, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof(prog)) < 0)
    ErrnoError(env, "setsockopt(SO_ATTACH_FILTER)", errno)
        .ThrowAsJavaScriptException();
  return env.Undefined();
}

Napi::Value NetlinkSocket::DetachFilter(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!CheckOpen(env)) return env.Undefined();
  int dummy = 0;
  if (setsockopt(fd_, SOL_SOCKET, SO_DETACH_FILTER, &dummy, sizeof(dummy)) < 0 &&
      errno != ENOENT)
    ErrnoError(env, "setsockopt(SO_DETACH_FILTER)", errno)
        .ThrowAsJavaScriptException();
  return env.Undefined();
}

// send(Buffer) -> bytes sent, to the kernel (portid 0).
Napi::Value NetlinkSocket::Send(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!CheckOpen(env)) return env.Undefined();
  if (!info[0].IsBuffer()) {
    Napi::TypeError::New(env, "send: Buffer expected")
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Buffer<uint8_t> b = info[0].As<Napi::Buffer<uint8_t>>();
  struct sockaddr_nl dst;
  memset(&dst, 0, sizeof(dst));
  dst.nl_family = AF_NETLINK;
  ssize_t n;
  do {
    n = sendto(fd_, b.Data(), b.Length(), 0,
               reinterpret_cast<struct sockaddr*>(&dst), sizeof(dst));
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    ErrnoError(env, "sendto", errno).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  return Napi::Number::New(env, static_cast<double>(n));
}

// start(onBatch(len, count), onError(err)) -> Buffer
// The returned Buffer is reused for every batch: onBatch must consume
// buf[0, len) before returning. It holds `count` whole datagrams, each
// a run of netlink messages, concatenated (4-byte aligned).
Napi::Value NetlinkSocket::Start(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!CheckOpen(env)) return env.Undefined();
  if (started_) {
    Napi::Error::New(env, "start: already started").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  if (!info[0].IsFunction() || !info[1].IsFunction()) {
    Napi::TypeError::New(env, "start: onBatch and onError functions expected")
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }
  on_batch_ = Napi::Persistent(info[0].As<Napi::Function>());
  on_error_ = Napi::Persistent(info[1].As<Napi::Function>());

  Napi::Buffer<uint8_t> buf = Napi::Buffer<uint8_t>::New(env, buf_size_);
  buf_ = buf.Data();
  buf_ref_ = Napi::Persistent(buf.As<Napi::Object>());
  msgs_.resize(slots_);
  iovs_.resize(slots_);

  uv_loop_t* loop = nullptr;
  napi_get_uv_event_loop(env, &loop);
  poll_ = new uv_poll_t;
  timer_ = new uv_timer_t;
  int r = uv_poll_init_socket(loop, poll_, fd_);
  if (r != 0) {
    delete poll_;
    delete timer_;
    poll_ = nullptr;
    timer_ = nullptr;
    ErrnoError(env, "uv_poll_init", -r).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  uv_timer_init(loop, timer_);
  poll_->data = this;
  timer_->data = this;
  started_ = true;
  started_us_ = NowMicros();
  self_ref_ = Napi::Persistent(Value());
  Arm();
  return buf;
}

void NetlinkSocket::Arm() {
  if (!started_ || closed_ || paused_) return;
  uv_poll_start(poll_, UV_READABLE, OnPoll);
}

void NetlinkSocket::Disarm() {
  if (!started_) return;
  uv_poll_stop(poll_);
  uv_timer_stop(timer_);
}

Napi::Value NetlinkSocket::Pause(const Napi::CallbackInfo& info) {
  paused_ = true;
  Disarm();
  return info.Env().Undefined();
}

Napi::Value NetlinkSocket::Resume(const Napi::CallbackInfo& info) {
  if (paused_) {
    paused_ = false;
    Arm();
  }
  return info.Env().Undefined();
}

void NetlinkSocket::OnPoll(uv_poll_t* handle, int status, int events) {
  NetlinkSocket* self = static_cast<NetlinkSocket*>(handle->data);
  if (self->closed_) return;
  Napi::HandleScope scope(self->env_);
  self->wakeups_++;
  if (status < 0) {
    // libuv stops the handle on POLLERR. For netlink that is how an overrun
    // (ENOBUFS) is signalled: read and clear SO_ERROR, count, re-arm.
    int err = 0;
    socklen_t l = sizeof(err);
    getsockopt(self->fd_, SOL_SOCKET, SO_ERROR, &err, &l);
    if (err == ENOBUFS) {
      self->CountOverrun();
    } else if (err != 0) {
      self->ReportError(err, "poll");
      if (self->closed_) return;
    }
    self->Arm();
  }
  self->Drain();
  // an overrun signalled with nothing to read is still reported at once
  if (!self->closed_ && self->enobufs_ != self->reported_enobufs_) self->Deliver(0, 0);
  if (self->closed_ || self->paused_) return;
  if (self->coalesce_ms_ > 0) {
    // Let events accumulate for a few ms before the next wake-up.
    uv_poll_stop(self->poll_);
    uv_timer_start(self->timer_, OnTimer, self->coalesce_ms_, 0);
  }
}

void NetlinkSocket::OnTimer(uv_timer_t* handle) {
  NetlinkSocket* self = static_cast<NetlinkSocket*>(handle->data);
  self->Arm();
}

void NetlinkSocket::Drain() {
  if (in_drain_) return;
  in_drain_ = true;
  // everything this drain reads was queued after the queue was last seen
  // empty: a lower bound for when each message was generated
  drain_from_us_ = last_empty_us_ ? last_empty_us_ : started_us_;
  names_.clear();
  size_t off = 0;
  uint32_t count = 0;
  unsigned rounds = 0;
  const unsigned kMaxRounds = 16;  // then yield to the event loop
  while (!closed_ && !paused_) {
    size_t room = buf_size_ - off;
    unsigned n = static_cast<unsigned>(room / slot_size_);
    if (n > slots_) n = slots_;
    if (n == 0) {
      Deliver(off, count);
      off = 0;
      count = 0;
      if (++rounds >= kMaxRounds) break;
      continue;
    }
    for (unsigned i = 0; i < n; i++) {
      iovs_[i].iov_base = buf_ + off + static_cast<size_t>(i) * slot_size_;
      iovs_[i].iov_len = slot_size_;
      memset(&msgs_[i], 0, sizeof(msgs_[i]));
      msgs_[i].msg_hdr.msg_iov = &iovs_[i];
      msgs_[i].msg_hdr.msg_iovlen = 1;
    }
    recv_calls_++;
    int r = recvmmsg(fd_, msgs_.data(), n, MSG_DONTWAIT, nullptr);
    if (r < 0) {
      int e = errno;
      if (e == EINTR) continue;
      if (e == EAGAIN || e == EWOULDBLOCK) {
        last_empty_us_ = NowMicros();
        break;
      }
      if (e == ENOBUFS) {
        CountOverrun();
        continue;
      }
      if (off > 0) Deliver(off, count);
      off = 0;
      count = 0;
      ReportError(e, "recvmmsg");
      break;
    }
    size_t w = off;
    for (int i = 0; i < r; i++) {
      size_t len = msgs_[i].msg_len;
      if (msgs_[i].msg_hdr.msg_flags & MSG_TRUNC) {
        truncated_++;
        continue;
      }
      uint8_t* src = buf_ + off + static_cast<size_t>(i) * slot_size_;
      if (src != buf_ + w) memmove(buf_ + w, src, len);
      size_t aligned = (len + 3) & ~static_cast<size_t>(3);
      if (aligned != len) memset(buf_ + w + len, 0, aligned - len);
      w += aligned;
      datagrams_++;
      bytes_ += len;
      count++;
    }
    if (portid_names_) NamePortids(buf_ + off, w - off);
    off = w;
    // fewer than asked: the queue is empty, or an error (an overrun) stopped
    // the call; the next call tells which (EAGAIN, or the error), so the
    // time the queue was empty is never one when it was not
  }
  if (off > 0 && !closed_) Deliver(off, count);
  in_drain_ = false;
}

// The processes behind the messages just received that user space caused
// (nlmsg_pid set), looked up before anything else is done with them.
void NetlinkSocket::NamePortids(const uint8_t* p, size_t len) {
  size_t o = 0;
  while (o + sizeof(struct nlmsghdr) <= len) {
    const struct nlmsghdr* h = reinterpret_cast<const struct nlmsghdr*>(p + o);
    if (h->nlmsg_len < sizeof(struct nlmsghdr) || o + h->nlmsg_len > len) break;
    uint32_t pid = h->nlmsg_pid;
    if (pid != 0 && pid != portid_ && names_.find(pid) == names_.end()) {
      std::string name;
      names_[pid] = portid_names_->Resolve(pid, &name) ? std::optional<std::string>(name) : std::nullopt;
    }
    o += NLMSG_ALIGN(h->nlmsg_len);
  }
}

// portidName(portid) -> string | null | undefined: the name of the process
// behind a portid of the batch being delivered, null when none had its
// socket open as the message was received, undefined when not looked up.
Napi::Value NetlinkSocket::PortidName(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto it = names_.find(info[0].As<Napi::Number>().Uint32Value());
  if (it == names_.end()) return env.Undefined();
  if (!it->second) return env.Null();
  return Napi::String::New(env, *it->second);
}

// onBatch(len, count, overruns, fromUs): overruns is the running ENOBUFS
// count, so JS sees an overrun with the batch that follows it (or an empty
// batch); fromUs: every message of the batch was generated after this.
void NetlinkSocket::Deliver(size_t len, uint32_t count) {
  if (closed_) return;
  if (len == 0 && enobufs_ == reported_enobufs_) return;
  if (len > 0) batches_++;
  reported_enobufs_ = enobufs_;
  Napi::Env env = env_;
  on_batch_.MakeCallback(Value(), {Napi::Number::New(env, static_cast<double>(len)),
                                   Napi::Number::New(env, count),
                                   Napi::Number::New(env, static_cast<double>(enobufs_)),
                                   Napi::Number::New(env, drain_from_us_)});
}

// Events are lost only while the receive queue is full, so the first loss
// since the queue was last seen empty happened after that moment.
void NetlinkSocket::CountOverrun() {
  enobufs_++;
  if (loss_from_us_ == 0) loss_from_us_ = last_empty_us_ ? last_empty_us_ : started_us_;
}

double NetlinkSocket::NowMicros() {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<double>(ts.tv_sec) * 1e6 + static_cast<double>(ts.tv_nsec / 1000);
}

// takeLoss() -> { overruns, from }: the ENOBUFS count, and the time (µs
// since the epoch) after which the events lost since the last takeLoss()
// were dropped: when the queue was last seen empty before the first of
// them (0: none since). Clears `from`.
Napi::Value NetlinkSocket::TakeLoss(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("overruns", Napi::Number::New(env, static_cast<double>(enobufs_)));
  o.Set("from", Napi::Number::New(env, loss_from_us_));
  loss_from_us_ = 0;
  return o;
}

void NetlinkSocket::ReportError(int err, const char* syscall) {
  Napi::Env env = env_;
  Napi::Error e = ErrnoError(env, syscall, err);
  on_error_.MakeCallback(Value(), {e.Value()});
}

Napi::Value NetlinkSocket::Stats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("datagrams", Napi::Number::New(env, static_cast<double>(datagrams_)));
  o.Set("bytes", Napi::Number::New(env, static_cast<double>(bytes_)));
  o.Set("batches", Napi::Number::New(env, static_cast<double>(batches_)));
  o.Set("enobufs", Napi::Number::New(env, static_cast<double>(enobufs_)));
  o.Set("truncated", Napi::Number::New(env, static_cast<double>(truncated_)));
  o.Set("wakeups", Napi::Number::New(env, static_cast<double>(wakeups_)));
  o.Set("recvCalls", Napi::Number::New(env, static_cast<double>(recv_calls_)));
  double drops = -1;
  double rmem = -1;
  if (fd_ >= 0 && !closed_) {
    uint32_t mem[SK_MEMINFO_VARS];
    memset(mem, 0, sizeof(mem));
    socklen_t l = sizeof(mem);
    if (getsockopt(fd_, SOL_SOCKET, SO_MEMINFO, mem, &l) == 0) {
      if (l >= (SK_MEMINFO_DROPS + 1) * sizeof(uint32_t))
        drops = mem[SK_MEMINFO_DROPS];
      rmem = mem[SK_MEMINFO_RMEM_ALLOC];
    }
  }
  o.Set("kernelDrops", Napi::Number::New(env, drops));
  o.Set("rmemAlloc", Napi::Number::New(env, rmem));
  // when the receive queue was last seen empty (µs; its start if never)
  o.Set("lastEmptyUs", Napi::Number::New(env, last_empty_us_ ? last_empty_us_ : started_us_));
  return o;
}

static void FreeHandle(uv_handle_t* h) {
  if (h->type == UV_POLL)
    delete reinterpret_cast<uv_poll_t*>(h);
  else
    delete reinterpret_cast<uv_timer_t*>(h);
}

void NetlinkSocket::CloseInternal() {
  if (closed_) return;
  closed_ = true;
  if (poll_) {
    uv_poll_stop(poll_);
    uv_close(reinterpret_cast<uv_handle_t*>(poll_), FreeHandle);
    poll_ = nullptr;
  }
  if (timer_) {
    uv_timer_stop(timer_);
    uv_close(reinterpret_cast<uv_handle_t*>(timer_), FreeHandle);
    timer_ = nullptr;
  }
  if (fd_ >= 0) {
    close(fd_);
    fd_ = -1;
  }
  portid_names_.reset();
}

Napi::Value NetlinkSocket::Close(const Napi::CallbackInfo& info) {
  CloseInternal();
  buf_ = nullptr;
  if (!buf_ref_.IsEmpty()) buf_ref_.Reset();
  if (!on_batch_.IsEmpty()) on_batch_.Reset();
  if (!on_error_.IsEmpty()) on_error_.Reset();
  if (!self_ref_.IsEmpty()) self_ref_.Reset();
  return info.Env().Undefined();
}

Napi::Value NetlinkSocket::GetPortId(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), portid_);
}

Napi::Value NetlinkSocket::GetFd(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), fd_);
}
