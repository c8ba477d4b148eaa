// A small error type for results the caller must look at (after leveldb's
// Status). Cheap to copy when ok.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace runsync {

class [[nodiscard]] Status {
 public:
  Status() = default;
  static Status ok() { return Status(); }
  static Status error(std::string message) { return Status(std::move(message)); }

  bool is_ok() const { return !message_.has_value(); }
  explicit operator bool() const { return is_ok(); }
  const std::string& message() const {
    static const std::string kEmpty;
    return message_ ? *message_ : kEmpty;
  }

 private:
  explicit Status(std::string m) : message_(std::move(m)) {}
  std::optional<std::string> message_;
};

// The one result type: a value, or an error of type E that says why not.
template <typename T, typename E>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
  Result(E error) : v_(std::move(error)) {}  // NOLINT

  bool is_ok() const { return std::holds_alternative<T>(v_); }
  explicit operator bool() const { return is_ok(); }
  // Only when !is_ok().
  const E& error() const { return std::get<E>(v_); }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &std::get<T>(v_); }
  const T* operator->() const { return &std::get<T>(v_); }
  T& operator*() & { return std::get<T>(v_); }
  const T& operator*() const& { return std::get<T>(v_); }

 private:
  std::variant<T, E> v_;
};

// A value or a Status that is not ok.
template <typename T>
class [[nodiscard]] StatusOr : public Result<T, Status> {
 public:
  using Result<T, Status>::Result;

  Status status() const { return this->is_ok() ? Status::ok() : this->error(); }
  const std::string& message() const { return this->error().message(); }
};

}  // namespace runsync
