#include "portid_name.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

namespace {

const int kNetlinkNetfilter = 12;

// /proc/PID/stat's name as conntrack reads it: after "PID (", up to the first ')'
bool Pid2Name(unsigned long pid, std::string* name) {
  char path[64];
  snprintf(path, sizeof(path), "/proc/%lu/stat", pid);
  FILE* f = fopen(path, "re");
  if (!f) return false;
  char buf[512];
  size_t n = fread(buf, 1, sizeof(buf) - 1, f);
  fclose(f);
  buf[n] = 0;
  char* open = strchr(buf, '(');
  if (!open) return false;
  char* close = strchr(open + 1, ')');
  if (!close || close == open + 1) return false;
  name->assign(open + 1, close - open - 1);
  return true;
}

bool HoldsSocket(unsigned long pid, unsigned long inode) {
  char path[64];
  snprintf(path, sizeof(path), "/proc/%lu/fd", pid);
  DIR* d = opendir(path);
  if (!d) return false;
  char want[48];
  int wl = snprintf(want, sizeof(want), "socket:[%lu]", inode);
  bool found = false;
  while (struct dirent* e = readdir(d)) {
    if (e->d_type != DT_LNK) continue;
    char link[320], target[64];
    snprintf(link, sizeof(link), "/proc/%lu/fd/%s", pid, e->d_name);
    ssize_t r = readlink(link, target, sizeof(target));
    if (r == wl && memcmp(target, want, wl) == 0) { found = true; break; }
  }
  closedir(d);
  return found;
}

}  // namespace

PortidNames::~PortidNames() {
  if (fd_ >= 0) close(fd_);
}

// The portid's NETLINK_NETFILTER socket inode, from the namespace's
// /proc/net/netlink ("sk Eth Pid Groups Rmem Wmem Dump Locks Drops Inode").
bool PortidNames::InodeOf(uint32_t portid, unsigned long* inode) {
  if (fd_ < 0) return false;
  text_.clear();
  char buf[16384];
  off_t off = 0;
  for (;;) {
    ssize_t r = pread(fd_, buf, sizeof(buf), off);
    if (r <= 0) break;
    text_.append(buf, r);
    off += r;
  }
  size_t pos = text_.find('\n');
  while (pos != std::string::npos && pos + 1 < text_.size()) {
    const char* line = text_.c_str() + pos + 1;
    int prot = -1;
    unsigned int pid = 0;
    unsigned long ino = 0;
    if (sscanf(line, "%*x %d %u %*x %*d %*d %*x %*d %*u %lu", &prot, &pid, &ino) == 3 &&
        prot == kNetlinkNetfilter && pid == portid) {
      *inode = ino;
      return true;
    }
    pos = text_.find('\n', pos + 1);
  }
  return false;
}

bool PortidNames::Resolve(uint32_t portid, std::string* name) {
  unsigned long inode = 0;
  if (!InodeOf(portid, &inode)) return false;
  if (portid == last_portid_ && inode == last_inode_) {
    if (last_found_) *name = last_name_;
    return last_found_;
  }
  // most netlink users are given their process id as their first portid
  bool found = HoldsSocket(portid, inode) && Pid2Name(portid, name);
  if (!found) {
    if (DIR* d = opendir("/proc")) {
      while (struct dirent* e = readdir(d)) {
        if (e->d_type != DT_DIR) continue;
        char* end;
        unsigned long pid = strtoul(e->d_name, &end, 10);
        if (pid <= 1 || *end || pid == portid) continue;
        if (HoldsSocket(pid, inode) && Pid2Name(pid, name)) { found = true; break; }
      }
      closedir(d);
    }
  }
  last_portid_ = portid;
  last_inode_ = inode;
  last_found_ = found;
  last_name_ = found ? *name : std::string();
  return found;
}
