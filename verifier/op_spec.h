// The op-spec interface: everything the harness needs to know about an op to
// verify and time a kernel for it, and nothing about any particular kernel.
// A new op is one implementation of OpSpec plus its seed kernels.
#pragma once

#include "harness/cuda/compiler.h"
#include "harness/cuda/device.h"
#include "harness/cuda/stream.h"
#include "harness/kernels/expression.h"
#include "verifier/compare.h"

#include <memory>
#include <string>
#include <vector>

namespace nightshift::verifier {

using DevicePtr = unsigned long long; // a device address, as CUdeviceptr

struct ProblemRequest {
    std::string model;           // a preset name of the op
    int batch = 1;               // T
    std::string format = "bf16"; // weight format
    unsigned long long seed = 0; // inputs are a pure function of the seed
    std::string distribution = "uniform";
    int input_scale_log2 = 0; // activations scaled by 2^this (large-magnitude inputs)
};

// One verification round: a problem to check a candidate on, with a name for
// messages ("zipf", "held-out T=4").
struct VerificationCase {
    std::string name;
    ProblemRequest request;
};

// One op instance at one shape, with its inputs resident on the GPU and a
// float64 reference for them.
class Problem {
public:
    virtual ~Problem() = default;
    virtual std::string label() const = 0;                 // "gemma4-26b-a4b T=8 bf16"
    virtual const ProblemRequest& request() const = 0;     // what it was made from
    virtual kernels::Symbols shape_symbols() const = 0;    // values of the op's shape symbols
    virtual std::vector<std::string> compile_defines() const = 0; // -DNS_T=.. and friends
    // The params struct every entry of a candidate receives, as bytes, with
    // the candidate's scratch buffers in declaration order.
    virtual std::vector<unsigned char> params(const std::vector<DevicePtr>& scratch) const = 0;
    // params() with only the weights bound, for a candidate's @prepack
    // launches: activations, routing, output and non-packed scratch are null,
    // so a prepack cannot compute anything from the inputs. Shapes, the weight
    // format, the weights and their scales are as in params(). `scratch` holds
    // the packed buffers' pointers and 0 for every plain @scratch slot.
    virtual std::vector<unsigned char> weight_params(const std::vector<DevicePtr>& scratch) const = 0;
    virtual void poison_output(const cuda::Stream& stream) = 0; // NaN everywhere
    virtual std::vector<double> read_output() const = 0;
    virtual const std::vector<double>& reference() = 0;     // computed once, float64
    // The float64 output of the model itself: for a quantized weight format,
    // the op on the original bf16 weights (reference() uses the dequantized
    // ones, which is what a kernel is judged against); otherwise reference().
    virtual const std::vector<double>& model_reference() { return reference(); }
    // False when something was written past the end of the output (a guard
    // region after it, filled by poison_output, changed).
    virtual bool output_guard_intact() const = 0;
    virtual Tolerance tolerance() const = 0;
    virtual double bytes() const = 0; // the fewest bytes one call must move through DRAM
    virtual double flops() const = 0;

    // Timing rotates over input sets, so that no two consecutive timed calls
    // read the same inputs at the same addresses or write the same output
    // buffer. Set 0 is the problem itself; the others hold inputs of the same
    // shape and distribution drawn from other seeds, each with its own output
    // (and guard) and reference. select_input_set(s) makes params(),
    // poison_output(), read_output(), reference(), model_reference() and
    // output_guard_intact() refer to set s (it may allocate: call it outside
    // anything timed). bytes() and flops() stay set 0's. Every set shares
    // the problem's weights: weight_params() is the same for all of them.
    virtual int input_sets() const { return 1; }
    virtual void select_input_set(int set) { (void)set; }
};

class OpSpec {
public:
    virtual ~OpSpec() = default;
    virtual std::string name() const = 0;
    virtual std::vector<std::string> shape_symbols() const = 0;
    virtual std::vector<std::string> formats() const = 0;
    virtual std::vector<std::string> models() const = 0;
    // The folder whose params.h a kernel of this op includes.
    virtual std::string params_dir() const = 0;
    // Throws InputError for an unknown model, batch, format or distribution.
    virtual std::unique_ptr<Problem> make_problem(const ProblemRequest& request) = 0;
    // The rounds a candidate timed at `timed` must pass first, each on fresh
    // inputs derived from `seed`: several input and routing distributions at
    // the timed shape, then held-out shapes (another batch, another preset).
    // Round 0 is the timed problem's own distribution.
    virtual std::vector<VerificationCase> verification_cases(const ProblemRequest& timed,
                                                             unsigned long long seed) const = 0;
    // The honest seed kernel whose error on the same inputs bounds a
    // candidate's (a lower-precision shortcut must not pass), per weight format.
    virtual std::string accuracy_seed_path(const std::string& format) const = 0;
};

// The registry of ops. Throws InputError naming the known ops.
std::unique_ptr<OpSpec> make_op_spec(const std::string& name, const cuda::Device& device,
                                     const cuda::Compiler& compiler);
std::vector<std::string> op_names();

} // namespace nightshift::verifier
