// The filters, tests, methods and global functions chat templates may use,
// with the behaviour of Jinja and of transformers' template environment.
// Internal to data/chat_template.cpp.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "data/chat_template_value.h"

namespace muse::data::jinja {

// The filter `name` (its first argument is the filtered value), or nullptr.
const Function* find_filter(std::string_view name);
// The test `name` (its first argument is the tested value; it returns a
// bool), or nullptr.
const Function* find_test(std::string_view name);
// obj's method `name` (str.strip, dict.get, ...) bound to obj, if it has one.
std::optional<Value> bound_method(const Value& obj, const std::string& name);
// The global functions transformers gives every template: raise_exception,
// strftime_now, namespace, dict, and Jinja's range.
Dict global_functions();

// The message of raise_exception(): the renderer reports it as raised by the template.
class TemplateRaised : public EvalError {
 public:
  using EvalError::EvalError;
};

// Arguments of a builtin, bound by position or keyword as Python binds them.
class Arguments {
 public:
  // `names` in signature order; the first `required` are mandatory.
  Arguments(std::string_view function, const Call& call, std::initializer_list<const char*> names,
            size_t required);
  bool has(size_t i) const { return values_[i].has_value(); }
  const Value& get(size_t i) const;
  Value get_or(size_t i, Value fallback) const { return has(i) ? *values_[i] : fallback; }

 private:
  std::string function_;
  std::vector<std::string> names_;
  std::vector<std::optional<Value>> values_;
};

}  // namespace muse::data::jinja
