#include "harness/cuda/stream.h"

#include "harness/cuda/driver_api.h"

namespace nightshift::cuda {

Stream::Stream() {
    CUstream stream = nullptr;
    NS_CU(cuStreamCreate, &stream, CU_STREAM_NON_BLOCKING);
    m_stream.reset(stream);
}

void Stream::synchronize() const { NS_CU(cuStreamSynchronize, m_stream.get()); }

Event::Event() {
    CUevent event = nullptr;
    NS_CU(cuEventCreate, &event, CU_EVENT_DEFAULT);
    m_event.reset(event);
}

void Event::record(const Stream& stream) const { NS_CU(cuEventRecord, m_event.get(), stream.get()); }

void Event::synchronize() const { NS_CU(cuEventSynchronize, m_event.get()); }

float elapsed_ms(const Event& start, const Event& stop) {
    float ms = 0.0f;
    NS_CU(cuEventElapsedTime, &ms, start.get(), stop.get());
    return ms;
}

} // namespace nightshift::cuda
