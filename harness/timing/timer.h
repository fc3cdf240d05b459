// The timing protocol (v1), fixed and the same for every kernel:
//   - persisting L2 lines reset once, then before every iteration the L2 is
//     flushed by READING a buffer of 2x its size (see timing_kernels.cu);
//   - CUDA events around each iteration's work only, on the work's stream;
//   - where CUPTI works, the reported samples are instead the GPU's own kernel
//     timestamps (CUPTI activity records, all streams): per iteration, the
//     latest end minus the earliest start of the work's kernels (gaps between
//     them included, the event-to-kernel overhead at both ends not). The
//     events are still taken and returned beside them; without CUPTI, or if
//     it fails at run time, they are the samples.
//   - the GPU is kept busy (a spin kernel first, then flushes that take
//     longer than the host needs to queue the next iteration), so host launch
//     latency never lands between the events;
//   - warm-up iterations, then a fixed repetition count; raw samples kept;
//   - while the iterations run, NVML is read every half millisecond: the
//     lowest SM and memory clocks seen and the union of the reasons the GPU
//     gave for holding its clocks down are kept with the timing, so a
//     throttled measurement is flagged (clocks are only read, never set).
// Two floors come from the same process: the copy bandwidth (device-to-device
// copy, bytes read plus written, cached per device) and the measured speed of
// light, a plain one-pass read of a given number of bytes timed exactly as a
// candidate is.
#pragma once

#include "harness/cuda/buffer.h"
#include "harness/cuda/compiler.h"
#include "harness/cuda/device.h"
#include "harness/cuda/module.h"
#include "harness/cuda/nvml.h"
#include "harness/cuda/stream.h"
#include "harness/timing/stats.h"

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace nightshift::timing {

struct TimingOptions {
    int warmup = 5;
    int repetitions = 50;
};

// A timing and how it was taken. The statistics and `samples_us` come from
// CUPTI's kernel records when `method` is "cupti", from the events when it is
// "events". `event_samples_us` are always the event timings of the same
// iterations, so the two can be reported side by side.
struct Measurement : Stats {
    std::string method;                   // "cupti" or "events"
    std::vector<double> event_samples_us;
    std::string cupti_note;               // why CUPTI was not used, when it was not
    // Clocks while the iterations ran (NVML): the lowest SM and memory clock
    // seen, the union of NVML's clock-event reasons, and how many samples
    // were taken (0: NVML unavailable, clock_note says why).
    int clock_sm_mhz_min = 0, clock_memory_mhz_min = 0;
    unsigned long long clock_reasons = 0;
    int clock_samples = 0;
    std::string clock_note;
    bool throttled() const;
};

struct CopyBandwidth {
    double gb_per_s = 0; // 1e9 bytes per second, read plus written
    bool from_cache = false;
};

class Timer {
public:
    Timer(const cuda::Device& device, const cuda::Compiler& compiler);

    const cuda::Stream& stream() const { return m_stream; }

    // Times `work` (which enqueues one call's kernels on the stream it is
    // given; kernels it forks onto other streams count if it joins them back).
    // With CUPTI, only kernels are timed (not copies or memsets), and work that
    // enqueues no kernel is a cuda::NoCandidateKernelError.
    Measurement time(const std::function<void(CUstream)>& work, const TimingOptions& options);

    // Times two calls interleaved, A B A B, each after its own L2 flush, so a
    // candidate and its baseline see the same GPU state and clocks: the
    // speedup is a ratio measured side by side.
    std::pair<Measurement, Measurement> time_pair(const std::function<void(CUstream)>& a,
                                                  const std::function<void(CUstream)>& b,
                                                  const TimingOptions& options);

    // The measured speed of light for `bytes`: one plain read of that many
    // bytes, best launch shape of a few, timed like time() does.
    Measurement time_read(std::size_t bytes, const TimingOptions& options);

    // Device-to-device copy bandwidth; measured once per device, driver and
    // name, then cached on disk unless `remeasure`.
    CopyBandwidth copy_bandwidth(bool remeasure = false);

    void flush_l2(CUstream stream);

private:
    Measurement measure(const std::function<void(CUstream)>& work, const TimingOptions& options, bool use_cupti);
    void enqueue_read(const cuda::Function& function, const cuda::DeviceBuffer& buffer, std::size_t bytes,
                      unsigned blocks, unsigned threads, CUstream stream);
    double measure_copy_bandwidth();
    // Waits for the stream, reading the clocks into `result` meanwhile.
    void wait_sampling_clocks(Measurement& result);

    const cuda::Device& m_device;
    cuda::ClockReader m_clocks;
    cuda::Stream m_stream;
    std::unique_ptr<cuda::Module> m_module;
    std::unique_ptr<cuda::Function> m_flush;
    std::unique_ptr<cuda::Function> m_sol_read;
    std::unique_ptr<cuda::Function> m_spin;
    cuda::DeviceBuffer m_flush_buffer;
    cuda::DeviceBuffer m_sink;
};

} // namespace nightshift::timing
