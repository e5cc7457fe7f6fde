// Unix datagram send, for what Node.js has no socket for: sd_notify
// (NOTIFY_SOCKET), and later the journal and /dev/log.
#include "unix_dgram.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <fcntl.h>
#include <sys/mman.h>

#include <string>

namespace {
// A unix socket address for `path` ("@name": abstract); false if too long.
bool MakeAddr(const std::string& path, struct sockaddr_un* addr, socklen_t* len) {
  memset(addr, 0, sizeof(*addr));
  addr->sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(addr->sun_path)) return false;
  memcpy(addr->sun_path, path.data(), path.size());
  *len = offsetof(struct sockaddr_un, sun_path) + path.size();
  if (path[0] == '@') addr->sun_path[0] = '\0';
  else *len += 1;
  return true;
}
}  // namespace

// unixDatagramSend(path, Buffer): "@name" is an abstract socket address.
Napi::Value UnixDatagramSend(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsString() || !info[1].IsBuffer()) {
    Napi::TypeError::New(env, "unixDatagramSend(path, buffer) expected").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  std::string path = info[0].As<Napi::String>().Utf8Value();
  Napi::Buffer<uint8_t> data = info[1].As<Napi::Buffer<uint8_t>>();
  struct sockaddr_un addr;
  socklen_t len;
  if (!MakeAddr(path, &addr, &len)) {
    Napi::RangeError::New(env, "unixDatagramSend: bad socket path").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    Napi::Error e = Napi::Error::New(env, std::string("socket: ") + strerror(errno));
    e.Set("code", Napi::String::New(env, strerrorname_np(errno)));
    e.ThrowAsJavaScriptException();
    return env.Undefined();
  }
  ssize_t n;
  do {
    n = sendto(fd, data.Data(), data.Length(), MSG_NOSIGNAL, reinterpret_cast<struct sockaddr*>(&addr), len);
  } while (n < 0 && errno == EINTR);
  int err = errno;
  close(fd);
  if (n < 0) {
    Napi::Error e = Napi::Error::New(env, std::string("sendto ") + path + ": " + strerrorname_np(err) + " (" + strerror(err) + ")");
    e.Set("code", Napi::String::New(env, strerrorname_np(err)));
    e.ThrowAsJavaScriptException();
  }
  return env.Undefined();
}

// unixDatagramSendMemfd(path, Buffer): the payload goes into a sealed
// memfd, and the datagram carries only its descriptor (SCM_RIGHTS) -- how
// systemd-journald takes entries too large for one datagram.
Napi::Value UnixDatagramSendMemfd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsString() || !info[1].IsBuffer()) {
    Napi::TypeError::New(env, "unixDatagramSendMemfd(path, buffer) expected").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  std::string path = info[0].As<Napi::String>().Utf8Value();
  Napi::Buffer<uint8_t> data = info[1].As<Napi::Buffer<uint8_t>>();
  auto fail = [&](const char* what, int err) {
    Napi::Error e = Napi::Error::New(env, std::string(what) + ": " + strerrorname_np(err) + " (" + strerror(err) + ")");
    e.Set("code", Napi::String::New(env, strerrorname_np(err)));
    e.ThrowAsJavaScriptException();
    return env.Undefined();
  };
  struct sockaddr_un addr;
  socklen_t alen;
  if (!MakeAddr(path, &addr, &alen)) return fail("socket path", EINVAL);

  int mfd = memfd_create("conntrail-journal", MFD_ALLOW_SEALING | MFD_CLOEXEC);
  if (mfd < 0) return fail("memfd_create", errno);
  size_t off = 0;
  while (off < data.Length()) {
    ssize_t w = write(mfd, data.Data() + off, data.Length() - off);
    if (w < 0) {
      if (errno == EINTR) continue;
      int e = errno;
      close(mfd);
      return fail("write memfd", e);
    }
    off += static_cast<size_t>(w);
  }
  if (fcntl(mfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0) {
    int e = errno;
    close(mfd);
    return fail("seal memfd", e);
  }
  int sock = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (sock < 0) {
    int e = errno;
    close(mfd);
    return fail("socket", e);
  }
  char cbuf[CMSG_SPACE(sizeof(int))];
  memset(cbuf, 0, sizeof(cbuf));
  struct msghdr msg;
  memset(&msg, 0, sizeof(msg));
  msg.msg_name = &addr;
  msg.msg_namelen = alen;
  msg.msg_control = cbuf;
  msg.msg_controllen = sizeof(cbuf);
  struct cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(c), &mfd, sizeof(int));
  ssize_t n;
  do {
    n = sendmsg(sock, &msg, MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  int e = errno;
  close(sock);
  close(mfd);
  if (n < 0) return fail(("sendmsg " + path).c_str(), e);
  return env.Undefined();
}
