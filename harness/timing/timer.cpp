#include "harness/timing/timer.h"

#include "harness/core/paths.h"
#include "harness/cuda/cupti.h"
#include "harness/cuda/driver_api.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <limits>
#include <optional>
#include <thread>

namespace nightshift::timing {
namespace {

constexpr unsigned k_read_threads = 512;
constexpr unsigned long long k_spin_ns = 300'000; // longer than queueing one iteration takes the host

// Entry names in timing_kernels.cu. CUPTI's records are split by them: a flush
// opens each iteration, and neither it nor the spin counts as timed work.
constexpr const char* k_flush_kernel = "nightshift_l2_flush";
constexpr const char* k_sol_read_kernel = "nightshift_sol_read";
constexpr const char* k_spin_kernel = "nightshift_spin";

std::string bandwidth_cache_key(const cuda::DeviceInfo& info) {
    return fmt::format("{}|{}|driver {}", info.name, info.pci_bus_id, info.driver_version);
}

} // namespace

Timer::Timer(const cuda::Device& device, const cuda::Compiler& compiler)
    : m_device(device), m_clocks(device.info().pci_bus_id) {
    auto path = project_root() / "harness" / "timing" / "timing_kernels.cu";
    cuda::CompileRequest request{.name = path.string(),
                                 .source = read_text_file(path),
                                 .arch = device.info().arch(),
                                 .options = {"-DUNROLL=4"},
                                 .include_dirs = {}};
    auto compiled = compiler.compile(request);
    if (!compiled.ok) throw Error("the timing kernels do not compile:\n" + compiled.log);
    m_module = std::make_unique<cuda::Module>(compiled.cubin);
    m_flush = std::make_unique<cuda::Function>(m_module->function(k_flush_kernel));
    m_sol_read = std::make_unique<cuda::Function>(m_module->function(k_sol_read_kernel));
    m_spin = std::make_unique<cuda::Function>(m_module->function(k_spin_kernel));
    m_flush_buffer = cuda::DeviceBuffer(2 * device.info().l2_bytes);
    m_flush_buffer.fill_bytes(0x5a, m_stream.get());
    m_sink = cuda::DeviceBuffer(16);
    m_stream.synchronize();
}

void Timer::enqueue_read(const cuda::Function& function, const cuda::DeviceBuffer& buffer, std::size_t bytes,
                         unsigned blocks, unsigned threads, CUstream stream) {
    CUdeviceptr data = buffer.ptr();
    unsigned long long count16 = bytes / 16;
    CUdeviceptr sink = m_sink.ptr();
    void* args[] = {&data, &count16, &sink};
    cuda::launch(function, {blocks, 1, 1}, {threads, 1, 1}, 0, stream, args);
}

void Timer::flush_l2(CUstream stream) {
    enqueue_read(*m_flush, m_flush_buffer, m_flush_buffer.bytes(),
                 static_cast<unsigned>(m_device.info().sm_count) * 4, k_read_threads, stream);
}

bool Measurement::throttled() const { return cuda::throttled(clock_reasons); }

void Timer::wait_sampling_clocks(Measurement& result) {
    constexpr auto k_interval = std::chrono::microseconds(500);
    auto take = [&] {
        auto sample = m_clocks.sample();
        if (!sample) return;
        result.clock_sm_mhz_min = result.clock_samples ? std::min(result.clock_sm_mhz_min, sample->sm_mhz) : sample->sm_mhz;
        result.clock_memory_mhz_min =
            result.clock_samples ? std::min(result.clock_memory_mhz_min, sample->memory_mhz) : sample->memory_mhz;
        result.clock_reasons |= sample->reasons;
        ++result.clock_samples;
    };
    take();
    // Any error but "not ready" ends the polling; synchronize() then reports it.
    while (cuda::driver().cuStreamQuery(m_stream.get()) == CUDA_ERROR_NOT_READY) {
        std::this_thread::sleep_for(k_interval);
        take();
    }
    m_stream.synchronize();
    if (result.clock_samples == 0) result.clock_note = m_clocks.why_unavailable();
}

Measurement Timer::time(const std::function<void(CUstream)>& work, const TimingOptions& options) {
    return measure(work, options, /*use_cupti=*/true);
}

std::pair<Measurement, Measurement> Timer::time_pair(const std::function<void(CUstream)>& a,
                                                     const std::function<void(CUstream)>& b,
                                                     const TimingOptions& options) {
    // One protocol run of twice the iterations, alternating B and A (A last,
    // so the final output is A's); with an even warm-up count, even samples
    // are B's and odd ones A's.
    int call = 0;
    Measurement both = measure([&](CUstream stream) { (call++ % 2 == 0 ? b : a)(stream); },
                               TimingOptions{.warmup = 2 * options.warmup, .repetitions = 2 * options.repetitions},
                               /*use_cupti=*/true);
    auto split = [&](int parity) {
        std::vector<double> samples, events;
        for (std::size_t i = static_cast<std::size_t>(parity); i < both.samples_us.size(); i += 2) {
            samples.push_back(both.samples_us[i]);
            if (i < both.event_samples_us.size()) events.push_back(both.event_samples_us[i]);
        }
        Measurement m;
        static_cast<Stats&>(m) = summarize(std::move(samples));
        m.method = both.method;
        m.event_samples_us = std::move(events);
        m.cupti_note = both.cupti_note;
        m.clock_sm_mhz_min = both.clock_sm_mhz_min; // the two ran interleaved: the same clocks
        m.clock_memory_mhz_min = both.clock_memory_mhz_min;
        m.clock_reasons = both.clock_reasons;
        m.clock_samples = both.clock_samples;
        m.clock_note = both.clock_note;
        return m;
    };
    return {split(1), split(0)};
}

Measurement Timer::measure(const std::function<void(CUstream)>& work, const TimingOptions& options,
                           bool use_cupti) {
    if (options.repetitions < 1 || options.warmup < 0) throw InputError("timing needs repetitions >= 1");
    NS_CU(cuCtxResetPersistingL2Cache);
    const int total = options.warmup + options.repetitions;
    std::vector<cuda::Event> start(static_cast<std::size_t>(total));
    std::vector<cuda::Event> stop(static_cast<std::size_t>(total));
    CUstream stream = m_stream.get();

    // One collection around every iteration; CUPTI's own start-up cost lands
    // before the spin kernel, outside anything timed.
    Measurement result;
    std::optional<cuda::KernelActivity> activity;
    if (use_cupti) {
        try {
            activity.emplace();
            activity->start();
        } catch (const cuda::CuptiError& e) {
            activity.reset();
            result.cupti_note = e.what();
        }
    } else {
        result.cupti_note = "CUPTI not used for this timing";
    }

    unsigned long long spin_ns = k_spin_ns;
    void* spin_args[] = {&spin_ns};
    cuda::launch(*m_spin, {1, 1, 1}, {1, 1, 1}, 0, stream, spin_args);
    for (int i = 0; i < total; ++i) {
        flush_l2(stream);
        start[static_cast<std::size_t>(i)].record(m_stream);
        work(stream);
        stop[static_cast<std::size_t>(i)].record(m_stream);
    }
    wait_sampling_clocks(result);
    if (activity) NS_CU(cuCtxSynchronize); // kernels the work forked onto other streams

    for (int i = options.warmup; i < total; ++i) {
        auto index = static_cast<std::size_t>(i);
        result.event_samples_us.push_back(1000.0 * cuda::elapsed_ms(start[index], stop[index]));
    }
    std::vector<double> samples = result.event_samples_us;
    result.method = "events";
    if (activity) {
        // A CUPTI failure falls back to the events; work that launched no
        // kernel (NoCandidateKernelError) is the caller's to hear about.
        try {
            std::vector<double> durations =
                cuda::iteration_durations_us(activity->stop(), k_flush_kernel, k_spin_kernel);
            if (durations.size() != static_cast<std::size_t>(total))
                throw cuda::CuptiError(0, fmt::format("CUPTI recorded {} of the {} L2 flushes", durations.size(),
                                                      total));
            samples.assign(durations.begin() + options.warmup, durations.end());
            result.method = "cupti";
        } catch (const cuda::CuptiError& e) {
            result.cupti_note = e.what();
        }
    }
    static_cast<Stats&>(result) = summarize(std::move(samples));
    return result;
}

Measurement Timer::time_read(std::size_t bytes, const TimingOptions& options) {
    bytes = (bytes + 15) / 16 * 16;
    cuda::DeviceBuffer buffer(bytes);
    buffer.fill_bytes(0xa5, m_stream.get());
    Measurement best;
    best.median_us = std::numeric_limits<double>::infinity();
    for (unsigned blocks_per_sm : {2u, 4u, 8u}) {
        unsigned blocks = blocks_per_sm * static_cast<unsigned>(m_device.info().sm_count);
        Measurement s = time(
            [&](CUstream stream) { enqueue_read(*m_sol_read, buffer, bytes, blocks, k_read_threads, stream); },
            options);
        if (s.median_us < best.median_us) best = s;
    }
    return best;
}

double Timer::measure_copy_bandwidth() {
    constexpr std::size_t k_bytes = std::size_t{1} << 30; // far beyond any L2
    cuda::DeviceBuffer source(k_bytes), target(k_bytes);
    source.fill_bytes(0x3c, m_stream.get());
    // A copy is not a kernel: CUPTI's kernel records would not see it.
    Measurement s = measure(
        [&](CUstream stream) { NS_CU(cuMemcpyDtoDAsync, target.ptr(), source.ptr(), k_bytes, stream); },
        TimingOptions{.warmup = 3, .repetitions = 20}, /*use_cupti=*/false);
    return 2.0 * static_cast<double>(k_bytes) / (s.median_us * 1e-6) / 1e9;
}

CopyBandwidth Timer::copy_bandwidth(bool remeasure) {
    auto path = cache_dir() / "copy_bandwidth.json";
    std::string key = bandwidth_cache_key(m_device.info());
    nlohmann::json cache = nlohmann::json::object();
    try {
        if (std::filesystem::exists(path)) cache = nlohmann::json::parse(read_text_file(path));
    } catch (const std::exception&) {
        cache = nlohmann::json::object(); // a damaged cache is re-measured, never trusted
    }
    if (!remeasure && cache.contains(key) && cache[key].is_number()) {
        return CopyBandwidth{.gb_per_s = cache[key].get<double>(), .from_cache = true};
    }
    double gbps = measure_copy_bandwidth();
    cache[key] = gbps;
    std::ofstream(path) << cache.dump(1);
    return CopyBandwidth{.gb_per_s = gbps, .from_cache = false};
}

} // namespace nightshift::timing
