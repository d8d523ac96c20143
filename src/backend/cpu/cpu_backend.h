// The CPU backend: f32 everywhere, all cores (OpenMP). The reference the GPU backend is tested
// against, and the backend CI runs end to end.
#pragma once

#include <memory>

#include "backend/backend.h"

namespace canopy {

// threads: OpenMP threads for this process (0 keeps OpenMP's default, usually every core).
std::unique_ptr<Backend> make_cpu_backend(int threads = 0);

}  // namespace canopy
