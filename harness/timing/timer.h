// The timing protocol (v1), fixed and the same for every kernel:
//   - persisting L2 lines reset once, then before every iteration the L2 is
//     flushed by READING a buffer of 2x its size (see timing_kernels.cu);
//   - CUDA events around each iteration's work only, on the work's stream;
//   - the GPU is kept busy (a spin kernel first, then flushes that take
//     longer than the host needs to queue the next iteration), so host launch
//     latency never lands between the events;
//   - warm-up iterations, then a fixed repetition count; raw samples kept.
// Two floors come from the same process: the copy bandwidth (device-to-device
// copy, bytes read plus written, cached per device) and the measured speed of
// light, a plain one-pass read of a given number of bytes timed exactly as a
// candidate is.
#pragma once

#include "harness/cuda/buffer.h"
#include "harness/cuda/compiler.h"
#include "harness/cuda/device.h"
#include "harness/cuda/module.h"
#include "harness/cuda/stream.h"
#include "harness/timing/stats.h"

#include <functional>
#include <memory>

namespace nightshift::timing {

struct TimingOptions {
    int warmup = 5;
    int repetitions = 50;
};

struct CopyBandwidth {
    double gb_per_s = 0; // 1e9 bytes per second, read plus written
    bool from_cache = false;
};

class Timer {
public:
    Timer(const cuda::Device& device, const cuda::Compiler& compiler);

    const cuda::Stream& stream() const { return m_stream; }

    // Times `work` (which enqueues one call's kernels on the stream it is given).
    Stats time(const std::function<void(CUstream)>& work, const TimingOptions& options);

    // The measured speed of light for `bytes`: one plain read of that many
    // bytes, best launch shape of a few, timed like time() does.
    Stats time_read(std::size_t bytes, const TimingOptions& options);

    // Device-to-device copy bandwidth; measured once per device, driver and
    // name, then cached on disk unless `remeasure`.
    CopyBandwidth copy_bandwidth(bool remeasure = false);

    void flush_l2(CUstream stream);

private:
    void enqueue_read(const cuda::DeviceBuffer& buffer, std::size_t bytes, unsigned blocks, unsigned threads,
                      CUstream stream);
    double measure_copy_bandwidth();

    const cuda::Device& m_device;
    cuda::Stream m_stream;
    std::unique_ptr<cuda::Module> m_module;
    std::unique_ptr<cuda::Function> m_read;
    std::unique_ptr<cuda::Function> m_spin;
    cuda::DeviceBuffer m_flush_buffer;
    cuda::DeviceBuffer m_sink;
};

} // namespace nightshift::timing
