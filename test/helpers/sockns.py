# Prints the network namespace inode of every socket a process holds, one
# per line ("FD INODE"): each socket is duplicated with pidfd_getfd(2) and
# asked for its namespace with SIOCGSKNS. Needs root (ptrace access).
# usage: python3 sockns.py PID
import ctypes, fcntl, os, sys

SYS_pidfd_getfd = 438  # x86_64 and aarch64 alike
SIOCGSKNS = 0x894C
libc = ctypes.CDLL(None, use_errno=True)
pid = int(sys.argv[1])
pidfd = os.pidfd_open(pid)
for fd in sorted(int(f) for f in os.listdir(f"/proc/{pid}/fd")):
    try:
        if not os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:"):
            continue
    except OSError:
        continue
    mine = libc.syscall(SYS_pidfd_getfd, pidfd, fd, 0)
    if mine < 0:
        continue  # closed meanwhile
    try:
        ns = fcntl.ioctl(mine, SIOCGSKNS)
        print(fd, os.fstat(ns).st_ino)
        os.close(ns)
    except OSError as e:
        print(fd, "error", e.errno)
    finally:
        os.close(mine)
