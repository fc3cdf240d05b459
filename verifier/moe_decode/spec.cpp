#include "verifier/moe_decode/spec.h"

#include "harness/core/paths.h"
#include "kernels_seed/moe_decode/params.h"
#include "verifier/rng.h"

#include <fmt/format.h>

#include <cstring>
#include <set>

namespace nightshift::verifier::moe_decode {
namespace {

constexpr unsigned k_fill_threads = 256;

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

} // namespace

DeviceKernels::DeviceKernels(const cuda::Device& device, const cuda::Compiler& compiler) : m_device(device) {
    // Generation must be bit-exact with the host: no contraction into FMAs.
    m_generate_module = compile_and_load(device, compiler, "generate.cu", {"--fmad=false"});
    m_reference_module = compile_and_load(device, compiler, "reference_gpu.cu", {});
    m_fill = std::make_unique<cuda::Function>(m_generate_module->function("fill_bf16"));
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
                       std::shared_ptr<const DeviceWeights> weights, const DeviceKernels& kernels)
    : m_preset(preset), m_shape(shape), m_seed(seed), m_routing(make_routing(shape, seed, routing_kind)),
      m_weights(std::move(weights)), m_kernels(kernels) {
    cuda::Stream stream;
    auto x_count = static_cast<unsigned long long>(shape.T) * shape.H;
    m_x = cuda::DeviceBuffer(x_count * 2);
    m_kernels.fill_bf16(m_x, x_count, seed, NS_STREAM_X, x_scale_log2(), stream);
    m_ids = cuda::DeviceBuffer(m_routing.ids.size() * sizeof(int32_t));
    m_ids.upload(m_routing.ids);
    m_routing_weights = cuda::DeviceBuffer(m_routing.weights.size() * sizeof(float));
    m_routing_weights.upload(m_routing.weights);
    m_y = cuda::DeviceBuffer(x_count * 2);
    stream.synchronize();
}

std::string GpuProblem::label() const { return fmt::format("{} T={} bf16", m_preset.name, m_shape.T); }

kernels::Symbols shape_symbols(const Shape& s) {
    return {{"T", s.T}, {"H", s.H}, {"I", s.I}, {"E", s.E}, {"K", s.K}};
}

std::vector<std::string> compile_defines(const Shape& s) {
    return {fmt::format("-DNS_T={}", s.T), fmt::format("-DNS_H={}", s.H), fmt::format("-DNS_I={}", s.I),
            fmt::format("-DNS_E={}", s.E), fmt::format("-DNS_K={}", s.K), fmt::format("-DNS_ACT={}", s.activation)};
}

std::string params_dir() { return (project_root() / "kernels_seed" / "moe_decode").string(); }

kernels::Symbols GpuProblem::shape_symbols() const { return moe_decode::shape_symbols(m_shape); }

std::vector<std::string> GpuProblem::compile_defines() const { return moe_decode::compile_defines(m_shape); }

std::vector<unsigned char> GpuProblem::params(const std::vector<DevicePtr>& scratch) const {
    if (scratch.size() > NS_MAX_SCRATCH) {
        throw InputError(fmt::format("moe_decode kernels may declare at most {} @scratch buffers", NS_MAX_SCRATCH));
    }
    MoeDecodeParams p{};
    p.T = m_shape.T;
    p.H = m_shape.H;
    p.I = m_shape.I;
    p.E = m_shape.E;
    p.K = m_shape.K;
    p.activation = m_shape.activation;
    p.format = NS_FMT_BF16;
    p.x = m_x.as<const ns_bf16>();
    p.topk_ids = m_ids.as<const int>();
    p.topk_weights = m_routing_weights.as<const float>();
    p.w_gate = m_weights->gate.as<const void>();
    p.w_up = m_weights->up.as<const void>();
    p.w_down = m_weights->down.as<const void>();
    p.y = m_y.as<ns_bf16>();
    for (std::size_t i = 0; i < scratch.size(); ++i) p.scratch[i] = reinterpret_cast<void*>(scratch[i]);
    std::vector<unsigned char> bytes(sizeof p);
    std::memcpy(bytes.data(), &p, sizeof p);
    return bytes;
}

void GpuProblem::poison_output(const cuda::Stream& stream) { m_y.fill_u16(0xffff, stream.get()); } // bf16 NaN

std::vector<double> GpuProblem::read_output() const {
    auto bits = m_y.download<std::uint16_t>();
    std::vector<double> out(bits.size());
    for (std::size_t i = 0; i < bits.size(); ++i) out[i] = bf16_to_double(bits[i]);
    return out;
}

const std::vector<double>& GpuProblem::reference() {
    if (!m_reference.empty()) return m_reference;
    const Shape& s = m_shape;
    cuda::DeviceBuffer inter(static_cast<std::size_t>(s.T) * s.K * s.I * sizeof(double));
    cuda::DeviceBuffer y_ref(static_cast<std::size_t>(s.T) * s.H * sizeof(double));
    auto bytes = params({inter.ptr(), y_ref.ptr()});
    void* args[] = {bytes.data()};
    cuda::Stream stream;
    cuda::launch(m_kernels.reference_gate_up(), {static_cast<unsigned>(s.T * s.K), static_cast<unsigned>(s.I), 1},
                 {32, 1, 1}, 0, stream.get(), args);
    cuda::launch(m_kernels.reference_down(), {static_cast<unsigned>(s.T), static_cast<unsigned>(s.H), 1},
                 {32, 1, 1}, 0, stream.get(), args);
    stream.synchronize();
    m_reference = y_ref.download<double>();
    return m_reference;
}

Tolerance GpuProblem::tolerance() const {
    // bf16 output rounding alone gives ~1e-3 relative L2; a bf16 intermediate
    // (the standard path) a few 1e-3. Above 1e-2 something is wrong.
    return Tolerance{.max_rel_l2 = 1e-2, .max_abs_over_rms = 5e-2};
}

int GpuProblem::distinct_experts() const {
    return static_cast<int>(std::set<int32_t>(m_routing.ids.begin(), m_routing.ids.end()).size());
}

double GpuProblem::bytes() const {
    const Shape& s = m_shape;
    double weights = static_cast<double>(distinct_experts()) * 3.0 * s.I * s.H * 2.0;
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

std::vector<std::string> Spec::models() const {
    std::vector<std::string> names;
    for (const auto& p : presets()) names.push_back(p.name);
    return names;
}

std::string Spec::params_dir() const { return moe_decode::params_dir(); }

std::unique_ptr<Problem> Spec::make_problem(const ProblemRequest& request) {
    const Preset& preset = find_preset(request.model);
    Shape shape = make_shape(preset, request.batch);
    if (request.format != "bf16") {
        throw InputError(fmt::format("weight format '{}' is not implemented yet (have: bf16)", request.format));
    }
    RoutingKind kind = parse_routing_kind(request.distribution);
    std::string key = fmt::format("{}#{}", preset.name, request.seed);
    if (key != m_weights_model) {
        m_weights.reset(); // free the old model's weights before allocating the new ones
        cuda::Stream stream;
        m_weights = std::make_shared<const DeviceWeights>(shape, request.seed, m_kernels, stream);
        m_weights_model = key;
    }
    return std::make_unique<GpuProblem>(preset, shape, request.seed, kind, m_weights, m_kernels);
}

} // namespace nightshift::verifier::moe_decode
