#include "bpf_object.h"

#include <time.h>
#include <unistd.h>

// monotonicToRealtimeUs() -> CLOCK_REALTIME - CLOCK_MONOTONIC now, in µs:
// what turns a BPF program's bpf_ktime_get_ns() into wall-clock time
// (read again whenever asked, so a clock step or a suspend is followed).
static Napi::Value MonotonicToRealtimeUs(const Napi::CallbackInfo& info) {
  struct timespec r, m;
  clock_gettime(CLOCK_MONOTONIC, &m);
  clock_gettime(CLOCK_REALTIME, &r);
  double us = (static_cast<double>(r.tv_sec) - static_cast<double>(m.tv_sec)) * 1e6 +
              (static_cast<double>(r.tv_nsec) - static_cast<double>(m.tv_nsec)) / 1e3;
  return Napi::Number::New(info.Env(), us);
}
static void AddClockOffset(Napi::Env env, Napi::Object exports) {
  exports.Set("monotonicToRealtimeUs", Napi::Function::New(env, MonotonicToRealtimeUs));
}

#ifdef CONNTRAIL_HAVE_LIBBPF

#include <uv.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

namespace {

// libbpf's warnings, kept so that a failure can be told in one line (the
// last meaningful line libbpf printed, e.g. the verifier's or the reason
// BTF was not found), not printed to stderr.
std::string g_last_warning;
int LibbpfPrint(enum libbpf_print_level level, const char* fmt, va_list args) {
  if (level == LIBBPF_DEBUG) return 0;
  char buf[512];
  int n = vsnprintf(buf, sizeof(buf), fmt, args);
  std::string line(buf, n > 0 ? std::min<size_t>(n, sizeof(buf) - 1) : 0);
  while (!line.empty() && (line.back() == '\n' || line.back() == ' ')) line.pop_back();
  if (!line.empty()) g_last_warning = line;
  return 0;
}

Napi::Error BpfError(Napi::Env env, const std::string& what, int err) {
  std::string msg = what + ": " + strerror(err);
  if (!g_last_warning.empty()) msg += " (libbpf: " + g_last_warning + ")";
  Napi::Error e = Napi::Error::New(env, msg);
  e.Set("errno", Napi::Number::New(env, err));
  return e;
}

class BpfObject : public Napi::ObjectWrap<BpfObject> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "BpfObject",
                       {
                           InstanceMethod("attach", &BpfObject::Attach),
                           InstanceMethod("mapUpdate", &BpfObject::MapUpdate),
                           InstanceMethod("mapDelete", &BpfObject::MapDelete),
                           InstanceMethod("perCpuSum", &BpfObject::PerCpuSum),
                           InstanceMethod("startRing", &BpfObject::StartRing),
                           InstanceMethod("pause", &BpfObject::Pause),
                           InstanceMethod("resume", &BpfObject::Resume),
                           InstanceMethod("stats", &BpfObject::Stats),
                           InstanceMethod("missed", &BpfObject::Missed),
                           InstanceMethod("drain", &BpfObject::Drain),
                           InstanceMethod("close", &BpfObject::Close),
                       });
  }

  // new BpfObject(path, { mapSizes: { name: entries }, batchBytes })
  explicit BpfObject(const Napi::CallbackInfo& info) : Napi::ObjectWrap<BpfObject>(info), env_(info.Env()) {
    Napi::Env env = info.Env();
    if (!info[0].IsString()) {
      Napi::TypeError::New(env, "BpfObject: the object file's path expected").ThrowAsJavaScriptException();
      return;
    }
    std::string path = info[0].As<Napi::String>();
    Napi::Object opts = info[1].IsObject() ? info[1].As<Napi::Object>() : Napi::Object::New(env);
    if (opts.Has("batchBytes") && opts.Get("batchBytes").IsNumber())
      batch_size_ = std::max<size_t>(4096, opts.Get("batchBytes").As<Napi::Number>().Uint32Value());
    if (opts.Has("coalesceMs") && opts.Get("coalesceMs").IsNumber())
      coalesce_ms_ = opts.Get("coalesceMs").As<Napi::Number>().Uint32Value();
    libbpf_set_print(LibbpfPrint);
    g_last_warning.clear();
    obj_ = bpf_object__open_file(path.c_str(), nullptr);
    if (!obj_) {
      int err = errno;
      obj_ = nullptr;
      BpfError(env, "cannot open " + path, err).ThrowAsJavaScriptException();
      return;
    }
    if (opts.Has("mapSizes") && opts.Get("mapSizes").IsObject()) {
      Napi::Object sizes = opts.Get("mapSizes").As<Napi::Object>();
      Napi::Array names = sizes.GetPropertyNames();
      for (uint32_t i = 0; i < names.Length(); i++) {
        std::string name = names.Get(i).As<Napi::String>();
        Napi::Value v = sizes.Get(name);
        if (!v.IsNumber()) {
          Napi::TypeError::New(env, "BpfObject: mapSizes." + name + ": a number expected").ThrowAsJavaScriptException();
          CloseInternal();
          return;
        }
        bpf_map* m = bpf_object__find_map_by_name(obj_, name.c_str());
        if (!m) continue;
        int err = bpf_map__set_max_entries(m, v.As<Napi::Number>().Uint32Value());
        if (err) {
          BpfError(env, "map " + name, -err).ThrowAsJavaScriptException();
          CloseInternal();
          return;
        }
      }
    }
    g_last_warning.clear();
    int err = bpf_object__load(obj_);
    if (err) {
      BpfError(env, "cannot load " + path, -err).ThrowAsJavaScriptException();
      CloseInternal();
      return;
    }
  }

  ~BpfObject() override { CloseInternal(); }

 private:
  Napi::Value Attach(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!CheckOpen(env)) return env.Undefined();
    bpf_program* p;
    bpf_object__for_each_program(p, obj_) {
      g_last_warning.clear();
      bpf_link* l = bpf_program__attach(p);
      if (!l) {
        BpfError(env, std::string("cannot attach ") + bpf_program__name(p), errno).ThrowAsJavaScriptException();
        return env.Undefined();
      }
      links_.push_back(l);
    }
    return env.Undefined();
  }

  // The map named by info[0], or nullptr with a TypeError pending (`what` names the call and what it takes).
  bpf_map* FindMap(const Napi::CallbackInfo& info, const char* what) {
    bpf_map* m = info[0].IsString() ? bpf_object__find_map_by_name(obj_, info[0].As<Napi::String>().Utf8Value().c_str()) : nullptr;
    if (!m) Napi::TypeError::New(info.Env(), std::string(what) + " expected").ThrowAsJavaScriptException();
    return m;
  }

  // mapUpdate(name, key: Buffer, value: Buffer)
  Napi::Value MapUpdate(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!CheckOpen(env)) return env.Undefined();
    const char* what = "mapUpdate: a map of the object, a key and a value Buffer";
    bpf_map* m = FindMap(info, what);
    if (!m) return env.Undefined();
    if (!info[1].IsBuffer() || !info[2].IsBuffer()) {
      Napi::TypeError::New(env, std::string(what) + " expected").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    std::string name = bpf_map__name(m);
    auto key = info[1].As<Napi::Buffer<uint8_t>>();
    auto value = info[2].As<Napi::Buffer<uint8_t>>();
    if (key.Length() != bpf_map__key_size(m) || value.Length() != bpf_map__value_size(m)) {
      Napi::RangeError::New(env, "mapUpdate: key or value of the wrong size for map " + name).ThrowAsJavaScriptException();
      return env.Undefined();
    }
    if (bpf_map_update_elem(bpf_map__fd(m), key.Data(), value.Data(), BPF_ANY) != 0) {
      BpfError(env, "cannot update map " + name, errno).ThrowAsJavaScriptException();
    }
    return env.Undefined();
  }

  // mapDelete(name, key: Buffer) -> whether the key was there
  Napi::Value MapDelete(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!CheckOpen(env)) return env.Undefined();
    const char* what = "mapDelete: a map of the object and a key Buffer";
    bpf_map* m = FindMap(info, what);
    if (!m) return env.Undefined();
    if (!info[1].IsBuffer()) {
      Napi::TypeError::New(env, std::string(what) + " expected").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    std::string name = bpf_map__name(m);
    auto key = info[1].As<Napi::Buffer<uint8_t>>();
    if (key.Length() != bpf_map__key_size(m)) {
      Napi::RangeError::New(env, "mapDelete: key of the wrong size for map " + name).ThrowAsJavaScriptException();
      return env.Undefined();
    }
    if (bpf_map_delete_elem(bpf_map__fd(m), key.Data()) != 0) {
      if (errno == ENOENT) return Napi::Boolean::New(env, false);
      BpfError(env, "cannot delete from map " + name, errno).ThrowAsJavaScriptException();
      return env.Undefined();
    }
    return Napi::Boolean::New(env, true);
  }

  // perCpuSum(name, key: Buffer) -> the sum over CPUs of a per-CPU u64 value
  Napi::Value PerCpuSum(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!CheckOpen(env)) return env.Undefined();
    const char* what = "perCpuSum: a per-CPU map of u64 values and a key Buffer";
    bpf_map* m = FindMap(info, what);
    if (!m) return env.Undefined();
    if (!info[1].IsBuffer() || bpf_map__value_size(m) != 8) {
      Napi::TypeError::New(env, std::string(what) + " expected").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    std::string name = bpf_map__name(m);
    int ncpu = libbpf_num_possible_cpus();
    if (ncpu <= 0) ncpu = 1;
    std::vector<uint64_t> v(ncpu, 0);
    auto key = info[1].As<Napi::Buffer<uint8_t>>();
    if (bpf_map_lookup_elem(bpf_map__fd(m), key.Data(), v.data()) != 0) {
      BpfError(env, "cannot read map " + name, errno).ThrowAsJavaScriptException();
      return env.Undefined();
    }
    uint64_t sum = 0;
    for (uint64_t x : v) sum += x;
    return Napi::Number::New(env, static_cast<double>(sum));
  }

  // startRing(name, onBatch(len, count), onError(err)) -> Buffer
  // The Buffer is reused for every batch: records as [u32 length][bytes],
  // each padded to 8 bytes. onBatch must consume buf[0, len) before it returns.
  Napi::Value StartRing(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!CheckOpen(env)) return env.Undefined();
    if (rb_) {
      Napi::Error::New(env, "startRing: already started").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    const char* what = "startRing: a ring buffer map, onBatch and onError";
    bpf_map* m = FindMap(info, what);
    if (!m) return env.Undefined();
    if (!info[1].IsFunction() || !info[2].IsFunction()) {
      Napi::TypeError::New(env, std::string(what) + " expected").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    std::string name = bpf_map__name(m);
    rb_ = ring_buffer__new(bpf_map__fd(m), &BpfObject::OnSample, this, nullptr);
    if (!rb_) {
      BpfError(env, "cannot open ring buffer " + name, errno).ThrowAsJavaScriptException();
      return env.Undefined();
    }
    on_batch_ = Napi::Persistent(info[1].As<Napi::Function>());
    on_error_ = Napi::Persistent(info[2].As<Napi::Function>());
    Napi::Buffer<uint8_t> buf = Napi::Buffer<uint8_t>::New(env, batch_size_);
    buf_ = buf.Data();
    buf_ref_ = Napi::Persistent(buf.As<Napi::Object>());
    uv_loop_t* loop = nullptr;
    napi_get_uv_event_loop(env, &loop);
    poll_ = new uv_poll_t;
    int r = uv_poll_init(loop, poll_, ring_buffer__epoll_fd(rb_));
    if (r != 0) {
      delete poll_;
      poll_ = nullptr;
      Napi::Error::New(env, std::string("uv_poll_init: ") + uv_strerror(r)).ThrowAsJavaScriptException();
      return env.Undefined();
    }
    poll_->data = this;
    timer_ = new uv_timer_t;
    uv_timer_init(loop, timer_);
    timer_->data = this;
    self_ref_ = Napi::Persistent(Value());
    if (!paused_) uv_poll_start(poll_, UV_READABLE, OnPoll);
    return buf;
  }

  Napi::Value Pause(const Napi::CallbackInfo& info) {
    paused_ = true;
    if (poll_) uv_poll_stop(poll_);
    if (timer_) uv_timer_stop(timer_);
    return info.Env().Undefined();
  }

  Napi::Value Resume(const Napi::CallbackInfo& info) {
    if (paused_) {
      paused_ = false;
      if (poll_ && !closed_) uv_poll_start(poll_, UV_READABLE, OnPoll);
    }
    return info.Env().Undefined();
  }

  Napi::Value Stats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Object o = Napi::Object::New(env);
    o.Set("records", Napi::Number::New(env, static_cast<double>(records_)));
    o.Set("bytes", Napi::Number::New(env, static_cast<double>(bytes_)));
    o.Set("batches", Napi::Number::New(env, static_cast<double>(batches_)));
    o.Set("wakeups", Napi::Number::New(env, static_cast<double>(wakeups_)));
    o.Set("oversized", Napi::Number::New(env, static_cast<double>(oversized_)));
    return o;
  }

  // missed() -> runs of the programs the kernel skipped (bpf_prog_info.recursion_misses:
  // the program was already running on that CPU), summed
  Napi::Value Missed(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!CheckOpen(env)) return env.Undefined();
    uint64_t sum = 0;
    bpf_program* p;
    bpf_object__for_each_program(p, obj_) {
      struct bpf_prog_info pi;
      memset(&pi, 0, sizeof(pi));
      uint32_t len = sizeof(pi);
      if (bpf_obj_get_info_by_fd(bpf_program__fd(p), &pi, &len) == 0) sum += pi.recursion_misses;
    }
    return Napi::Number::New(env, static_cast<double>(sum));
  }

  // drain() -> when the programs were detached (CLOCK_MONOTONIC µs; 0 if never
  // attached): detaches the programs (no change is recorded after this), then
  // delivers what the ring still holds, in batches, before it returns (the
  // end of a run: nothing the program recorded is left unread). Paused or
  // not: what is left would otherwise be lost without a count.
  Napi::Value Drain(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (closed_ || !rb_) return Napi::Number::New(env, detached_us_);
    if (in_consume_) {
      // from a batch callback: a nested consume would read the same records again
      Napi::Error::New(env, "drain: not from a batch callback").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    // when the programs are detached (CLOCK_MONOTONIC, µs, as bpf_ktime_get_ns),
    // read before: the kernel takes a probe off the tracepoint at once, then
    // may wait out an RCU grace period (milliseconds) before the destroy
    // returns. Every change recorded after this time is recorded within
    // microseconds of it.
    if (!links_.empty()) {
      struct timespec m;
      clock_gettime(CLOCK_MONOTONIC, &m);
      detached_us_ = static_cast<double>(m.tv_sec) * 1e6 + static_cast<double>(m.tv_nsec / 1000);
    }
    for (bpf_link* l : links_) bpf_link__destroy(l);
    links_.clear();
    // paused or not (a pause from a batch callback meanwhile does not stop it):
    // what is left in the ring would otherwise be lost without a count
    draining_ = true;
    in_consume_ = true;
    // nothing is added once detached, so this ends; a program still running on
    // another CPU as it was detached may have a record reserved, not yet
    // submitted (consume stops before it): looked for again after a moment
    for (int idle = 0; idle < 3 && !closed_ && !failed_;) {
      this_wakeup_ = 0;
      int n = ring_buffer__consume(rb_);
      if (n < 0 && n != -1) break;
      if (n == 0) {
        idle++;
        usleep(1000);
      } else {
        idle = 0;
      }
    }
    in_consume_ = false;
    draining_ = false;
    if (closed_) {
      FreeRing();
      return Napi::Number::New(env, detached_us_);
    }
    Deliver();
    return Napi::Number::New(env, detached_us_);
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    CloseInternal();
    return info.Env().Undefined();
  }

  bool CheckOpen(Napi::Env env) {
    if (!obj_ || closed_) {
      Napi::Error::New(env, "BpfObject is closed").ThrowAsJavaScriptException();
      return false;
    }
    return true;
  }

  static int OnSample(void* ctx, void* data, size_t len) {
    BpfObject* self = static_cast<BpfObject*>(ctx);
    if (self->closed_ || self->failed_) return -1;
    size_t need = 4 + ((len + 7) & ~static_cast<size_t>(7));
    if (need + 4 > self->batch_size_) {  // cannot ever fit: counted, skipped
      self->oversized_++;
      return 0;
    }
    if (self->off_ + need > self->batch_size_) {
      // no room: deliver what is gathered, then take this one
      self->Deliver();
      if (self->closed_) return -1;
    }
    uint8_t* p = self->buf_ + self->off_;
    uint32_t l = static_cast<uint32_t>(len);
    memcpy(p, &l, 4);
    memcpy(p + 4, data, len);
    if (need - 4 > len) memset(p + 4 + len, 0, need - 4 - len);
    self->off_ += need;
    self->count_++;
    self->records_++;
    self->bytes_ += len;
    // the record is taken: stop here when paused from a batch callback, or
    // after a bounded number per wake-up, so the event loop gets its turn
    // (the ring's fd stays readable: the next turn goes on)
    if (self->failed_ || (!self->draining_ && (self->paused_ || ++self->this_wakeup_ >= kMaxPerWakeup))) return -1;
    return 0;
  }

  void Deliver() {
    if (off_ == 0 || closed_) return;
    Napi::HandleScope scope(env_);
    size_t len = off_;
    uint32_t count = count_;
    off_ = 0;
    count_ = 0;
    batches_++;
    on_batch_.MakeCallback(Value(), {Napi::Number::New(env_, static_cast<double>(len)), Napi::Number::New(env_, count)});
    Rethrow();
  }

  // An exception the JS callback threw is not left pending (the next addon
  // call would throw it, far from its cause): reading stops and it goes to
  // the process as an uncaught exception.
  void Rethrow() {
    if (!env_.IsExceptionPending()) return;
    failed_ = true;
    Napi::Error e = env_.GetAndClearPendingException();
    napi_fatal_exception(env_, e.Value());
  }

  static void OnPoll(uv_poll_t* handle, int status, int events) {
    BpfObject* self = static_cast<BpfObject*>(handle->data);
    if (self->closed_ || !self->rb_) return;
    self->wakeups_++;
    // JS may close the object from a batch callback, which runs inside
    // ring_buffer__consume: the ring is freed only after consume returns
    self->in_consume_ = true;
    self->this_wakeup_ = 0;
    int n = ring_buffer__consume(self->rb_);
    self->in_consume_ = false;
    if (self->closed_) {
      self->FreeRing();
      return;
    }
    // -1: OnSample stopped the loop (paused, a bound reached): not an error
    if (n < 0 && n != -1 && n != -EINTR) {
      Napi::HandleScope scope(self->env_);
      Napi::Error e = BpfError(self->env_, "ring buffer", -n);
      self->on_error_.MakeCallback(self->Value(), {e.Value()});
      self->Rethrow();
      return;
    }
    self->Deliver();
    if (self->closed_ || self->paused_ || self->coalesce_ms_ == 0) return;
    // let records gather for a few ms before the next wake-up (the ring
    // notifies at the first record after the reader caught up: without
    // this, about one wake-up per few records under load)
    uv_poll_stop(self->poll_);
    uv_timer_start(self->timer_, OnTimer, self->coalesce_ms_, 0);
  }

  static void OnTimer(uv_timer_t* handle) {
    BpfObject* self = static_cast<BpfObject*>(handle->data);
    if (self->closed_ || self->paused_ || !self->poll_) return;
    uv_poll_start(self->poll_, UV_READABLE, OnPoll);
  }

  void CloseInternal() {
    if (closed_) return;
    closed_ = true;
    if (poll_) {
      uv_poll_stop(poll_);
      uv_close(reinterpret_cast<uv_handle_t*>(poll_), [](uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); });
      poll_ = nullptr;
    }
    if (timer_) {
      uv_timer_stop(timer_);
      uv_close(reinterpret_cast<uv_handle_t*>(timer_), [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
      timer_ = nullptr;
    }
    for (bpf_link* l : links_) bpf_link__destroy(l);
    links_.clear();
    if (!in_consume_) FreeRing();
    if (!on_batch_.IsEmpty()) on_batch_.Reset();
    if (!on_error_.IsEmpty()) on_error_.Reset();
    if (!buf_ref_.IsEmpty()) buf_ref_.Reset();
    if (!self_ref_.IsEmpty()) self_ref_.Reset();
  }

  void FreeRing() {
    if (rb_) {
      ring_buffer__free(rb_);
      rb_ = nullptr;
    }
    if (obj_) {
      bpf_object__close(obj_);
      obj_ = nullptr;
    }
  }

  static constexpr uint32_t kMaxPerWakeup = 65536;
  Napi::Env env_;
  bool in_consume_ = false;
  bool draining_ = false;
  double detached_us_ = 0;
  bool failed_ = false;
  uint32_t this_wakeup_ = 0;
  bpf_object* obj_ = nullptr;
  std::vector<bpf_link*> links_;
  ring_buffer* rb_ = nullptr;
  uv_poll_t* poll_ = nullptr;
  uv_timer_t* timer_ = nullptr;
  uint32_t coalesce_ms_ = 0;
  bool paused_ = false;
  bool closed_ = false;
  size_t batch_size_ = 256 * 1024;
  uint8_t* buf_ = nullptr;
  size_t off_ = 0;
  uint32_t count_ = 0;
  uint64_t records_ = 0, bytes_ = 0, batches_ = 0, wakeups_ = 0, oversized_ = 0;
  Napi::FunctionReference on_batch_, on_error_;
  Napi::ObjectReference buf_ref_, self_ref_;
};

}  // namespace

void BpfInit(Napi::Env env, Napi::Object exports) {
  exports.Set("BpfObject", BpfObject::Define(env));
  AddClockOffset(env, exports);
}

#else

void BpfInit(Napi::Env env, Napi::Object exports) {
  AddClockOffset(env, exports);
  exports.Set("bpfUnavailable",
              Napi::String::New(env, "conntrail was built without libbpf (apt-get install libbpf-dev clang, then npm rebuild in the conntrail directory)"));
}

#endif
