#pragma once
#include <napi.h>
Napi::Value TcpUnacked(const Napi::CallbackInfo& info);
