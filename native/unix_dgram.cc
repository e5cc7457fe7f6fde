// Unix datagram send, for what Node.js has no socket for: sd_notify
// (NOTIFY_SOCKET), and later the journal and /dev/log.
#include "unix_dgram.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <string>

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
  memset(&addr, 0, sizeof(addr));
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(addr.sun_path)) {
    Napi::RangeError::New(env, "unixDatagramSend: bad socket path").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  memcpy(addr.sun_path, path.data(), path.size());
  socklen_t len = offsetof(struct sockaddr_un, sun_path) + path.size();
  if (path[0] == '@') addr.sun_path[0] = '\0';
  else len += 1;
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
