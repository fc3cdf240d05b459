#include "verifier/moe_decode/spec.h"

#include "harness/core/paths.h"
#include "harness/kernels/kernel_file.h"
#include "kernels_seed/moe_decode/params.h"
#include "verifier/moe_decode/quantized.h"
#include "verifier/rng.h"

#include <fmt/format.h>

#include <cstring>
#include <set>

namespace nightshift::verifier::moe_decode {
namespace {

constexpr unsigned k_fill_threads = 256;
constexpr std::size_t k_guard_bytes = 4096;  // after y: a kernel writing past the end lands here
constexpr unsigned char k_guard_byte = 0xa7;

std::unique_ptr<cuda::Module> compile_and_load(const cuda::Device& device, const cuda::Compiler& compiler,
                                               const std::string& file, std::vector<std::string> options) {
    auto root = project_root();
    auto path = root / "verifier" / "moe_decode" / file;
    cuda::CompileRequest request{.name = path.string(),
                                 .source = read_text_file(path),
                                 .arch = device.info().arch(),
                                 .options = std::move(options),
                                 .include_dirs = {root / "verifier", root / "kernels_seed" / "moe_decode"}};
    auto compiled = compiler.compile(request);
    if (!compiled.ok) throw Error(fmt::format("{} does not compile:\n{}", path.string(), compiled.log));
    return std::make_unique<cuda::Module>(compiled.cubin);
}

double bf16_to_double(std::uint16_t bits) {
    std::uint32_t word = static_cast<std::uint32_t>(bits) << 16;
    float f;
    std::memcpy(&f, &word, sizeof f);
    return f;
}

// The params struct as the one kernel argument's bytes.
std::vector<unsigned char> as_bytes(const MoeDecodeParams& p) {
    std::vector<unsigned char> bytes(sizeof p);
    std::memcpy(bytes.data(), &p, sizeof p);
    return bytes;
}

} // namespace

DeviceKernels::DeviceKernels(const cuda::Device& device, const cuda::Compiler& compiler) : m_device(device) {
    // Generation must be bit-exact with the host: no contraction into FMAs.
    m_generate_module = compile_and_load(device, compiler, "generate.cu", {"--fmad=false"});
    m_reference_module = compile_and_load(device, compiler, "reference_gpu.cu", {});
    m_fill = std::make_unique<cuda::Function>(m_generate_module->function("fill_bf16"));
    m_quantize = std::make_unique<cuda::Function>(m_generate_module->function("quantize_rows"));
    m_gate_up = std::make_unique<cuda::Function>(m_reference_module->function("reference_gate_up"));
    m_down = std::make_unique<cuda::Function>(m_reference_module->function("reference_down"));
}

void DeviceKernels::fill_bf16(const cuda::DeviceBuffer& out, unsigned long long count, unsigned long long seed,
                              unsigned stream_id, int scale_log2, const cuda::Stream& stream) const {
    if (count * 2 > out.bytes()) throw Error("fill_bf16: buffer too small");
    CUdeviceptr ptr = out.ptr();
    void* args[] = {&ptr, &count, &seed, &stream_id, &scale_log2};
    unsigned blocks = static_cast<unsigned>(m_device.info().sm_count) * 8;
    cuda::launch(*m_fill, {blocks, 1, 1}, {k_fill_threads, 1, 1}, 0, stream.get(), args);
}

void DeviceKernels::quantize(const cuda::DeviceBuffer& in, unsigned long long rows, int cols, int format,
                             const cuda::DeviceBuffer& codes, const cuda::DeviceBuffer& scales,
                             const cuda::Stream& stream) const {
    const auto weights = rows * static_cast<unsigned long long>(cols);
    const auto code_bytes = format == NS_FMT_INT4_G128 ? weights / 2 : weights;
    if (in.bytes() < weights * 2 || codes.bytes() < code_bytes ||
        scales.bytes() < rows * static_cast<unsigned long long>(scale_groups(format, cols)) * sizeof(float)) {
        throw Error("quantize: buffer too small");
    }
    CUdeviceptr in_ptr = in.ptr(), codes_ptr = codes.ptr(), scales_ptr = scales.ptr();
    void* args[] = {&in_ptr, &rows, &cols, &format, &codes_ptr, &scales_ptr};
    unsigned blocks = static_cast<unsigned>(m_device.info().sm_count) * 8;
    cuda::launch(*m_quantize, {blocks, 1, 1}, {k_fill_threads, 1, 1}, 0, stream.get(), args);
}

QuantizedWeights::QuantizedWeights(const Shape& s, std::shared_ptr<const DeviceWeights> bf16_,
                                   const DeviceKernels& kernels, const cuda::Stream& stream)
    : bf16(std::move(bf16_)), format(s.format) {
    if (format == NS_FMT_INT4_G128 && (s.H % 2 != 0 || s.I % 2 != 0)) {
        throw InputError(fmt::format("int4_g128 needs even H and I (have H={}, I={})", s.H, s.I));
    }
    auto make = [&](const cuda::DeviceBuffer& in, cuda::DeviceBuffer& codes, cuda::DeviceBuffer& scales, int rows,
                    int cols) {
        const auto all_rows = static_cast<unsigned long long>(s.E) * rows;
        const auto weights = all_rows * static_cast<unsigned long long>(cols);
        codes = cuda::DeviceBuffer(format == NS_FMT_INT4_G128 ? weights / 2 : weights);
        scales = cuda::DeviceBuffer(all_rows * static_cast<unsigned long long>(scale_groups(format, cols)) *
                                    sizeof(float));
        kernels.quantize(in, all_rows, cols, format, codes, scales, stream);
    };
    make(bf16->gate, gate, gate_scales, s.I, s.H);
    make(bf16->up, up, up_scales, s.I, s.H);
    make(bf16->down, down, down_scales, s.H, s.I);
    stream.synchronize();
}

DeviceWeights::DeviceWeights(const Shape& s, unsigned long long seed_, const DeviceKernels& kernels,
                             const cuda::Stream& stream)
    : seed(seed_) {
    auto count = static_cast<unsigned long long>(s.E) * s.I * s.H;
    gate = cuda::DeviceBuffer(count * 2);
    up = cuda::DeviceBuffer(count * 2);
    down = cuda::DeviceBuffer(count * 2);
    kernels.fill_bf16(gate, count, seed, NS_STREAM_W_GATE, gate_up_scale_log2(s), stream);
    kernels.fill_bf16(up, count, seed, NS_STREAM_W_UP, gate_up_scale_log2(s), stream);
    kernels.fill_bf16(down, count, seed, NS_STREAM_W_DOWN, down_scale_log2(s), stream);
    stream.synchronize();
}

GpuProblem::GpuProblem(const Preset& preset, const Shape& shape, unsigned long long seed, RoutingKind routing_kind,
                       int input_scale_log2, std::shared_ptr<const DeviceWeights> weights,
                       std::shared_ptr<const QuantizedWeights> quantized, const DeviceKernels& kernels)
    : m_preset(preset), m_shape(shape), m_seed(seed), m_routing_kind(routing_kind),
      m_input_scale_log2(input_scale_log2), m_weights(std::move(weights)), m_quantized(std::move(quantized)),
      m_kernels(kernels) {
    if ((shape.format == NS_FMT_BF16) != (m_quantized == nullptr) ||
        (m_quantized && m_quantized->format != shape.format)) {
        throw Error("GpuProblem: quantized weights do not match the shape's format");
    }
    m_y_bytes = static_cast<std::size_t>(shape.T) * shape.H * 2;
    m_sets.push_back(make_input_set(seed));
}

GpuProblem::InputSet GpuProblem::make_input_set(unsigned long long seed) const {
    InputSet set;
    set.seed = seed;
    set.routing = make_routing(m_shape, seed, m_routing_kind);
    cuda::Stream stream;
    auto x_count = static_cast<unsigned long long>(m_shape.T) * m_shape.H;
    set.x = cuda::DeviceBuffer(x_count * 2);
    m_kernels.fill_bf16(set.x, x_count, seed, NS_STREAM_X, x_scale_log2() + m_input_scale_log2, stream);
    set.ids = cuda::DeviceBuffer(set.routing.ids.size() * sizeof(int32_t));
    set.ids.upload(set.routing.ids);
    set.routing_weights = cuda::DeviceBuffer(set.routing.weights.size() * sizeof(float));
    set.routing_weights.upload(set.routing.weights);
    set.y = cuda::DeviceBuffer(m_y_bytes + k_guard_bytes);
    stream.synchronize();
    return set;
}

void GpuProblem::select_input_set(int set) {
    if (set < 0 || set >= k_input_sets) throw Error(fmt::format("input set {} of {}", set, k_input_sets));
    while (static_cast<int>(m_sets.size()) <= set) {
        // Other activations (another seed), and set 0's routing with every
        // expert id moved by the same offset: other experts' weights, but the
        // same number of distinct experts and tokens per expert, so the bytes
        // a call must move, and with them the floor, are set 0's exactly.
        const auto index = m_sets.size();
        InputSet other = make_input_set(ns_rng_u64(m_seed, 0x5e75, index) | 1);
        other.routing = m_sets.front().routing;
        const int offset = static_cast<int>(index) * std::max(1, m_shape.E / k_input_sets);
        for (auto& id : other.routing.ids) id = (id + offset) % m_shape.E;
        other.ids.upload(other.routing.ids);
        other.routing_weights.upload(other.routing.weights);
        m_sets.push_back(std::move(other));
    }
    m_active = set;
}

std::string GpuProblem::label() const {
    return fmt::format("{} T={} {}", m_preset.name, m_shape.T, weight_format_name(m_shape.format));
}

const std::vector<std::string>& shape_symbol_names() {
    static const std::vector<std::string> names = {"T", "H", "I", "E", "K", "BITS"};
    return names;
}

kernels::Symbols shape_symbols(const Shape& s) {
    return {{"T", s.T}, {"H", s.H}, {"I", s.I}, {"E", s.E}, {"K", s.K}, {"BITS", weight_bits(s.format)}};
}

std::vector<std::string> compile_defines(const Shape& s) {
    return {fmt::format("-DNS_T={}", s.T), fmt::format("-DNS_H={}", s.H), fmt::format("-DNS_I={}", s.I),
            fmt::format("-DNS_E={}", s.E), fmt::format("-DNS_K={}", s.K), fmt::format("-DNS_ACT={}", s.activation),
            fmt::format("-DNS_FORMAT={}", s.format)};
}

std::string params_dir() { return (project_root() / "kernels_seed" / "moe_decode").string(); }

kernels::Symbols GpuProblem::shape_symbols() const { return moe_decode::shape_symbols(m_shape); }

std::vector<std::string> GpuProblem::compile_defines() const { return moe_decode::compile_defines(m_shape); }

MoeDecodeParams GpuProblem::make_params(bool model_weights, const std::vector<DevicePtr>& scratch) const {
    static_assert(NS_MAX_SCRATCH == kernels::k_max_scratch, "params.h and the kernel-file parser disagree");
    if (scratch.size() > NS_MAX_SCRATCH) {
        throw InputError(fmt::format("moe_decode kernels may declare at most {} @scratch and @packed buffers", NS_MAX_SCRATCH));
    }
    MoeDecodeParams p{};
    p.T = m_shape.T;
    p.H = m_shape.H;
    p.I = m_shape.I;
    p.E = m_shape.E;
    p.K = m_shape.K;
    p.activation = m_shape.activation;
    p.x = active().x.as<const ns_bf16>();
    p.topk_ids = active().ids.as<const int>();
    p.topk_weights = active().routing_weights.as<const float>();
    if (m_quantized && !model_weights) {
        p.format = m_quantized->format;
        p.w_gate = m_quantized->gate.as<const void>();
        p.w_up = m_quantized->up.as<const void>();
        p.w_down = m_quantized->down.as<const void>();
        p.gate_scales = m_quantized->gate_scales.as<const float>();
        p.up_scales = m_quantized->up_scales.as<const float>();
        p.down_scales = m_quantized->down_scales.as<const float>();
    } else {
        p.format = NS_FMT_BF16;
        p.w_gate = m_weights->gate.as<const void>();
        p.w_up = m_weights->up.as<const void>();
        p.w_down = m_weights->down.as<const void>();
    }
    p.y = active().y.as<ns_bf16>();
    for (std::size_t i = 0; i < scratch.size(); ++i) p.scratch[i] = reinterpret_cast<void*>(scratch[i]);
    return p;
}

std::vector<unsigned char> GpuProblem::params(const std::vector<DevicePtr>& scratch) const {
    return as_bytes(make_params(false, scratch));
}

std::vector<unsigned char> GpuProblem::weight_params(const std::vector<DevicePtr>& scratch) const {
    MoeDecodeParams p = make_params(false, scratch);
    p.x = nullptr;
    p.topk_ids = nullptr;
    p.topk_weights = nullptr;
    p.y = nullptr;
    return as_bytes(p);
}

void GpuProblem::poison_output(const cuda::Stream& stream) {
    active().y.fill_u16(0xffff, stream.get()); // bf16 NaN everywhere, guard included
    active().y.fill_bytes(k_guard_byte, stream.get(), m_y_bytes, k_guard_bytes);
}

bool GpuProblem::output_guard_intact() const {
    std::vector<unsigned char> all(m_y_bytes + k_guard_bytes);
    active().y.download(all.data(), all.size());
    return std::all_of(all.begin() + static_cast<std::ptrdiff_t>(m_y_bytes), all.end(),
                       [](unsigned char b) { return b == k_guard_byte; });
}

std::vector<double> GpuProblem::read_output() const {
    std::vector<std::uint16_t> bits(m_y_bytes / 2);
    active().y.download(bits.data(), m_y_bytes);
    std::vector<double> out(bits.size());
    for (std::size_t i = 0; i < bits.size(); ++i) out[i] = bf16_to_double(bits[i]);
    return out;
}

const std::vector<double>& GpuProblem::reference() {
    if (active().reference.empty()) active().reference = run_reference(false);
    return active().reference;
}

const std::vector<double>& GpuProblem::model_reference() {
    if (!m_quantized) return reference();
    if (active().model_reference.empty()) active().model_reference = run_reference(true);
    return active().model_reference;
}

std::vector<double> GpuProblem::run_reference(bool model_weights) const {
    const Shape& s = m_shape;
    cuda::DeviceBuffer inter(static_cast<std::size_t>(s.T) * s.K * s.I * sizeof(double));
    cuda::DeviceBuffer y_ref(static_cast<std::size_t>(s.T) * s.H * sizeof(double));
    MoeDecodeParams p = make_params(model_weights, {inter.ptr(), y_ref.ptr()});
    void* args[] = {&p};
    cuda::Stream stream;
    cuda::launch(m_kernels.reference_gate_up(), {static_cast<unsigned>(s.T * s.K), static_cast<unsigned>(s.I), 1},
                 {32, 1, 1}, 0, stream.get(), args);
    cuda::launch(m_kernels.reference_down(), {static_cast<unsigned>(s.T), static_cast<unsigned>(s.H), 1},
                 {32, 1, 1}, 0, stream.get(), args);
    stream.synchronize();
    return y_ref.download<double>();
}

Tolerance GpuProblem::tolerance() const {
    // bf16 output rounding alone gives ~1e-3 relative L2; a bf16 intermediate
    // (the standard path) a few 1e-3. Above 1e-2 something is wrong. The
    // worst single element grows with the output count: the honest
    // expert-centric seed reached 0.054 of the RMS over 87k outputs (T=31 on
    // Gemma 4, H100), so one element may be off by a tenth of the RMS; a
    // wrong element is off by about the RMS itself.
    return Tolerance{.max_rel_l2 = 1e-2, .max_abs_over_rms = 1e-1};
}

int GpuProblem::distinct_experts() const {
    const Routing& routing = m_sets.front().routing;
    return static_cast<int>(std::set<int32_t>(routing.ids.begin(), routing.ids.end()).size());
}

double GpuProblem::bytes() const {
    const Shape& s = m_shape;
    double weights = static_cast<double>(distinct_experts()) * expert_bytes(s);
    double activations = 2.0 * s.T * s.H * 2.0;    // x read, y written
    double routing = static_cast<double>(s.T) * s.K * (4 + 4);
    return weights + activations + routing;
}

double GpuProblem::flops() const {
    const Shape& s = m_shape;
    return 6.0 * s.T * s.K * static_cast<double>(s.I) * s.H; // three matrix-vector products per (t,k)
}

Spec::Spec(const cuda::Device& device, const cuda::Compiler& compiler)
    : m_device(device), m_kernels(device, compiler) {}

std::vector<std::string> Spec::formats() const { return weight_format_names(); }

std::vector<std::string> Spec::models() const {
    std::vector<std::string> names;
    for (const auto& p : presets()) names.push_back(p.name);
    return names;
}

std::string Spec::params_dir() const { return moe_decode::params_dir(); }

std::unique_ptr<Problem> Spec::make_problem(const ProblemRequest& request) {
    const Preset& preset = find_preset(request.model);
    Shape shape = make_shape(preset, request.batch, request.format);
    RoutingKind kind = parse_routing_kind(request.distribution);
    std::string key = fmt::format("{}#{}", preset.name, request.seed);
    std::shared_ptr<const DeviceWeights> weights = m_weights[key].lock();
    if (!weights) {
        std::erase_if(m_weights, [](const auto& entry) { return entry.second.expired(); });
        cuda::Stream stream;
        weights = std::make_shared<const DeviceWeights>(shape, request.seed, m_kernels, stream);
        m_weights[key] = weights;
    }
    std::shared_ptr<const QuantizedWeights> quantized;
    if (shape.format != NS_FMT_BF16) {
        std::string quantized_key = fmt::format("{}#{}", key, request.format);
        quantized = m_quantized[quantized_key].lock();
        if (!quantized) {
            std::erase_if(m_quantized, [](const auto& entry) { return entry.second.expired(); });
            cuda::Stream stream;
            quantized = std::make_shared<const QuantizedWeights>(shape, weights, m_kernels, stream);
            m_quantized[quantized_key] = quantized;
        }
    }
    auto problem = std::make_unique<GpuProblem>(preset, shape, request.seed, kind, request.input_scale_log2,
                                                std::move(weights), std::move(quantized), m_kernels);
    problem->set_request(request);
    return problem;
}

std::vector<VerificationCase> Spec::verification_cases(const ProblemRequest& timed, unsigned long long seed) const {
    // Each round draws its own inputs: a kernel right on one seed's data by
    // accident (or by caching) meets different data in the next.
    auto round_seed = [&](int round) { return ns_rng_u64(seed, 0x7e51, static_cast<unsigned long long>(round)) | 1; };
    auto at = [&](ProblemRequest r, int round) {
        r.seed = round_seed(round);
        return r;
    };
    std::vector<VerificationCase> cases;
    ProblemRequest base = timed;
    cases.push_back({timed.distribution, at(base, 0)});
    ProblemRequest large = base;
    large.input_scale_log2 = 8; // large-magnitude activations: overflow and precision shortcuts show
    cases.push_back({"large inputs", at(large, 1)});
    int round = 2;
    for (const char* routing : {"uniform", "zipf", "identical", "one_expert"}) {
        if (routing == timed.distribution) continue;
        ProblemRequest r = base;
        r.distribution = routing;
        cases.push_back({routing, at(r, round++)});
    }
    // Held-out shapes: an odd, ragged batch near the timed one, and another
    // preset whose H and I are not multiples of the usual tiles.
    ProblemRequest other_batch = base;
    other_batch.batch = timed.batch == 1 ? 3 : (timed.batch % 2 ? timed.batch - 2 : timed.batch - 1);
    if (other_batch.batch < 1) other_batch.batch = 1;
    cases.push_back({fmt::format("held-out T={}", other_batch.batch), at(other_batch, round++)});
    ProblemRequest other_model = base;
    other_model.model = timed.model == "tiny-gelu" ? "tiny" : "tiny-gelu";
    other_model.batch = 5;
    cases.push_back({fmt::format("held-out {} T=5", other_model.model), at(other_model, round++)});
    return cases;
}

std::string Spec::accuracy_seed_path(const std::string& format) const {
    // warp_decode_v1 reads bf16 only; v2 reads every format with the same
    // numerics (fp32 sums, fp32 intermediate, one rounding at the end).
    const char* file = format == "bf16" ? "warp_decode_v1.cu" : "warp_decode_v2.cu";
    return (project_root() / "kernels_seed" / "moe_decode" / file).string();
}

} // namespace nightshift::verifier::moe_decode
