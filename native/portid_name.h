// The process behind a netlink portid, found the way conntrack-tools finds it
// ([USERSPACE] portid=N progname=NAME), but at the moment the message is
// received, before any JavaScript runs: the process that caused an event is
// often a short-lived `conntrack -I` that closes its socket right after the
// kernel's answer, so every microsecond counts.
#pragma once

#include <cstdint>
#include <string>

class PortidNames {
 public:
  // `netlink_fd`: /proc/<thread>/net/netlink opened in the socket's own
  // network namespace (an open file keeps the namespace it was opened in).
  explicit PortidNames(int netlink_fd) : fd_(netlink_fd) {}
  ~PortidNames();
  // The name, or false when no process has that portid's socket open now.
  bool Resolve(uint32_t portid, std::string* name);

 private:
  bool InodeOf(uint32_t portid, unsigned long* inode);
  int fd_;
  std::string text_;
  // conntrack's cache: the last portid and socket inode, and what they gave
  uint32_t last_portid_ = 0;
  unsigned long last_inode_ = 0;
  bool last_found_ = false;
  std::string last_name_;
};
