// The GPU worker: one process per GPU holding the CUDA context. It reads
// requests from `in` and writes replies to `out` (protocol.h) until shutdown
// or end of input. It is disposable by design: a candidate that faults the
// GPU poisons the context, so the worker reports it and returns, and the
// orchestrator starts another.
#pragma once

#include <iosfwd>

namespace nightshift::worker {

// Returns the process exit code: 0 after shutdown or end of input, 3 after a
// lost CUDA context.
int serve(int gpu, std::istream& in, std::ostream& out);

} // namespace nightshift::worker
