// Minimal leveled logging to stderr. The level comes from CANOPY_LOG (error, warn, info, debug)
// or set_log_level(); the default is warn so that command output stays clean.
#pragma once

#include <fmt/format.h>

#include <cstdio>

namespace canopy {

enum class LogLevel { Error = 0, Warn = 1, Info = 2, Debug = 3 };

LogLevel log_level();
void set_log_level(LogLevel level);
void log_write(LogLevel level, const std::string& message);

template <typename... Args>
void log(LogLevel level, fmt::format_string<Args...> format, Args&&... args) {
  if (level <= log_level()) log_write(level, fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace canopy

#define CANOPY_LOG_INFO(...) ::canopy::log(::canopy::LogLevel::Info, __VA_ARGS__)
#define CANOPY_LOG_WARN(...) ::canopy::log(::canopy::LogLevel::Warn, __VA_ARGS__)
#define CANOPY_LOG_DEBUG(...) ::canopy::log(::canopy::LogLevel::Debug, __VA_ARGS__)
