// The moe_decode op on the GPU: synthetic inputs generated on the device from
// a seed (the CPU reproduces them bit for bit, see problem.h), and the plain
// float64 GPU reference (reference_gpu.cu) for shapes too large for the CPU.
#pragma once

#include "harness/cuda/buffer.h"
#include "harness/cuda/module.h"
#include "verifier/moe_decode/problem.h"
#include "verifier/op_spec.h"
#include "kernels_seed/moe_decode/params.h"

#include <map>
#include <memory>

namespace nightshift::verifier::moe_decode {

// The op's shape symbols and the compile-time defines a kernel receives for a
// shape. Host-only: the compile command uses them without a GPU. The symbols
// are T H I E K and BITS, the bits of one stored weight (16, 8 or 4), so a
// launch can size shared memory for the format.
const std::vector<std::string>& shape_symbol_names();
kernels::Symbols shape_symbols(const Shape& shape);
std::vector<std::string> compile_defines(const Shape& shape);

// The folder holding params.h, which every moe_decode kernel includes.
std::string params_dir();

// generate.cu and reference_gpu.cu, compiled and loaded once.
class DeviceKernels {
public:
    DeviceKernels(const cuda::Device& device, const cuda::Compiler& compiler);
    // out[i] = ns_rng_bf16(seed, stream_id, i, scale_log2) for i < count.
    void fill_bf16(const cuda::DeviceBuffer& out, unsigned long long count, unsigned long long seed,
                   unsigned stream_id, int scale_log2, const cuda::Stream& stream) const;
    // The `rows` x `cols` bf16 matrix `in` quantized into `codes` and `scales`
    // in `format` (quantize.h), bit for bit as the host's quantize_matrix.
    void quantize(const cuda::DeviceBuffer& in, unsigned long long rows, int cols, int format,
                  const cuda::DeviceBuffer& codes, const cuda::DeviceBuffer& scales, const cuda::Stream& stream) const;
    const cuda::Function& reference_gate_up() const { return *m_gate_up; }
    const cuda::Function& reference_down() const { return *m_down; }

private:
    const cuda::Device& m_device;
    std::unique_ptr<cuda::Module> m_generate_module, m_reference_module;
    std::unique_ptr<cuda::Function> m_fill, m_quantize, m_gate_up, m_down;
};

// All E experts' bf16 weights of one preset, generated from a seed.
struct DeviceWeights {
    DeviceWeights(const Shape& shape, unsigned long long seed, const DeviceKernels& kernels,
                  const cuda::Stream& stream);
    unsigned long long seed;
    cuda::DeviceBuffer gate, up, down;
};

// One preset's weights in a quantized format, made on the device from its
// bf16 weights (kept alive here: the model reference needs them).
struct QuantizedWeights {
    QuantizedWeights(const Shape& shape, std::shared_ptr<const DeviceWeights> bf16, const DeviceKernels& kernels,
                     const cuda::Stream& stream);
    std::shared_ptr<const DeviceWeights> bf16;
    int format;
    cuda::DeviceBuffer gate, up, down;                      // codes
    cuda::DeviceBuffer gate_scales, up_scales, down_scales; // float
};

class GpuProblem : public Problem {
public:
    // `quantized` is null for bf16 (shape.format == NS_FMT_BF16).
    GpuProblem(const Preset& preset, const Shape& shape, unsigned long long seed, RoutingKind routing_kind,
               int input_scale_log2, std::shared_ptr<const DeviceWeights> weights,
               std::shared_ptr<const QuantizedWeights> quantized, const DeviceKernels& kernels);

    std::string label() const override;
    kernels::Symbols shape_symbols() const override;
    std::vector<std::string> compile_defines() const override;
    std::vector<unsigned char> params(const std::vector<DevicePtr>& scratch) const override;
    std::vector<unsigned char> weight_params(const std::vector<DevicePtr>& scratch) const override;
    void poison_output(const cuda::Stream& stream) override;
    std::vector<double> read_output() const override;
    const std::vector<double>& reference() override;
    const std::vector<double>& model_reference() override;
    bool output_guard_intact() const override;
    Tolerance tolerance() const override;
    double bytes() const override;
    double flops() const override;
    int input_sets() const override { return k_input_sets; }
    void select_input_set(int set) override;

    const Shape& shape() const { return m_shape; }
    const ProblemRequest& request() const override { return m_request; }
    void set_request(const ProblemRequest& request) { m_request = request; }
    const Routing& routing() const { return m_sets.front().routing; } // set 0's
    int distinct_experts() const;
    unsigned long long seed() const { return m_seed; }

private:
    // The params in the problem's format, or in bf16 (the model's weights).
    MoeDecodeParams make_params(bool model_weights, const std::vector<DevicePtr>& scratch) const;
    std::vector<double> run_reference(bool model_weights) const;

    // One set of inputs with its own output: x, routing, y (with a guard
    // region after T*H) and the references for them, computed when first asked.
    struct InputSet {
        unsigned long long seed = 0;
        Routing routing;
        cuda::DeviceBuffer x, ids, routing_weights, y;
        std::vector<double> reference, model_reference;
    };
    static constexpr int k_input_sets = 2;
    InputSet make_input_set(unsigned long long seed) const;
    InputSet& active() { return m_sets[static_cast<std::size_t>(m_active)]; }
    const InputSet& active() const { return m_sets[static_cast<std::size_t>(m_active)]; }

    Preset m_preset;
    Shape m_shape;
    unsigned long long m_seed;
    RoutingKind m_routing_kind;
    int m_input_scale_log2;
    std::shared_ptr<const DeviceWeights> m_weights;
    std::shared_ptr<const QuantizedWeights> m_quantized;
    const DeviceKernels& m_kernels;
    std::vector<InputSet> m_sets; // set 0 from construction, the others when first selected
    int m_active = 0;
    std::size_t m_y_bytes = 0;
    ProblemRequest m_request;
};

class Spec : public OpSpec {
public:
    Spec(const cuda::Device& device, const cuda::Compiler& compiler);
    std::string name() const override { return "moe_decode"; }
    std::vector<std::string> shape_symbols() const override { return shape_symbol_names(); }
    std::vector<std::string> formats() const override;
    std::vector<std::string> models() const override;
    std::string params_dir() const override;
    std::unique_ptr<Problem> make_problem(const ProblemRequest& request) override;
    std::vector<VerificationCase> verification_cases(const ProblemRequest& timed,
                                                     unsigned long long seed) const override;
    std::string accuracy_seed_path(const std::string& format) const override;

private:
    const cuda::Device& m_device;
    DeviceKernels m_kernels;
    // Weights by model and seed, shared by every live problem that uses them
    // (DeepSeek-V3's are 22 GB: generated once, freed with their last problem).
    std::map<std::string, std::weak_ptr<const DeviceWeights>> m_weights;
    std::map<std::string, std::weak_ptr<const QuantizedWeights>> m_quantized; // by model, seed and format
};

} // namespace nightshift::verifier::moe_decode
