// A stream and its events. Timing code records events on the stream that runs
// the work, so the measured interval is the GPU's, not the host's.
#pragma once

#include "harness/cuda/handles.h"

namespace nightshift::cuda {

class Stream {
public:
    Stream(); // non-blocking with respect to the legacy default stream
    CUstream get() const { return m_stream.get(); }
    void synchronize() const;

private:
    StreamHandle m_stream;
};

class Event {
public:
    Event();
    CUevent get() const { return m_event.get(); }
    void record(const Stream& stream) const;
    void synchronize() const;

private:
    EventHandle m_event;
};

// Milliseconds between two recorded, completed events.
float elapsed_ms(const Event& start, const Event& stop);

} // namespace nightshift::cuda
