// conntrail's native addon: only what Node.js cannot do itself.
#include <napi.h>

#include "bpf_object.h"
#include "netlink_socket.h"
#include "tcp_info.h"
#include "unix_dgram.h"

static Napi::Object InitAll(Napi::Env env, Napi::Object exports) {
  NetlinkSocket::Init(env, exports);
  BpfInit(env, exports);
  exports.Set("unixDatagramSend", Napi::Function::New(env, UnixDatagramSend));
  exports.Set("unixDatagramSendMemfd", Napi::Function::New(env, UnixDatagramSendMemfd));
  exports.Set("tcpUnacked", Napi::Function::New(env, TcpUnacked));
  return exports;
}

NODE_API_MODULE(conntrail_native, InitAll)
