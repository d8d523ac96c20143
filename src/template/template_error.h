// The error a chat template raises itself, through raise_exception(message).
//
// Templates use it to reject conversations they cannot format ("Conversation roles must alternate
// user/assistant/user/assistant/..."); the message is the template author's and is meant for the
// user, so what() is exactly that message, as jinja2's TemplateError prints it.
#pragma once

#include <string>

#include "core/error.h"

namespace canopy {

class ChatTemplateRaised : public Error {
 public:
  explicit ChatTemplateRaised(const std::string& message) : Error(message) {}
};

}  // namespace canopy
