// A kernel file built for one problem: compiled for its exact shape and knobs,
// loaded, its launches resolved to numbers and checked against the device's
// limits, its scratch allocated. enqueue() issues one call (every @launch, in
// order, on one stream) and allocates nothing.
//
// A file with @packed buffers keeps weights in its own layout there. Whenever
// the candidate is bound to weights (construction, rebind, prepare_input_sets)
// it poisons every packed buffer (0xFF bytes: NaN in bf16 and f32), runs the
// @prepack launches on Problem::weight_params (no inputs, no output) and waits
// for them: never inside a timed call. A @packed buffer that is empty at the
// candidate's knobs counts as plain scratch, and where every one is empty the
// prepacks are not run.
#pragma once

#include "harness/cuda/buffer.h"
#include "harness/cuda/compiler.h"
#include "harness/cuda/module.h"
#include "harness/evaluate/status.h"
#include "harness/kernels/kernel_file.h"
#include "verifier/op_spec.h"

#include <memory>
#include <string>
#include <vector>

namespace nightshift::evaluate {

// Building failed in a way that is the candidate's fault: a typed outcome.
class CandidateError : public Error {
public:
    CandidateError(Status status, const std::string& message, std::string log = {})
        : Error(message), m_status(status), m_log(std::move(log)) {}
    Status status() const { return m_status; }
    const std::string& log() const { return m_log; }

private:
    Status m_status;
    std::string m_log;
};

struct ResolvedLaunch {
    std::string entry;
    cuda::Dim3 grid, block;
    unsigned shared_bytes = 0;
    bool programmatic = false; // pdl=: may overlap the previous launch
    int line = 0;
};

// The NVRTC request for a kernel file at one shape and knob assignment: the
// shape defines, one -D per knob, and include folders for the file's own
// folder and the op's params.h. Used with and without a GPU.
cuda::CompileRequest compile_request(const kernels::KernelFile& file, const kernels::Symbols& knobs,
                                     const std::vector<std::string>& shape_defines, const std::string& arch,
                                     const std::string& params_dir);

// Why a compile is rejected for module-scope __device__ variables (state that
// outlives a launch, so a kernel could carry results from one call to the
// next); empty when it has none. bench and run reject before launching; the
// compile command says the same without a GPU.
std::string module_scope_state(const cuda::CompileResult& compiled);

class Candidate {
public:
    // Throws CandidateError (compile_error, rejected, launch_error) or
    // InputError for knob overrides the file does not declare. With
    // `precompiled` (a cubin the orchestrator built for this exact request),
    // nothing is compiled here.
    Candidate(const kernels::KernelFile& file, const kernels::Symbols& knob_overrides, verifier::Problem& problem,
              const verifier::OpSpec& spec, const cuda::Device& device, const cuda::Compiler& compiler,
              const cuda::CompileResult* precompiled = nullptr);

    // One call on input set `input_set` of the bound problem (see
    // Problem::input_sets); sets other than 0 need prepare_input_sets first.
    void enqueue(CUstream stream, int input_set = 0) const;

    // Builds the params of every input set of `problem` (the bound one), for
    // timing that rotates over them, and prepacks once: the sets share the
    // problem's weights (checked). May allocate: call it before timing.
    void prepare_input_sets(verifier::Problem& problem);

    // Points the launches at another problem of the same shape (same compile
    // defines) and prepacks its weights: verification rounds reuse one build
    // on fresh inputs. InputError when the shape differs.
    void rebind(verifier::Problem& problem);

    const kernels::Symbols& knobs() const { return m_knobs; }
    const cuda::CompileResult& compiled() const { return m_compiled; }
    const std::vector<ResolvedLaunch>& launches() const { return m_launches; }
    const std::vector<ResolvedLaunch>& prepacks() const { return m_prepacks; }

private:
    // Poisons the packed buffers and runs the prepacks on `problem`'s
    // weights, then synchronizes. A launch the driver refuses is a
    // CandidateError (launch_error); a fault inside a prepack escapes as the
    // DriverError that synchronizing reports, like one in a timed call.
    void prepack(const verifier::Problem& problem);
    std::vector<verifier::DevicePtr> scratch_pointers() const;
    std::vector<verifier::DevicePtr> packed_pointers() const; // 0 for plain @scratch slots

    std::string m_path; // of the kernel file, for messages
    kernels::Symbols m_knobs;
    cuda::CompileResult m_compiled;
    std::unique_ptr<cuda::Module> m_module;
    std::vector<cuda::Function> m_functions;
    std::vector<ResolvedLaunch> m_launches;
    std::vector<cuda::Function> m_prepack_functions;
    std::vector<ResolvedLaunch> m_prepacks;
    std::vector<cuda::DeviceBuffer> m_scratch;
    std::vector<bool> m_packed; // by scratch slot
    std::vector<std::vector<unsigned char>> m_params; // by input set; [0] always
    std::vector<std::string> m_defines; // the shape it was compiled for
};

} // namespace nightshift::evaluate
