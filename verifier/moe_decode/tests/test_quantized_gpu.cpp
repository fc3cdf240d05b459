#include "verifier/moe_decode/quantized.h"
#include "verifier/moe_decode/spec.h"

#include "harness/cuda/tests/gpu_test_support.h"
#include "verifier/moe_decode/reference_cpu.h"
#include "verifier/rng.h"

#include <gtest/gtest.h>

#include <cmath>

namespace nightshift::verifier::moe_decode {
namespace {
using testing::fresh_seed;
using testing::gpu_device;
using testing::test_compiler;

// The device quantizes exactly as the host does, so the CPU can rebuild any
// quantized expert without copying gigabytes back.
TEST(QuantizedGpu, DeviceQuantizationMatchesTheHostBitForBit) {
    NS_REQUIRE_GPU();
    DeviceKernels kernels(*gpu_device(), test_compiler());
    cuda::Stream stream;
    for (const char* model : {"tiny-gelu", "gemma4-26b-a4b"}) {
        for (const char* format : {"int8_row", "int4_g128", "fp8_e4m3"}) {
            Shape shape = make_shape(find_preset(model), 1, format);
            unsigned long long seed = fresh_seed();
            auto bf16 = std::make_shared<const DeviceWeights>(shape, seed, kernels, stream);
            QuantizedWeights q(shape, bf16, kernels, stream);
            auto up_codes = q.up.download<std::uint8_t>();
            auto up_scales = q.up_scales.download<float>();
            auto down_codes = q.down.download<std::uint8_t>();
            auto down_scales = q.down_scales.download<float>();
            for (int expert : {0, shape.E - 1}) {
                ExpertWeights host = make_expert_weights(shape, seed, expert);
                QuantizedMatrix up = quantize_matrix(host.up, shape.I, shape.H, shape.format);
                QuantizedMatrix down = quantize_matrix(host.down, shape.H, shape.I, shape.format);
                ASSERT_TRUE(std::equal(up.codes.begin(), up.codes.end(), up_codes.begin() + expert * up.codes.size()))
                    << model << " " << format << " up codes of expert " << expert;
                ASSERT_TRUE(std::equal(up.scales.begin(), up.scales.end(), up_scales.begin() + expert * up.scales.size()))
                    << model << " " << format << " up scales of expert " << expert;
                ASSERT_TRUE(
                    std::equal(down.codes.begin(), down.codes.end(), down_codes.begin() + expert * down.codes.size()))
                    << model << " " << format << " down codes of expert " << expert;
                ASSERT_TRUE(std::equal(down.scales.begin(), down.scales.end(),
                                       down_scales.begin() + expert * down.scales.size()))
                    << model << " " << format << " down scales of expert " << expert;
            }
        }
    }
}

// The reference of a quantized problem is the float64 op on the dequantized
// weights (computed here on the host, independently); its model reference is
// the bf16 problem's reference, bit for bit.
TEST(QuantizedGpu, ReferenceIsTheOpOnDequantizedWeights) {
    NS_REQUIRE_GPU();
    Spec spec(*gpu_device(), test_compiler());
    for (const char* format : {"int8_row", "int4_g128", "fp8_e4m3"}) {
        for (const char* model : {"tiny", "tiny-gelu"}) {
            unsigned long long seed = fresh_seed();
            auto problem = spec.make_problem({.model = model, .batch = 5, .format = format, .seed = seed});
            auto bf16 = spec.make_problem({.model = model, .batch = 5, .seed = seed});
            auto& gpu = dynamic_cast<GpuProblem&>(*problem);
            const Shape& s = gpu.shape();
            auto x = make_x(s, seed, x_scale_log2());
            std::vector<double> expected(static_cast<std::size_t>(s.T) * s.H, 0.0);
            for (int t = 0; t < s.T; ++t) {
                for (int k = 0; k < s.K; ++k) {
                    const int e = gpu.routing().ids[static_cast<std::size_t>(t * s.K + k)];
                    ExpertWeights w = make_expert_weights(s, seed, e);
                    auto gate = dequantize_matrix(quantize_matrix(w.gate, s.I, s.H, s.format), s.I, s.H, s.format);
                    auto up = dequantize_matrix(quantize_matrix(w.up, s.I, s.H, s.format), s.I, s.H, s.format);
                    auto down = dequantize_matrix(quantize_matrix(w.down, s.H, s.I, s.format), s.H, s.I, s.format);
                    std::vector<double> inter(static_cast<std::size_t>(s.I));
                    for (int i = 0; i < s.I; ++i) {
                        double g = 0, u = 0;
                        for (int h = 0; h < s.H; ++h) {
                            double xv = ns_bf16_to_float(x[static_cast<std::size_t>(t) * s.H + h]);
                            g += gate[static_cast<std::size_t>(i) * s.H + h] * xv;
                            u += up[static_cast<std::size_t>(i) * s.H + h] * xv;
                        }
                        inter[static_cast<std::size_t>(i)] = apply_activation(s.activation, g) * u;
                    }
                    const double weight = gpu.routing().weights[static_cast<std::size_t>(t * s.K + k)];
                    for (int h = 0; h < s.H; ++h) {
                        double acc = 0;
                        for (int i = 0; i < s.I; ++i) acc += down[static_cast<std::size_t>(h) * s.I + i] * inter[static_cast<std::size_t>(i)];
                        expected[static_cast<std::size_t>(t) * s.H + h] += weight * acc;
                    }
                }
            }
            const auto& got = problem->reference();
            ASSERT_EQ(got.size(), expected.size());
            double err2 = 0, ref2 = 0, model_err2 = 0;
            for (std::size_t i = 0; i < got.size(); ++i) {
                err2 += (got[i] - expected[i]) * (got[i] - expected[i]);
                ref2 += expected[i] * expected[i];
                model_err2 += (got[i] - bf16->reference()[i]) * (got[i] - bf16->reference()[i]);
            }
            EXPECT_LT(std::sqrt(err2 / ref2), 1e-12) << format << " " << model;
            EXPECT_EQ(problem->model_reference(), bf16->reference()) << format << " " << model;
            // Quantization changes the output, by roughly what its bits allow.
            const double model_rel = std::sqrt(model_err2 / ref2);
            EXPECT_GT(model_rel, 1e-4) << format << " " << model;
            EXPECT_LT(model_rel, 0.3) << format << " " << model;
            std::printf("%-10s %-10s reference vs bf16 model: rel L2 %.2e\n", format, model, model_rel);
        }
    }
}

TEST(QuantizedGpu, BytesCountCodesAndScales) {
    NS_REQUIRE_GPU();
    Spec spec(*gpu_device(), test_compiler());
    unsigned long long seed = fresh_seed();
    auto bf16 = spec.make_problem({.model = "gemma4-26b-a4b", .batch = 1, .seed = seed});
    auto int8 = spec.make_problem({.model = "gemma4-26b-a4b", .batch = 1, .format = "int8_row", .seed = seed});
    auto int4 = spec.make_problem({.model = "gemma4-26b-a4b", .batch = 1, .format = "int4_g128", .seed = seed});
    EXPECT_NEAR(int8->bytes() / bf16->bytes(), 0.5, 0.01);
    EXPECT_NEAR(int4->bytes() / bf16->bytes(), 0.25 + 1.0 / 128, 0.01);
    EXPECT_EQ(int4->label(), "gemma4-26b-a4b T=1 int4_g128");
}

} // namespace
} // namespace nightshift::verifier::moe_decode
