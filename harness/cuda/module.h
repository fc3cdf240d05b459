// A loaded cubin and the launch of its entries.
#pragma once

#include "harness/cuda/handles.h"

#include <array>
#include <string>
#include <vector>

namespace nightshift::cuda {

struct Dim3 {
    unsigned x = 1, y = 1, z = 1;
};

// What the driver says about a loaded entry.
struct FunctionAttributes {
    int registers = 0;
    int local_bytes = 0;       // per thread
    int static_shared_bytes = 0;
    int max_threads_per_block = 0;
};

class Function {
public:
    Function(CUfunction handle, std::string name) : m_handle(handle), m_name(std::move(name)) {}
    CUfunction get() const { return m_handle; }
    const std::string& name() const { return m_name; }
    FunctionAttributes attributes() const;
    // Allows up to `bytes` of dynamic shared memory (needed above 48 KB).
    void allow_dynamic_shared(int bytes) const;

private:
    CUfunction m_handle;
    std::string m_name;
};

class Module {
public:
    // Loads a cubin. A cubin for another architecture is a DriverError.
    explicit Module(const std::vector<char>& cubin);
    Function function(const std::string& name) const;

private:
    ModuleHandle m_module;
};

// Launches with a raw kernel-parameter array (one pointer per argument).
// `programmatic`: a programmatic dependent launch, which may start before the
// stream's previous kernel ends (the kernel waits with griddepcontrol.wait).
void launch(const Function& function, Dim3 grid, Dim3 block, unsigned shared_bytes, CUstream stream,
            void** arguments, bool programmatic = false);

} // namespace nightshift::cuda
