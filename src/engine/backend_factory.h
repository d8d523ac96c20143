// Picks the backend for a device name ("cpu", "cuda"), with a clear error for a device this
// build cannot run on.
#pragma once

#include <memory>
#include <string>

#include "backend/backend.h"

namespace canopy {

std::unique_ptr<Backend> make_backend(const std::string& device, int threads);

}  // namespace canopy
