#include "harness/exports/best_kernels.h"

#include "harness/core/error.h"
#include "harness/core/paths.h"
#include "harness/kernels/kernel_file.h"
#include "harness/query/table.h"
#include "verifier/moe_decode/presets.h"
#include "verifier/moe_decode/problem.h"
#include "verifier/moe_decode/spec.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <array>
#include <cctype>
#include <fstream>
#include <map>
#include <regex>
#include <set>

namespace nightshift::exports {
namespace {

namespace md = verifier::moe_decode;

constexpr std::array<std::string_view, 4> k_formats = {"bf16", "int8_row", "int4_g128", "fp8_e4m3"}; // NsWeightFormat order
constexpr std::size_t k_workspace_alignment = 256;

int format_number(const std::string& format) {
    for (std::size_t i = 0; i < k_formats.size(); ++i)
        if (k_formats[i] == format) return static_cast<int>(i);
    throw InputError(fmt::format("export --best: unknown weight format '{}'", format));
}

std::string identifier(const std::string& text) {
    std::string out;
    for (char c : text) out += std::isalnum(static_cast<unsigned char>(c)) ? static_cast<char>(std::tolower(c)) : '_';
    return out;
}

std::string knobs_text(const kernels::Symbols& knobs) {
    std::string text;
    for (const auto& [name, value] : knobs) text += fmt::format("{}{}={}", text.empty() ? "" : " ", name, value);
    return text.empty() ? "defaults" : text;
}

// The kernel source without its #include "params.h" (the export carries
// params.h once, at the top); InputError for any other include, which a
// standalone file could not resolve.
std::string body_of(const Variant& v) {
    static const std::regex include_line(R"(^\s*#\s*include\s*[<"]([^>"]+)[>"].*$)");
    std::string body, line;
    std::istringstream in(v.kernel_source);
    while (std::getline(in, line)) {
        std::smatch m;
        if (std::regex_match(line, m, include_line)) {
            if (m[1] == "params.h") {
                body += "// (params.h is at the top of this file)\n";
                continue;
            }
            throw InputError(fmt::format("export --best: {} includes {}; only params.h can be carried into a "
                                         "standalone file",
                                         v.kernel_path, m[1].str()));
        }
        body += line + "\n";
    }
    return body;
}

std::set<std::string> macros_defined(const std::string& source) {
    static const std::regex define_line(R"(^\s*#\s*define\s+([A-Za-z_][A-Za-z0-9_]*))");
    std::set<std::string> names;
    std::string line;
    std::istringstream in(source);
    while (std::getline(in, line)) {
        std::smatch m;
        if (std::regex_search(line, m, define_line)) names.insert(m[1]);
    }
    return names;
}

struct Built {
    kernels::KernelFile file;
    md::Shape shape;
    kernels::Symbols symbols; // shape and knobs
    std::vector<std::pair<std::string, std::size_t>> scratch; // name, bytes
    unsigned packed_mask = 0; // bit i: params.scratch[i] is a @packed buffer
    std::size_t workspace_bytes = 0;
    // A packed slot implies prepacks (the parser requires @prepack beside
    // @packed); with every packed buffer empty there is nothing to prepack.
    bool needs_prepack() const { return packed_mask != 0; }
};

Built build(const Variant& v, const std::string& model) {
    Built b{kernels::parse_kernel_file(v.kernel_path, v.kernel_source),
            md::make_shape(md::find_preset(model), v.batch, v.format), {}, {}, 0, 0};
    b.symbols = md::shape_symbols(b.shape);
    kernels::Symbols knobs = b.file.resolve_knobs(v.knobs);
    b.symbols.insert(knobs.begin(), knobs.end());
    for (const auto& s : b.file.scratch) {
        const long long elements = s.count.evaluate(b.symbols);
        std::size_t bytes = static_cast<std::size_t>(elements) * kernels::scratch_type_bytes(s.type);
        if (s.packed_at(elements)) b.packed_mask |= 1u << b.scratch.size();
        b.scratch.emplace_back(s.name, bytes);
        b.workspace_bytes += (bytes + k_workspace_alignment - 1) / k_workspace_alignment * k_workspace_alignment;
    }
    return b;
}

std::string params_header() { return read_text_file(std::filesystem::path(md::params_dir()) / "params.h"); }

std::string generate_cuda(const BestExport& best, const std::vector<Built>& built, const std::string& model) {
    const std::string& base = best.base_name;
    std::string cu = fmt::format(
        "// {0}.cu: moe_decode for {1}, the fastest verified kernel per weight format and batch,\n"
        "// exported by `nightshift export --best --op moe_decode --model {1}`.\n"
        "//\n"
        "// Each specialization below is one kernel file from the night's results, compiled for exactly\n"
        "// one batch (its NS_T) with its winning knobs; {0}.h holds the dispatch table and the entry\n"
        "// point. A batch smaller than a specialization's is padded up to it with zero-weight tokens.\n"
        "// The device part compiles with NVRTC or nvcc; the host part (launchers) needs nvcc.\n"
        "//\n",
        base, model);
    for (std::size_t i = 0; i < best.variants.size(); ++i) {
        const Variant& v = best.variants[i];
        cu += fmt::format("//   v{}: {} B={} {} [{}]  {:.2f} us, {:.3f} of the copy floor (experiment {})\n", i, v.format,
                          v.batch, std::filesystem::path(v.kernel_path).filename().string(), knobs_text(v.knobs),
                          v.median_us, v.fraction_of_floor, v.experiment_id);
    }
    cu += "\n" + params_header() + "\n";
    for (std::size_t i = 0; i < best.variants.size(); ++i) {
        const Variant& v = best.variants[i];
        const Built& b = built[i];
        std::string ns = fmt::format("{}_v{}", base, i);
        cu += fmt::format("// ---- v{}: {} B={} from {} --------------------------------------------\n", i, v.format,
                          v.batch, v.kernel_path);
        std::vector<std::string> defined;
        for (const auto& option : md::compile_defines(b.shape)) { // "-DNS_T=1"
            auto eq = option.find('=');
            std::string name = option.substr(2, eq - 2);
            cu += fmt::format("#define {} {}\n", name, option.substr(eq + 1));
            defined.push_back(name);
        }
        for (const auto& [name, value] : b.file.resolve_knobs(v.knobs)) {
            cu += fmt::format("#define {} {}\n", name, value);
            defined.push_back(name);
        }
        for (const auto* list : {&b.file.launches, &b.file.prepacks})
            for (const auto& launch : *list) {
                cu += fmt::format("#define {} {}_{}\n", launch.entry, ns, launch.entry);
                defined.push_back(launch.entry);
            }
        cu += fmt::format("namespace {} {{\n", ns);
        std::string body = body_of(v);
        cu += body;
        cu += fmt::format("}} // namespace {}\n", ns);
        std::set<std::string> undefine(defined.begin(), defined.end());
        for (const auto& name : macros_defined(body)) undefine.insert(name);
        for (const auto& name : undefine) cu += fmt::format("#undef {}\n", name);
        cu += "\n";
    }

    cu += fmt::format("#ifndef __CUDACC_RTC__\n#include \"{}.h\"\n\n", base);
    for (std::size_t i = 0; i < best.variants.size(); ++i) {
        const Built& b = built[i];
        std::string ns = fmt::format("{}_v{}", base, i);
        auto dim = [&](const std::array<kernels::Expression, 3>& d) {
            return fmt::format("dim3({}, {}, {})", d[0].evaluate(b.symbols), d[1].evaluate(b.symbols),
                               d[2].evaluate(b.symbols));
        };
        // One launcher per list of launches, each launch checked.
        auto launcher = [&](const std::string& name, const std::vector<kernels::Launch>& launches) {
            cu += fmt::format("static cudaError_t {}(const MoeDecodeParams& p, cudaStream_t stream) {{\n", name);
            cu += "    cudaError_t status = cudaSuccess;\n";
            for (const auto& launch : launches) {
                long long smem = launch.smem_bytes.evaluate(b.symbols);
                std::string kernel = fmt::format("{0}::{0}_{1}", ns, launch.entry);
                // Any dynamic size opts in: past 48 KB of static plus dynamic a
                // launch needs it, and the static size is only known to nvcc.
                if (smem > 0)
                    cu += fmt::format("    cudaFuncSetAttribute({}, cudaFuncAttributeMaxDynamicSharedMemorySize, {});\n",
                                      kernel, smem);
                if (launch.programmatic.evaluate(b.symbols) == 0) {
                    cu += fmt::format("    {}<<<{}, {}, {}, stream>>>(p);\n", kernel, dim(launch.grid),
                                      dim(launch.block), smem);
                    cu += "    if ((status = cudaGetLastError()) != cudaSuccess) return status;\n";
                    continue;
                }
                // pdl=: a programmatic dependent launch, as the harness timed it.
                cu += fmt::format("    {{\n"
                                  "        cudaLaunchAttribute attribute{{}};\n"
                                  "        attribute.id = cudaLaunchAttributeProgrammaticStreamSerialization;\n"
                                  "        attribute.val.programmaticStreamSerializationAllowed = 1;\n"
                                  "        cudaLaunchConfig_t config{{{}, {}, {}, stream, &attribute, 1}};\n"
                                  "        if ((status = cudaLaunchKernelEx(&config, {}, p)) != cudaSuccess) return status;\n"
                                  "    }}\n",
                                  dim(launch.grid), dim(launch.block), smem, kernel);
            }
            cu += "    return status;\n}\n\n";
        };
        launcher(ns + "_launch", b.file.launches);
        if (b.needs_prepack()) launcher(ns + "_prepack", b.file.prepacks);
    }
    // _run and _prepack check the params and lay the scratch slots out in the
    // workspace the same way; _prepack binds only the packed slots.
    cu += fmt::format("// Checks `p` against variant `variant` and points its scratch slots into `workspace`\n"
                      "// (with `packed_only`, the plain slots are null); false on a mismatch.\n"
                      "static bool {0}_bind(int variant, MoeDecodeParams& p, void* workspace, bool packed_only) {{\n"
                      "    if (variant < 0 || variant >= {0}_variant_count) return false;\n"
                      "    const {0}_variant& v = {0}_variants[variant];\n"
                      "    if (p.T != v.batch || p.H != {0}_H || p.I != {0}_I || p.E != {0}_E || p.K != {0}_K ||\n"
                      "        p.format != v.format || p.activation != {0}_activation)\n"
                      "        return false;\n"
                      "    char* next = static_cast<char*>(workspace);\n"
                      "    for (int i = 0; i < v.scratch_count; ++i) {{\n"
                      "        p.scratch[i] = !packed_only || ((v.packed_mask >> i) & 1u) ? next : nullptr;\n"
                      "        next += (v.scratch_bytes[i] + {1} - 1) / {1} * {1};\n"
                      "    }}\n"
                      "    return true;\n"
                      "}}\n\n",
                      base, k_workspace_alignment);
    cu += fmt::format("cudaError_t {0}_run(int variant, MoeDecodeParams p, void* workspace, cudaStream_t stream) {{\n"
                      "    if (!{0}_bind(variant, p, workspace, false)) return cudaErrorInvalidValue;\n"
                      "    switch (variant) {{\n",
                      base);
    for (std::size_t i = 0; i < best.variants.size(); ++i)
        cu += fmt::format("    case {0}: return {1}_v{0}_launch(p, stream);\n", i, base);
    cu += "    }\n    return cudaErrorInvalidValue;\n}\n\n";
    // Prepack: the packed slots of the workspace from the weights alone, as
    // the harness runs it (inputs, output and plain scratch null).
    cu += fmt::format("cudaError_t {0}_prepack(int variant, MoeDecodeParams p, void* workspace, cudaStream_t stream) {{\n"
                      "    if (!{0}_bind(variant, p, workspace, true)) return cudaErrorInvalidValue;\n"
                      "    p.x = nullptr;\n"
                      "    p.topk_ids = nullptr;\n"
                      "    p.topk_weights = nullptr;\n"
                      "    p.y = nullptr;\n"
                      "    switch (variant) {{\n",
                      base);
    for (std::size_t i = 0; i < best.variants.size(); ++i)
        if (built[i].needs_prepack())
            cu += fmt::format("    case {0}: return {1}_v{0}_prepack(p, stream);\n", i, base);
    cu += "    }\n    return cudaSuccess; // nothing packed\n}\n#endif // __CUDACC_RTC__\n";
    return cu;
}

std::string generate_header(const BestExport& best, const std::vector<Built>& built, const std::string& model) {
    const std::string& base = best.base_name;
    const md::Shape& shape = built.front().shape;
    std::string h = fmt::format(
        "// {0}.h: the dispatch table and entry point of {0}.cu (moe_decode for {1}),\n"
        "// exported by `nightshift export --best`. Host code; include it from C++ or CUDA.\n"
        "//\n"
        "// Use: v = {0}_select(format, tokens); pad the batch to {0}_variants[v].batch rows\n"
        "// (zero topk_weights, any valid expert ids: those of row 0 add no weight traffic);\n"
        "// allocate {0}_variants[v].workspace_bytes of device memory; fill MoeDecodeParams\n"
        "// (T = the padded batch); where {0}_variants[v].packed_mask is not 0, the kernel keeps\n"
        "// the weights in its own layout inside the workspace: {0}_prepack(v, params, workspace,\n"
        "// stream) once per set of weights (one workspace per set); then, every call,\n"
        "// {0}_run(v, params, workspace, stream).\n"
        "#pragma once\n\n#include <cuda_runtime.h>\n#include <stddef.h>\n\n",
        base, model);
    h += params_header() + "\n";
    h += fmt::format("// The model's shape; the kernels are specialized for it.\n"
                     "static const int {0}_H = {1};\nstatic const int {0}_I = {2};\nstatic const int {0}_E = {3};\n"
                     "static const int {0}_K = {4};\nstatic const int {0}_activation = {5}; // NsActivation\n\n",
                     base, shape.H, shape.I, shape.E, shape.K, shape.activation);
    std::size_t max_scratch = 1;
    for (const auto& b : built) max_scratch = std::max(max_scratch, b.scratch.size());
    h += fmt::format("struct {0}_variant {{\n"
                     "    int format;              // NsWeightFormat\n"
                     "    int batch;               // the exact T it was compiled for (pad up to it)\n"
                     "    const char* kernel;      // kernel file and knobs\n"
                     "    double median_us;        // as measured by nightshift\n"
                     "    long long experiment_id; // in the results.db it came from\n"
                     "    size_t workspace_bytes;  // scratch, {1}-byte aligned pieces\n"
                     "    int scratch_count;\n"
                     "    size_t scratch_bytes[{2}];\n"
                     "    unsigned packed_mask;    // bit i: scratch slot i holds packed weights (see _prepack)\n"
                     "}};\n\n",
                     base, k_workspace_alignment, max_scratch);
    h += fmt::format("// By format, then batch ascending.\nstatic const {0}_variant {0}_variants[] = {{\n", base);
    for (std::size_t i = 0; i < best.variants.size(); ++i) {
        const Variant& v = best.variants[i];
        const Built& b = built[i];
        std::string sizes;
        for (const auto& [name, bytes] : b.scratch) sizes += fmt::format("{}{}u", sizes.empty() ? "" : ", ", bytes);
        if (sizes.empty()) sizes = "0u";
        h += fmt::format("    {{{}, {}, \"{} [{}]\", {:.3f}, {}, {}u, {}, {{{}}}, {}u}}, // v{} {}\n",
                         format_number(v.format), v.batch, std::filesystem::path(v.kernel_path).filename().string(),
                         knobs_text(v.knobs), v.median_us, v.experiment_id, b.workspace_bytes, b.scratch.size(), sizes,
                         b.packed_mask, i, v.format);
    }
    h += "};\n";
    h += fmt::format("static const int {0}_variant_count = {1};\n\n", base, best.variants.size());
    h += fmt::format("// The variant for `format` (NsWeightFormat) and `tokens`: the smallest batch >= tokens;\n"
                     "// -1 when none was measured that large, or not in this format.\n"
                     "static inline int {0}_select(int format, int tokens) {{\n"
                     "    for (int i = 0; i < {0}_variant_count; ++i)\n"
                     "        if ({0}_variants[i].format == format && {0}_variants[i].batch >= tokens) return i;\n"
                     "    return -1;\n"
                     "}}\n\n"
                     "// Runs variant `variant` on `params` (T must equal its batch; the shape and format must\n"
                     "// match) with `workspace` of its workspace_bytes; params.scratch is filled from it.\n"
                     "// cudaErrorInvalidValue for a mismatch, else the launches' error.\n"
                     "cudaError_t {0}_run(int variant, MoeDecodeParams params, void* workspace, cudaStream_t stream);\n\n"
                     "// Fills the packed slots of `workspace` from params' weights (x, routing and y are not\n"
                     "// read); needed once per set of weights where the variant's packed_mask is not 0, a\n"
                     "// no-op otherwise. Same checks and errors as _run.\n"
                     "cudaError_t {0}_prepack(int variant, MoeDecodeParams params, void* workspace, cudaStream_t stream);\n",
                     base);
    return h;
}

std::string generate_torch_example(const BestExport& best) {
    const std::string& base = best.base_name;
    return fmt::format(R"cpp(// {0}_torch.cpp: calling {0}.cu from a PyTorch C++ extension (bf16 weights).
// Build and load (nvcc and a CUDA build of PyTorch):
//   from torch.utils.cpp_extension import load
//   ext = load(name="{0}", sources=["{0}_torch.cpp", "{0}.cu"], extra_cuda_cflags=["-arch=sm_90"])
//   y = ext.moe_decode(x, topk_ids, topk_weights, w_gate, w_up, w_down)
// Shapes as the checkpoint stores them: x [T,H] bf16, topk_ids [T,K] int32, topk_weights [T,K] f32,
// w_gate and w_up [E,I,H] bf16, w_down [E,H,I] bf16; returns y [T,H] bf16.
#include <ATen/cuda/CUDAContext.h>
#include <torch/extension.h>

#include "{0}.h"

torch::Tensor moe_decode(torch::Tensor x, torch::Tensor topk_ids, torch::Tensor topk_weights, torch::Tensor w_gate,
                         torch::Tensor w_up, torch::Tensor w_down) {{
    TORCH_CHECK(x.is_cuda() && x.scalar_type() == torch::kBFloat16 && x.dim() == 2, "x: [T,H] bf16 on the GPU");
    TORCH_CHECK(x.size(1) == {0}_H, "x: H must be ", {0}_H);
    TORCH_CHECK(topk_ids.scalar_type() == torch::kInt32 && topk_ids.size(1) == {0}_K, "topk_ids: [T,K] int32");
    TORCH_CHECK(topk_weights.scalar_type() == torch::kFloat32 && topk_weights.size(1) == {0}_K, "topk_weights: [T,K] f32");
    for (const auto* w : {{&w_gate, &w_up, &w_down}})
        TORCH_CHECK(w->scalar_type() == torch::kBFloat16 && w->is_contiguous() && w->size(0) == {0}_E,
                    "expert weights: contiguous bf16, [E,I,H] or [E,H,I]");
    const int tokens = static_cast<int>(x.size(0));
    const int variant = {0}_select(NS_FMT_BF16, tokens);
    TORCH_CHECK(variant >= 0, "no bf16 specialization for ", tokens, " tokens");
    const int T = {0}_variants[variant].batch;

    // Pad to the specialization's batch: zero activations and weights, row 0's experts.
    auto x_p = torch::zeros({{T, {0}_H}}, x.options());
    auto ids_p = topk_ids.narrow(0, 0, 1).expand({{T, {0}_K}}).contiguous();
    auto weights_p = torch::zeros({{T, {0}_K}}, topk_weights.options());
    x_p.narrow(0, 0, tokens).copy_(x);
    ids_p.narrow(0, 0, tokens).copy_(topk_ids);
    weights_p.narrow(0, 0, tokens).copy_(topk_weights);
    auto y = torch::empty({{T, {0}_H}}, x.options());
    auto workspace = torch::empty({{static_cast<long>({0}_variants[variant].workspace_bytes) + 1}},
                                  x.options().dtype(torch::kUInt8));

    MoeDecodeParams p{{}};
    p.T = T;
    p.H = {0}_H;
    p.I = {0}_I;
    p.E = {0}_E;
    p.K = {0}_K;
    p.activation = {0}_activation;
    p.format = NS_FMT_BF16;
    p.x = reinterpret_cast<const ns_bf16*>(x_p.data_ptr());
    p.topk_ids = ids_p.data_ptr<int>();
    p.topk_weights = weights_p.data_ptr<float>();
    p.w_gate = w_gate.data_ptr();
    p.w_up = w_up.data_ptr();
    p.w_down = w_down.data_ptr();
    p.y = reinterpret_cast<ns_bf16*>(y.data_ptr());
    cudaStream_t stream = at::cuda::getCurrentCUDAStream();
    // A kernel with its own weight layout packs it into the workspace first. Here that happens on
    // every call for simplicity; a server would prepack once per set of weights and keep the workspace.
    if ({0}_variants[variant].packed_mask != 0) {{
        cudaError_t packed = {0}_prepack(variant, p, workspace.data_ptr(), stream);
        TORCH_CHECK(packed == cudaSuccess, "{0}_prepack: ", cudaGetErrorString(packed));
    }}
    cudaError_t error = {0}_run(variant, p, workspace.data_ptr(), stream);
    TORCH_CHECK(error == cudaSuccess, "{0}_run: ", cudaGetErrorString(error));
    return y.narrow(0, 0, tokens);
}}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {{ m.def("moe_decode", &moe_decode, "MoE decode, nightshift's winners"); }}
)cpp",
                       base);
}

} // namespace

