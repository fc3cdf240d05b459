#include "harness/cuda/handles.h"

#include "harness/cuda/driver_api.h"

namespace nightshift::cuda {

void ModuleDeleter::operator()(CUmod_st* module) const noexcept {
    if (module) driver().cuModuleUnload(module);
}
void StreamDeleter::operator()(CUstream_st* stream) const noexcept {
    if (stream) driver().cuStreamDestroy(stream);
}
void EventDeleter::operator()(CUevent_st* event) const noexcept {
    if (event) driver().cuEventDestroy(event);
}
void ProgramDeleter::operator()(_nvrtcProgram* program) const noexcept {
    if (program) nvrtcDestroyProgram(&program);
}

} // namespace nightshift::cuda
