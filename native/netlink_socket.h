// A netlink socket for Node.js: batched receive (recvmmsg into one reusable
// Buffer, one JS callback per batch), overrun accounting, socket filters and
// opening inside another network namespace. Protocol-agnostic: ctnetlink,
// NFLOG, sock_diag and nfacct all use it.
#pragma once

#include <napi.h>
#include <uv.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

class PortidNames;

#include <sys/socket.h>

class NetlinkSocket : public Napi::ObjectWrap<NetlinkSocket> {
 public:
  static Napi::Object Init(Napi::Env env, Napi::Object exports);
  explicit NetlinkSocket(const Napi::CallbackInfo& info);
  ~NetlinkSocket() override;

 private:
  // JS methods
  Napi::Value AddMembership(const Napi::CallbackInfo& info);
  Napi::Value DropMembership(const Napi::CallbackInfo& info);
  Napi::Value SetRcvbuf(const Napi::CallbackInfo& info);
  Napi::Value GetRcvbuf(const Napi::CallbackInfo& info);
  Napi::Value SetSockoptInt(const Napi::CallbackInfo& info);
  Napi::Value GetSockoptInt(const Napi::CallbackInfo& info);
  Napi::Value AttachFilter(const Napi::CallbackInfo& info);
  Napi::Value DetachFilter(const Napi::CallbackInfo& info);
  Napi::Value Send(const Napi::CallbackInfo& info);
  Napi::Value Start(const Napi::CallbackInfo& info);
  Napi::Value Pause(const Napi::CallbackInfo& info);
  Napi::Value Resume(const Napi::CallbackInfo& info);
  Napi::Value Stats(const Napi::CallbackInfo& info);
  Napi::Value TakeLoss(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);
  Napi::Value GetPortId(const Napi::CallbackInfo& info);
  Napi::Value GetFd(const Napi::CallbackInfo& info);
  Napi::Value PortidName(const Napi::CallbackInfo& info);
  void NamePortids(const uint8_t* p, size_t len);

  bool CheckOpen(Napi::Env env);
  void Drain();
  void Deliver(size_t len, uint32_t count);
  void ReportError(int err, const char* syscall);
  void CountOverrun();
  static double NowMicros();
  void Arm();
  void Disarm();
  void CloseInternal();

  static void OnPoll(uv_poll_t* handle, int status, int events);
  static void OnTimer(uv_timer_t* handle);

  Napi::Env env_;
  int fd_ = -1;
  uint32_t portid_ = 0;
  bool started_ = false;
  bool paused_ = false;
  bool closed_ = false;
  bool in_drain_ = false;
  unsigned coalesce_ms_ = 0;
  // the names of the processes behind the portids of the current drain
  std::unique_ptr<PortidNames> portid_names_;
  std::unordered_map<uint32_t, std::optional<std::string>> names_;

  uv_poll_t* poll_ = nullptr;
  uv_timer_t* timer_ = nullptr;

  // Receive area: a Node-owned Buffer kept alive by buf_ref_.
  Napi::ObjectReference buf_ref_;
  uint8_t* buf_ = nullptr;
  size_t buf_size_ = 0;
  size_t slot_size_ = 32768;
  unsigned slots_ = 64;
  std::vector<struct mmsghdr> msgs_;
  std::vector<struct iovec> iovs_;

  Napi::FunctionReference on_batch_;
  Napi::FunctionReference on_error_;
  Napi::ObjectReference self_ref_;

  // Counters
  uint64_t datagrams_ = 0;
  uint64_t bytes_ = 0;
  uint64_t batches_ = 0;
  uint64_t enobufs_ = 0;
  uint64_t truncated_ = 0;
  uint64_t wakeups_ = 0;
  uint64_t recv_calls_ = 0;
  uint64_t reported_enobufs_ = 0;
  // realtime µs: when a read last found the queue empty; when the first
  // overrun since the last takeLoss() began (0: none); when reading started
  double last_empty_us_ = 0;
  double loss_from_us_ = 0;
  double started_us_ = 0;
  double drain_from_us_ = 0;
};
