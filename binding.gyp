{
  "targets": [
    {
      "target_name": "conntrail_native",
      "sources": ["native/addon.cc", "native/netlink_socket.cc", "native/unix_dgram.cc", "native/tcp_info.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_CPP_EXCEPTIONS"],
      "cflags_cc": ["-std=c++17", "-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "cflags_cc!": ["-fno-exceptions"]
    }
  ]
}
