// A CO-RE BPF object for Node.js, through libbpf: open an object file,
// size its maps, load and attach its programs, write its maps, and read a
// ring buffer in batches (one reusable Buffer, one JS callback per batch).
// Generic: what a program does and what its records mean is in the .bpf.c
// and its TypeScript decoder. Built only when libbpf is found at install.
#pragma once

#include <napi.h>

void BpfInit(Napi::Env env, Napi::Object exports);
