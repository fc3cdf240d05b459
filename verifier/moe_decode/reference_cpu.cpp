#include "verifier/moe_decode/reference_cpu.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <exception>
#include <map>
#include <mutex>
#include <numbers>
#include <thread>

#include <fmt/format.h>

#include "harness/core/error.h"
#include "kernels_seed/moe_decode/params.h"
#include "verifier/rng.h"

namespace nightshift::verifier::moe_decode {

namespace {

// Runs fn(i) for i in [0,n) on up to hardware_concurrency threads. Each item
// is computed by one thread alone, so results are independent of scheduling.
// The first exception is rethrown on the calling thread.
template <typename Fn>
void parallel_for(size_t n, const Fn& fn) {
    const size_t threads = std::min<size_t>(n, std::max(1u, std::thread::hardware_concurrency()));
    if (threads <= 1) {
        for (size_t i = 0; i < n; ++i)
            fn(i);
        return;
    }
    std::atomic<size_t> next{0};
    std::exception_ptr error;
    std::mutex error_mutex;
    auto work = [&] {
        for (size_t i = next++; i < n; i = next++) {
            try {
                fn(i);
            } catch (...) {
                const std::lock_guard lock(error_mutex);
                if (!error) error = std::current_exception();
                next = n;
            }
        }
    };
    std::vector<std::thread> pool;
    for (size_t i = 1; i < threads; ++i)
        pool.emplace_back(work);
    work();
    for (std::thread& thread : pool)
        thread.join();
    if (error) std::rethrow_exception(error);
}

double to_double(uint16_t bits) {
    return static_cast<double>(ns_bf16_to_float(bits));
}

void check_inputs(const Shape& shape, const std::vector<uint16_t>& x, const Routing& routing) {
    if (shape.T < 1 || shape.H < 1 || shape.I < 1 || shape.E < 1 || shape.K < 1)
        throw InputError(fmt::format("reference_cpu: bad shape T={} H={} I={} E={} K={}", shape.T, shape.H, shape.I,
                                     shape.E, shape.K));
    const size_t tokens = static_cast<size_t>(shape.T);
    if (x.size() != tokens * shape.H)
        throw InputError(
            fmt::format("reference_cpu: x has {} elements, expected T*H = {}", x.size(), tokens * shape.H));
    if (routing.ids.size() != tokens * shape.K || routing.weights.size() != tokens * shape.K)
        throw InputError(fmt::format("reference_cpu: routing has {} ids and {} weights, expected T*K = {}",
                                     routing.ids.size(), routing.weights.size(), tokens * shape.K));
    for (size_t slot = 0; slot < routing.ids.size(); ++slot)
        if (routing.ids[slot] < 0 || routing.ids[slot] >= shape.E)
            throw InputError(
                fmt::format("reference_cpu: topk_ids[{}] = {} is outside [0,{})", slot, routing.ids[slot], shape.E));
    apply_activation(shape.activation, 0.0); // throws on an unknown activation
}

void check_expert(const Shape& shape, int expert, const ExpertWeights& weights) {
    const size_t count = static_cast<size_t>(shape.I) * shape.H;
    if (weights.gate.size() != count || weights.up.size() != count || weights.down.size() != count)
        throw InputError(fmt::format("reference_cpu: expert {} has gate/up/down of {}/{}/{} elements, expected "
                                     "I*H = {}",
                                     expert, weights.gate.size(), weights.up.size(), weights.down.size(), count));
}

} // namespace

double apply_activation(int activation, double g) {
    switch (activation) {
    case NS_ACT_SILU:
        return g / (1.0 + std::exp(-g));
    case NS_ACT_GELU_TANH: {
        const double sqrt_2_over_pi = std::sqrt(2.0 / std::numbers::pi);
        return 0.5 * g * (1.0 + std::tanh(sqrt_2_over_pi * (g + 0.044715 * g * g * g)));
    }
    }
    throw InputError(fmt::format("unknown moe_decode activation {}", activation));
}

std::vector<double> reference_cpu(const Shape& shape, const std::vector<uint16_t>& x, const Routing& routing,
                                  const std::function<const ExpertWeights&(int expert)>& weights_of) {
    check_inputs(shape, x, routing);
    const int T = shape.T, H = shape.H, I = shape.I, K = shape.K;

    // Resolve every routed expert up front, serially: the callback need not
    // be thread-safe, and each expert is fetched once however many tokens use it.
    std::vector<const ExpertWeights*> experts(shape.E, nullptr);
    for (int32_t id : routing.ids) {
        if (!experts[id]) {
            experts[id] = &weights_of(id);
            check_expert(shape, id, *experts[id]);
        }
    }

    std::vector<double> x_double(x.size());
    std::transform(x.begin(), x.end(), x_double.begin(), to_double);

    std::vector<double> y(static_cast<size_t>(T) * H, 0.0);
    parallel_for(static_cast<size_t>(T), [&](size_t t) {
        const double* x_t = &x_double[t * H];
        double* y_t = &y[t * H];
        std::vector<double> inter(I);
        for (int k = 0; k < K; ++k) {
            const size_t slot = t * K + k;
            const ExpertWeights& w = *experts[routing.ids[slot]];
            for (int i = 0; i < I; ++i) {
                double g = 0.0, u = 0.0;
                const size_t row = static_cast<size_t>(i) * H;
                for (int h = 0; h < H; ++h) {
                    g += to_double(w.gate[row + h]) * x_t[h];
                    u += to_double(w.up[row + h]) * x_t[h];
                }
                inter[i] = apply_activation(shape.activation, g) * u;
            }
            const double weight = static_cast<double>(routing.weights[slot]);
            for (int h = 0; h < H; ++h) {
                const size_t row = static_cast<size_t>(h) * I;
                double acc = 0.0;
                for (int i = 0; i < I; ++i)
                    acc += to_double(w.down[row + i]) * inter[i];
                y_t[h] += weight * acc;
            }
        }
    });
    return y;
}

std::vector<double> reference_cpu(const Shape& shape, unsigned long long seed, const std::vector<uint16_t>& x,
                                  const Routing& routing) {
    check_inputs(shape, x, routing);
    std::vector<int> routed(routing.ids.begin(), routing.ids.end());
    std::sort(routed.begin(), routed.end());
    routed.erase(std::unique(routed.begin(), routed.end()), routed.end());

    // Generating an expert is 3*I*H hashes: for the large presets that is
    // the bulk of the reference's time, so experts are generated in parallel.
    std::vector<ExpertWeights> generated(routed.size());
    parallel_for(routed.size(), [&](size_t j) { generated[j] = make_expert_weights(shape, seed, routed[j]); });

    std::vector<const ExpertWeights*> by_expert(shape.E, nullptr);
    for (size_t j = 0; j < routed.size(); ++j)
        by_expert[routed[j]] = &generated[j];
    return reference_cpu(shape, x, routing, [&](int expert) -> const ExpertWeights& { return *by_expert[expert]; });
}

} // namespace nightshift::verifier::moe_decode
