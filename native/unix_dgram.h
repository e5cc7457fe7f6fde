#pragma once
#include <napi.h>
Napi::Value UnixDatagramSend(const Napi::CallbackInfo& info);
Napi::Value UnixDatagramSendMemfd(const Napi::CallbackInfo& info);
