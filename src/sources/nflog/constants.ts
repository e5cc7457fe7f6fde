// nfnetlink_log (linux/netfilter/nfnetlink_log.h, nfnetlink.h).
export const NFNL_SUBSYS_ULOG = 4;
export const NFULNL_MSG_PACKET = 0;
export const NFULNL_MSG_CONFIG = 1;
/** netlink message types as they appear on the wire (subsystem << 8 | message) */
export const NFLOG_PACKET = (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_PACKET;
export const NFLOG_CONFIG = (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_CONFIG;

// packet attributes
export const NFULA_PACKET_HDR = 1; // { be16 hw_protocol; u8 hook; u8 pad }
export const NFULA_MARK = 2; // be32
export const NFULA_TIMESTAMP = 3; // { be64 sec; be64 usec }
export const NFULA_IFINDEX_INDEV = 4; // be32
export const NFULA_IFINDEX_OUTDEV = 5;
export const NFULA_IFINDEX_PHYSINDEV = 6;
export const NFULA_IFINDEX_PHYSOUTDEV = 7;
export const NFULA_HWADDR = 8; // { be16 hw_addrlen; u16 pad; u8 hw_addr[8] }
export const NFULA_PAYLOAD = 9;
export const NFULA_PREFIX = 10; // NUL-terminated
export const NFULA_UID = 11; // be32
export const NFULA_SEQ = 12; // be32, per group
export const NFULA_SEQ_GLOBAL = 13; // be32
export const NFULA_GID = 14; // be32
export const NFULA_HWTYPE = 15; // be16
export const NFULA_HWHEADER = 16;
export const NFULA_HWLEN = 17; // be16
export const NFULA_CT = 18; // nested CTA_*
export const NFULA_CT_INFO = 19; // be32 enum ip_conntrack_info
export const NFULA_VLAN = 20; // nested
export const NFULA_L2HDR = 21;

export const NFULA_VLAN_PROTO = 1; // be16
export const NFULA_VLAN_TCI = 2; // be16

// configuration
export const NFULA_CFG_CMD = 1; // { u8 command }
export const NFULA_CFG_MODE = 2; // { be32 copy_range; u8 copy_mode; u8 pad } (packed)
export const NFULA_CFG_NLBUFSIZ = 3; // be32
export const NFULA_CFG_TIMEOUT = 4; // be32, 1/100 s
export const NFULA_CFG_QTHRESH = 5; // be32
export const NFULA_CFG_FLAGS = 6; // be16

export const NFULNL_CFG_CMD_BIND = 1;
export const NFULNL_CFG_CMD_UNBIND = 2;
export const NFULNL_CFG_CMD_PF_BIND = 3;
export const NFULNL_CFG_CMD_PF_UNBIND = 4;

export const NFULNL_COPY_NONE = 0;
export const NFULNL_COPY_META = 1;
export const NFULNL_COPY_PACKET = 2;

export const NFULNL_CFG_F_SEQ = 0x1;
export const NFULNL_CFG_F_SEQ_GLOBAL = 0x2;
export const NFULNL_CFG_F_CONNTRACK = 0x4;

/** enum ip_conntrack_info */
export const CTINFO_NAMES = ['ESTABLISHED', 'RELATED', 'NEW', 'ESTABLISHED_REPLY', 'RELATED_REPLY', 'NEW_REPLY', '', 'UNTRACKED'];
export const HOOK_NAMES = ['PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING'];

/**
 * Packets the kernel gathers into one message by default. With the timeout
 * at 0 the kernel still sends what it gathered at its next timer tick (a
 * few ms), so this costs no more than that in delay, and under load one
 * message carries as many packets as fit the kernel's message buffer (about
 * 4 KiB: a dozen small packets) instead of one: fewer datagrams to receive.
 */
export const NFLOG_DEFAULT_QTHRESHOLD = 64;
