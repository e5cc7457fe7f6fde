// conntrail's native addon: only what Node.js cannot do itself.
#include <napi.h>

#include "netlink_socket.h"

static Napi::Object InitAll(Napi::Env env, Napi::Object exports) {
  NetlinkSocket::Init(env, exports);
  return exports;
}

NODE_API_MODULE(conntrail_native, InitAll)
