#include "core/json_text.h"

#include <string>

namespace runsync {

Status refuse_nul_byte(std::string_view body, std::string_view kind) {
  const std::size_t at = body.find('\0');
  if (at == std::string_view::npos) return Status::ok();
  return Status::error("body is not " + std::string(kind) + ": it holds a NUL byte at offset " +
                       std::to_string(at));
}

}  // namespace runsync
