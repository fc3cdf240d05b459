// Every CUDA and NVRTC handle the harness holds is owned by one of these smart
// pointers, each with a named deleter. Deleters never throw: a failure while
// releasing (for instance after a sticky launch error) is ignored, because
// the error that matters was already reported by the call that caused it.
#pragma once

#include <cuda.h>
#include <nvrtc.h>

#include <memory>
#include <type_traits>

namespace nightshift::cuda {

struct ModuleDeleter {
    void operator()(CUmod_st* module) const noexcept;
};
struct StreamDeleter {
    void operator()(CUstream_st* stream) const noexcept;
};
struct EventDeleter {
    void operator()(CUevent_st* event) const noexcept;
};
struct ProgramDeleter {
    void operator()(_nvrtcProgram* program) const noexcept;
};

using ModuleHandle = std::unique_ptr<CUmod_st, ModuleDeleter>;
using StreamHandle = std::unique_ptr<CUstream_st, StreamDeleter>;
using EventHandle = std::unique_ptr<CUevent_st, EventDeleter>;
using ProgramHandle = std::unique_ptr<_nvrtcProgram, ProgramDeleter>;

static_assert(std::is_same_v<CUmodule, CUmod_st*>);
static_assert(std::is_same_v<CUstream, CUstream_st*>);
static_assert(std::is_same_v<CUevent, CUevent_st*>);
static_assert(std::is_same_v<nvrtcProgram, _nvrtcProgram*>);

} // namespace nightshift::cuda
