#include "harness/cuda/module.h"

#include "harness/cuda/driver_api.h"

namespace nightshift::cuda {

Module::Module(const std::vector<char>& cubin) {
    CUmodule module = nullptr;
    NS_CU(cuModuleLoadData, &module, cubin.data());
    m_module.reset(module);
}

Function Module::function(const std::string& name) const {
    CUfunction handle = nullptr;
    NS_CU(cuModuleGetFunction, &handle, m_module.get(), name.c_str());
    return Function(handle, name);
}

FunctionAttributes Function::attributes() const {
    FunctionAttributes a;
    NS_CU(cuFuncGetAttribute, &a.registers, CU_FUNC_ATTRIBUTE_NUM_REGS, m_handle);
    NS_CU(cuFuncGetAttribute, &a.local_bytes, CU_FUNC_ATTRIBUTE_LOCAL_SIZE_BYTES, m_handle);
    NS_CU(cuFuncGetAttribute, &a.static_shared_bytes, CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES, m_handle);
    NS_CU(cuFuncGetAttribute, &a.max_threads_per_block, CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK, m_handle);
    return a;
}

void Function::allow_dynamic_shared(int bytes) const {
    NS_CU(cuFuncSetAttribute, m_handle, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, bytes);
}

void launch(const Function& function, Dim3 grid, Dim3 block, unsigned shared_bytes, CUstream stream,
            void** arguments, bool programmatic) {
    if (!programmatic) {
        NS_CU(cuLaunchKernel, function.get(), grid.x, grid.y, grid.z, block.x, block.y, block.z, shared_bytes,
              stream, arguments, nullptr);
        return;
    }
    CUlaunchAttribute attribute{};
    attribute.id = CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION;
    attribute.value.programmaticStreamSerializationAllowed = 1;
    CUlaunchConfig config{};
    config.gridDimX = grid.x;
    config.gridDimY = grid.y;
    config.gridDimZ = grid.z;
    config.blockDimX = block.x;
    config.blockDimY = block.y;
    config.blockDimZ = block.z;
    config.sharedMemBytes = shared_bytes;
    config.hStream = stream;
    config.attrs = &attribute;
    config.numAttrs = 1;
    NS_CU(cuLaunchKernelEx, &config, function.get(), arguments, nullptr);
}

} // namespace nightshift::cuda
