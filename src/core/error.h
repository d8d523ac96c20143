// Errors that name their cause.
//
// Every failure a user can cause (bad path, malformed file, bad request, prompt too long, out of
// KV memory) is thrown as canopy::Error with a message that says what was wrong and where. The CLI
// and the server catch it at the boundary; nothing below the API layer prints or exits.
#pragma once

#include <fmt/format.h>

#include <stdexcept>
#include <string>

namespace canopy {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

// A request or input that is well-formed but asks for more than the engine can give
// (prompt longer than the context, KV memory exhausted). Callers may reject just that request.
class CapacityError : public Error {
 public:
  explicit CapacityError(const std::string& what) : Error(what) {}
};

template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> format, Args&&... args) {
  throw Error(fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace canopy

// CANOPY_CHECK(cond, "message {}", args...): throws canopy::Error when cond is false.
// For conditions a user (file, request, flag) can violate.
#define CANOPY_CHECK(cond, ...)                  \
  do {                                           \
    if (!(cond)) ::canopy::fail(__VA_ARGS__);    \
  } while (0)

// CANOPY_ASSERT(cond): an internal invariant; a failure is a bug in canopy, reported with the
// location so it can be fixed, never undefined behaviour.
#define CANOPY_ASSERT(cond)                                                                       \
  do {                                                                                            \
    if (!(cond))                                                                                  \
      ::canopy::fail("internal error: {} failed at {}:{} (please report this)", #cond, __FILE__, \
                     __LINE__);                                                                   \
  } while (0)
