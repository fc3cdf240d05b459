// Compiling ahead, on every core, what the GPU tests' evaluations will ask
// NVRTC for. One evaluation compiles its candidate at the timed shape and at
// the two held-out shapes of its verification rounds, and the format's
// honest seed at the timed shape; NVRTC runs one program per thread, so a
// suite that evaluates hundreds of knob points one after another spent most
// of its time in cold compiles. precompile() fills the test compiler's cache
// in parallel, and the evaluations that follow find their cubins there. It
// changes nothing an evaluation checks: a request that fails to compile is
// not cached, and the evaluation compiles it again and reports it.
#pragma once

#include "harness/cuda/tests/gpu_test_support.h"
#include "harness/evaluate/candidate.h"
#include "harness/kernels/kernel_file.h"
#include "verifier/moe_decode/presets.h"
#include "verifier/moe_decode/problem.h"
#include "verifier/moe_decode/spec.h"

#include <algorithm>
#include <atomic>
#include <set>
#include <thread>
#include <vector>

namespace nightshift::testing {

// The NVRTC requests evaluate() makes for `file` at `knobs` on `request`
// (any seed): the candidate at every shape its verification rounds use,
// where its @constrain holds, and the honest accuracy seed at the timed shape.
inline std::vector<cuda::CompileRequest> evaluation_compiles(const kernels::KernelFile& file,
                                                             const kernels::Symbols& knobs,
                                                             const verifier::ProblemRequest& request,
                                                             const verifier::OpSpec& spec, const std::string& arch) {
    namespace md = verifier::moe_decode;
    auto shape_of = [](const verifier::ProblemRequest& r) {
        return md::make_shape(md::find_preset(r.model), r.batch, r.format);
    };
    std::vector<cuda::CompileRequest> requests;
    const kernels::Symbols resolved = file.resolve_knobs(knobs);
    std::set<std::vector<std::string>> shapes;
    for (const auto& round : spec.verification_cases(request, 1)) {
        const md::Shape shape = shape_of(round.request);
        if (!shapes.insert(md::compile_defines(shape)).second) continue;
        kernels::Symbols symbols = md::shape_symbols(shape);
        symbols.insert(resolved.begin(), resolved.end());
        if (!file.satisfies(symbols)) continue; // rejected before compiling
        requests.push_back(evaluate::compile_request(file, resolved, md::compile_defines(shape), arch,
                                                     spec.params_dir()));
    }
    const std::string seed_path = spec.accuracy_seed_path(request.format);
    if (!seed_path.empty()) {
        const kernels::KernelFile seed = kernels::load_kernel_file(seed_path);
        if (seed.source != file.source) {
            requests.push_back(evaluate::compile_request(seed, seed.resolve_knobs({}),
                                                         md::compile_defines(shape_of(request)), arch,
                                                         spec.params_dir()));
        }
    }
    return requests;
}

// Compiles `requests` (duplicates once) on all cores into test_compiler()'s
// cache. Failures are left for the evaluation to meet and report.
inline void precompile(const std::vector<cuda::CompileRequest>& requests) {
    const cuda::Compiler& compiler = test_compiler();
    std::vector<const cuda::CompileRequest*> unique;
    std::set<std::string> keys;
    for (const auto& r : requests) {
        if (keys.insert(compiler.cache_key(r)).second) unique.push_back(&r);
    }
    std::atomic<std::size_t> next{0};
    auto work = [&] {
        for (std::size_t i = next++; i < unique.size(); i = next++) {
            try {
                compiler.compile(*unique[i]);
            } catch (const std::exception&) {
                // a broken NVRTC shows again, and is reported, in the evaluation
            }
        }
    };
    const std::size_t threads =
        std::min<std::size_t>(std::max(1u, std::thread::hardware_concurrency()), unique.size());
    std::vector<std::thread> pool;
    for (std::size_t t = 1; t < threads; ++t) pool.emplace_back(work);
    work();
    for (auto& t : pool) t.join();
}

} // namespace nightshift::testing
