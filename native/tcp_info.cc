// What the peer of a TCP socket has not acknowledged yet, for the syslog
// sink's at-least-once delivery: Node.js reports a write done once the
// kernel has taken it, not once the peer has it.
#include "tcp_info.h"

#include <errno.h>
#include <linux/sockios.h>
#include <string.h>
#include <sys/ioctl.h>

#include <string>

// tcpUnacked(fd): the bytes in the socket's send queue the peer has not
// acknowledged, sent or not yet sent (SIOCOUTQ: write_seq - snd_una; a
// FIN counts one while it is unacknowledged). 0 while still connecting.
Napi::Value TcpUnacked(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) {
    Napi::TypeError::New(env, "tcpUnacked(fd) expected").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  int fd = info[0].As<Napi::Number>().Int32Value();
  int n = 0;
  if (ioctl(fd, SIOCOUTQ, &n) < 0) {
    int err = errno;
    Napi::Error e = Napi::Error::New(env, std::string("ioctl SIOCOUTQ: ") + strerrorname_np(err) + " (" + strerror(err) + ")");
    e.Set("code", Napi::String::New(env, strerrorname_np(err)));
    e.ThrowAsJavaScriptException();
    return env.Undefined();
  }
  return Napi::Number::New(env, n);
}