BestExport export_best(store::Store& store, const BestRequest& request) {
    if (request.op != "moe_decode")
        throw InputError(fmt::format("export --best knows the op moe_decode only, not '{}'", request.op));
    md::find_preset(request.model); // InputError naming the presets
    std::string sql = fmt::format(
        "WITH ranked AS (SELECT e.id, e.problem_id, e.kernel_id, e.knobs_json, e.median_us, "
        " coalesce(e.fraction_of_floor, 0) AS fraction, row_number() OVER (PARTITION BY e.problem_id "
        " ORDER BY e.median_us, e.id) AS rank_ FROM experiments e WHERE e.status = 0 AND e.median_us IS NOT NULL{}) "
        "SELECT p.format, p.batch, r.id, k.path, k.source, r.knobs_json, r.median_us, r.fraction "
        "FROM ranked r JOIN problems p ON p.id = r.problem_id JOIN kernels k ON k.id = r.kernel_id "
        "WHERE r.rank_ = 1 AND p.op = '{}' AND p.model = '{}' AND p.distribution = 'uniform' "
        "ORDER BY p.format, p.batch",
        request.run_id ? fmt::format(" AND e.run_id = {}", *request.run_id) : "", request.op, request.model);
    // The op and model were checked against the presets above, so they hold no quote.
    query::Table table = query::run_sql(store, sql);
    if (table.rows.empty())
        throw InputError(fmt::format("no verified {} experiment of {} (uniform routing) in {}", request.op,
                                     request.model, store.path().string()));
    BestExport best;
    best.base_name = identifier(request.op + "_" + request.model);
    for (const auto& row : table.rows) {
        Variant v;
        v.format = row[0];
        v.batch = std::stoi(row[1]);
        v.experiment_id = std::stoll(row[2]);
        v.kernel_path = row[3];
        v.kernel_source = row[4];
        v.knobs = nlohmann::json::parse(row[5]).get<kernels::Symbols>();
        v.median_us = std::stod(row[6]);
        v.fraction_of_floor = std::stod(row[7]);
        best.variants.push_back(std::move(v));
    }
    std::stable_sort(best.variants.begin(), best.variants.end(), [](const Variant& a, const Variant& b) {
        return std::pair(format_number(a.format), a.batch) < std::pair(format_number(b.format), b.batch);
    });
    std::vector<Built> built;
    for (const auto& v : best.variants) built.push_back(build(v, request.model));
    best.cuda_source = generate_cuda(best, built, request.model);
    best.header = generate_header(best, built, request.model);
    best.torch_example = generate_torch_example(best);

    best.summary = fmt::format("dispatch table of {} ({} specializations):\n", best.base_name, best.variants.size());
    int previous = 0;
    std::string previous_format;
    for (std::size_t i = 0; i < best.variants.size(); ++i) {
        const Variant& v = best.variants[i];
        if (v.format != previous_format) previous = 0;
        best.summary += fmt::format("  v{:<3} {:<10} tokens {:>3}..{:<3} {} [{}] {:.2f} us (experiment {})\n", i,
                                    v.format, previous + 1, v.batch,
                                    std::filesystem::path(v.kernel_path).filename().string(), knobs_text(v.knobs),
                                    v.median_us, v.experiment_id);
        previous = v.batch;
        previous_format = v.format;
    }
    return best;
}

std::vector<std::filesystem::path> write_best(const BestExport& best, const std::filesystem::path& dir) {
    std::filesystem::create_directories(dir);
    std::vector<std::filesystem::path> written;
    for (const auto& [suffix, text] : {std::pair{std::string(".cu"), &best.cuda_source},
                                       std::pair{std::string(".h"), &best.header},
                                       std::pair{std::string("_torch.cpp"), &best.torch_example}}) {
        std::filesystem::path path = dir / (best.base_name + suffix);
        std::ofstream out(path, std::ios::binary);
        out << *text;
        out.close();
        if (!out) throw IoError(fmt::format("cannot write {}", path.string()));
        written.push_back(path);
    }
    return written;
}

} // namespace nightshift::exports
