#include "harness/evaluate/candidate.h"

#include "harness/cuda/driver_api.h"
#include "harness/cuda/stream.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <filesystem>

namespace nightshift::evaluate {
namespace {

constexpr long long k_max_grid_x = 2147483647LL;
constexpr long long k_max_grid_yz = 65535;
constexpr unsigned k_default_shared_limit = 48 * 1024; // above this a kernel must opt in

cuda::Dim3 resolve_dims(const std::array<kernels::Expression, 3>& dims, const kernels::Symbols& symbols,
                        const kernels::Launch& launch, const char* what, const std::string& path) {
    long long v[3];
    for (int i = 0; i < 3; ++i) {
        v[i] = dims[static_cast<std::size_t>(i)].evaluate(symbols);
        if (v[i] < 1) {
            throw CandidateError(Status::rejected,
                                 fmt::format("{}:{}: {} of '{}' has dimension {} = {} (< 1)", path, launch.line,
                                             what, launch.entry, i, v[i]));
        }
    }
    return {static_cast<unsigned>(std::min(v[0], k_max_grid_x + 1)), static_cast<unsigned>(std::min(v[1], 1LL << 31)),
            static_cast<unsigned>(std::min(v[2], 1LL << 31))};
}

} // namespace

std::string module_scope_state(const cuda::CompileResult& compiled) {
    if (compiled.global_bytes <= 0) return {};
    return fmt::format("{} bytes of module-scope __device__ variables (state that outlives a launch; a "
                       "namespace-scope constexpr used in device code is one); use @scratch or a macro",
                       compiled.global_bytes);
}

cuda::CompileRequest compile_request(const kernels::KernelFile& file, const kernels::Symbols& knobs,
                                     const std::vector<std::string>& shape_defines, const std::string& arch,
                                     const std::string& params_dir) {
    std::vector<std::string> options = shape_defines;
    for (const auto& [name, value] : knobs) options.push_back(fmt::format("-D{}={}", name, value));
    std::filesystem::path file_dir = std::filesystem::path(file.path).parent_path();
    if (file_dir.empty()) file_dir = ".";
    return cuda::CompileRequest{.name = file.path,
                                .source = file.source,
                                .arch = arch,
                                .options = std::move(options),
                                .include_dirs = {file_dir, params_dir}};
}

Candidate::Candidate(const kernels::KernelFile& file, const kernels::Symbols& knob_overrides,
                     verifier::Problem& problem, const verifier::OpSpec& spec, const cuda::Device& device,
                     const cuda::Compiler& compiler, const cuda::CompileResult* precompiled) {
    if (file.op != spec.name()) {
        throw InputError(fmt::format("{}: @op is '{}', but the problem is '{}'", file.path, file.op, spec.name()));
    }
    file.check_symbols(spec.shape_symbols());
    if (!file.supports_format(problem.request().format)) {
        throw CandidateError(Status::rejected, fmt::format("{}: @formats {} does not include {} ({})", file.path,
                                                           fmt::join(file.formats, " "), problem.request().format,
                                                           problem.label()));
    }
    m_knobs = file.resolve_knobs(knob_overrides);

    kernels::Symbols symbols = problem.shape_symbols();
    for (const auto& [name, value] : m_knobs) symbols[name] = value;
    for (const auto& constraint : file.constraints) {
        if (constraint.condition.evaluate(symbols) == 0) {
            throw CandidateError(Status::rejected, fmt::format("{}:{}: @constrain {} does not hold for {}", file.path,
                                                               constraint.line, constraint.condition.text(),
                                                               problem.label()));
        }
    }

    m_compiled = precompiled ? *precompiled
                             : compiler.compile(compile_request(file, m_knobs, problem.compile_defines(),
                                                                device.info().arch(), spec.params_dir()));
    if (!m_compiled.ok) {
        throw CandidateError(Status::compile_error, fmt::format("{} does not compile", file.path), m_compiled.log);
    }

    try {
        m_module = std::make_unique<cuda::Module>(m_compiled.cubin);
    } catch (const cuda::DriverError& e) {
        throw CandidateError(Status::launch_error, fmt::format("{}: cubin does not load: {}", file.path, e.what()));
    }

    // @launch and @prepack entries pass the same checks.
    const auto& info = device.info();
    auto resolve = [&](const kernels::Launch& launch, const char* kind, std::vector<cuda::Function>& functions,
                       std::vector<ResolvedLaunch>& resolved_launches) {
        ResolvedLaunch resolved{.entry = launch.entry,
                                .grid = resolve_dims(launch.grid, symbols, launch, "grid", file.path),
                                .block = resolve_dims(launch.block, symbols, launch, "block", file.path),
                                .shared_bytes = 0,
                                .programmatic = launch.programmatic.evaluate(symbols) != 0,
                                .line = launch.line};
        long long smem = launch.smem_bytes.evaluate(symbols);
        auto fail = [&](const std::string& why) {
            throw CandidateError(Status::rejected, fmt::format("{}:{}: {} of '{}' {}", file.path, launch.line, kind,
                                                               launch.entry, why));
        };
        if (smem < 0) fail(fmt::format("asks for {} bytes of shared memory", smem));
        resolved.shared_bytes = static_cast<unsigned>(smem);
        const cuda::Dim3& g = resolved.grid;
        if (g.x > k_max_grid_x || g.y > k_max_grid_yz || g.z > k_max_grid_yz) {
            fail(fmt::format("grid ({},{},{}) exceeds the device's grid limits", g.x, g.y, g.z));
        }

        std::unique_ptr<cuda::Function> function;
        try {
            function = std::make_unique<cuda::Function>(m_module->function(launch.entry));
        } catch (const cuda::DriverError&) {
            fail("names an entry the module does not define (is it extern \"C\" __global__?)");
        }
        cuda::FunctionAttributes attributes = function->attributes();
        long long threads = static_cast<long long>(resolved.block.x) * resolved.block.y * resolved.block.z;
        if (threads > attributes.max_threads_per_block) {
            fail(fmt::format("uses {} threads per block; this entry allows {} ({} registers per thread)", threads,
                             attributes.max_threads_per_block, attributes.registers));
        }
        long long total_shared = smem + attributes.static_shared_bytes;
        if (total_shared > info.max_shared_per_block_optin) {
            fail(fmt::format("needs {} bytes of shared memory; the device allows {} per block", total_shared,
                             info.max_shared_per_block_optin));
        }
        // The opt-in covers static plus dynamic: 40 KB of each needs it too.
        if (total_shared > k_default_shared_limit) function->allow_dynamic_shared(static_cast<int>(smem));
        functions.push_back(*function);
        resolved_launches.push_back(resolved);
    };
    for (const auto& launch : file.launches) resolve(launch, "launch", m_functions, m_launches);
    for (const auto& launch : file.prepacks) resolve(launch, "prepack", m_prepack_functions, m_prepacks);

    for (const auto& scratch : file.scratch) {
        long long count = scratch.count.evaluate(symbols);
        if (count < 0) {
            throw CandidateError(Status::rejected, fmt::format("{}:{}: @{} {} has {} elements", file.path,
                                                               scratch.line, scratch.packed ? "packed" : "scratch",
                                                               scratch.name, count));
        }
        m_scratch.emplace_back(static_cast<std::size_t>(count) * kernels::scratch_type_bytes(scratch.type));
        m_packed.push_back(scratch.packed_at(count));
    }
    if (std::none_of(m_packed.begin(), m_packed.end(), [](bool packed) { return packed; })) {
        m_prepacks.clear();
        m_prepack_functions.clear();
    }
    m_path = file.path;
    m_params = {problem.params(scratch_pointers())};
    m_defines = problem.compile_defines();
    prepack(problem);
}

std::vector<verifier::DevicePtr> Candidate::scratch_pointers() const {
    std::vector<verifier::DevicePtr> pointers;
    for (const auto& buffer : m_scratch) pointers.push_back(buffer.ptr());
    return pointers;
}

std::vector<verifier::DevicePtr> Candidate::packed_pointers() const {
    std::vector<verifier::DevicePtr> pointers;
    for (std::size_t i = 0; i < m_scratch.size(); ++i) pointers.push_back(m_packed[i] ? m_scratch[i].ptr() : 0);
    return pointers;
}

void Candidate::prepack(const verifier::Problem& problem) {
    if (m_prepacks.empty()) return;
    cuda::Stream stream;
    // Poisoned first: a layout the prepack leaves partly unwritten reads as
    // NaN, not as zeros or as the previous binding's weights.
    for (std::size_t i = 0; i < m_scratch.size(); ++i) {
        if (m_packed[i]) m_scratch[i].fill_bytes(0xFF, stream.get());
    }
    std::vector<unsigned char> params = problem.weight_params(packed_pointers());
    void* arguments[] = {params.data()};
    for (std::size_t i = 0; i < m_prepacks.size(); ++i) {
        const ResolvedLaunch& l = m_prepacks[i];
        try {
            cuda::launch(m_prepack_functions[i], l.grid, l.block, l.shared_bytes, stream.get(), arguments);
        } catch (const cuda::DriverError& e) {
            if (!e.launch_refused()) throw; // the context's trouble: escapes
            throw CandidateError(Status::launch_error, fmt::format("{}:{}: prepack '{}' was refused by the driver: {}",
                                                                   m_path, l.line, l.entry, e.what()));
        }
    }
    stream.synchronize();
}

void Candidate::prepare_input_sets(verifier::Problem& problem) {
    if (problem.compile_defines() != m_defines) {
        throw InputError("prepare_input_sets: " + problem.label() + " has another shape than the candidate was compiled for");
    }
    // One prepack serves every set: they share the problem's weights. Their
    // weight-only params must then be byte for byte the same.
    auto scratch = scratch_pointers();
    const auto packed = packed_pointers();
    m_params.clear();
    std::vector<unsigned char> weights;
    for (int set = 0; set < problem.input_sets(); ++set) {
        problem.select_input_set(set);
        m_params.push_back(problem.params(scratch));
        if (m_prepacks.empty()) continue;
        if (set == 0) {
            weights = problem.weight_params(packed);
        } else if (problem.weight_params(packed) != weights) {
            problem.select_input_set(0);
            throw Error(fmt::format("prepare_input_sets: input set {} of {} has other weights than set 0; one "
                                    "prepack cannot serve both",
                                    set, problem.label()));
        }
    }
    problem.select_input_set(0);
    prepack(problem);
}

void Candidate::rebind(verifier::Problem& problem) {
    if (problem.compile_defines() != m_defines) {
        throw InputError("rebind: " + problem.label() + " has another shape than the candidate was compiled for");
    }
    m_params = {problem.params(scratch_pointers())};
    prepack(problem);
}

void Candidate::enqueue(CUstream stream, int input_set) const {
    if (input_set < 0 || static_cast<std::size_t>(input_set) >= m_params.size()) {
        throw Error(fmt::format("enqueue: input set {} is not prepared ({} are)", input_set, m_params.size()));
    }
    // Every entry takes the params struct by value: one kernel argument.
    void* arguments[] = {const_cast<unsigned char*>(m_params[static_cast<std::size_t>(input_set)].data())};
    for (std::size_t i = 0; i < m_launches.size(); ++i) {
        const ResolvedLaunch& l = m_launches[i];
        cuda::launch(m_functions[i], l.grid, l.block, l.shared_bytes, stream, arguments, l.programmatic);
    }
}

} // namespace nightshift::evaluate
