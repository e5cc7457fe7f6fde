{
  "variables": {
    "have_libbpf": "<!(sh scripts/have-libbpf.sh)"
  },
  "targets": [
    {
      "target_name": "conntrail_native",
      "sources": ["native/addon.cc", "native/netlink_socket.cc", "native/unix_dgram.cc", "native/tcp_info.cc", "native/bpf_object.cc", "native/portid_name.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_CPP_EXCEPTIONS"],
      "cflags_cc": ["-std=c++17", "-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "cflags_cc!": ["-fno-exceptions"],
      "conditions": [
        ["have_libbpf==1", {
          "defines": ["CONNTRAIL_HAVE_LIBBPF"],
          "libraries": ["-lbpf"]
        }]
      ]
    },
    {
      "target_name": "conntrail_bpf",
      "type": "none",
      "actions": [
        {
          "action_name": "build_bpf_objects",
          "inputs": ["bpf/tcpstates.bpf.c", "scripts/build-bpf.sh"],
          "outputs": ["<(PRODUCT_DIR)/tcpstates.bpf.o"],
          "action": ["sh", "scripts/build-bpf.sh", "<(PRODUCT_DIR)"]
        }
      ]
    }
  ]
}
