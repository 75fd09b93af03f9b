// The values a chat template computes with, and the Python semantics Jinja
// gives them: str() and repr(), truth, ==, <, arithmetic, indexing, slicing,
// iteration and json.dumps. Internal to data/chat_template.cpp.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace muse::data::jinja {

// A problem found while evaluating; the statement being rendered adds the
// template's origin and line.
class EvalError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct Value;
using List = std::vector<Value>;
// Keys keep their insertion order, as in a Python dict.
using Dict = std::vector<std::pair<std::string, Value>>;

// The arguments of a call: positional, then keyword.
struct Call {
  std::vector<Value> args;
  std::vector<std::pair<std::string, Value>> kwargs;
};
using Function = std::function<Value(const Call&)>;

struct Value {
  enum class Kind {
    kUndefined,
    kNone,
    kBool,
    kInt,
    kFloat,
    kString,
    kList,
    kTuple,
    kDict,
    kNamespace,
    kFunction
  };
  Kind kind = Kind::kUndefined;
  bool boolean = false;
  int64_t integer = 0;
  double real = 0.0;
  std::string text;  // a string's UTF-8, or the name an undefined value was looked up by
  std::shared_ptr<const List> items;  // list or tuple
  // A list that stands for a Python generator (what selectattr, map, ...
  // return): always true, no len(), no printing.
  bool generator = false;
  // A dict (never changed once built) or a namespace (changed by `set ns.x = ...`).
  std::shared_ptr<Dict> dict;
  std::shared_ptr<const Function> function;

  static Value undefined(std::string name);
  static Value none();
  static Value from_bool(bool b);
  static Value from_int(int64_t i);
  static Value from_float(double d);
  static Value from_string(std::string s);
  static Value from_list(List list);
  static Value from_tuple(List list);
  static Value from_generator(List list);
  static Value from_dict(Dict dict);
  static Value make_namespace(Dict attributes);
  static Value from_function(Function f);

  bool is_undefined() const { return kind == Kind::kUndefined; }
  bool is_none() const { return kind == Kind::kNone; }
  bool is_string() const { return kind == Kind::kString; }
  bool is_number() const {
    return kind == Kind::kInt || kind == Kind::kFloat || kind == Kind::kBool;
  }
  bool is_sequence() const { return kind == Kind::kList || kind == Kind::kTuple; }
  bool is_mapping() const { return kind == Kind::kDict; }
};

// Python's type name of a value, for error messages ("str", "NoneType").
std::string type_name(const Value& v);
// Jinja's error for using an undefined value: "'x' is undefined".
[[noreturn]] void fail_undefined(const Value& v);

bool truthy(const Value& v);
// str(v), as `{{ v }}` prints it; undefined prints as "".
std::string to_str(const Value& v);
// repr(v), as str() of a list or dict shows its items.
std::string repr(const Value& v);
bool equals(const Value& a, const Value& b);
// a < b; throws for types Python cannot order.
bool less(const Value& a, const Value& b);

Value add(const Value& a, const Value& b);
Value subtract(const Value& a, const Value& b);
Value multiply(const Value& a, const Value& b);
Value divide(const Value& a, const Value& b);
Value floor_divide(const Value& a, const Value& b);
Value modulo(const Value& a, const Value& b);
Value power(const Value& a, const Value& b);
Value negate(const Value& a);
bool contains(const Value& container, const Value& item);

// `obj[key]` as Jinja's sandbox does it: an item, else an attribute (a
// method), else undefined.
Value subscript(const Value& obj, const Value& key);
// `obj.name`: an attribute (a method), else an item, else undefined.
Value attribute(const Value& obj, const std::string& name);
// obj[start:stop:step]; missing bounds are nullopt.
Value slice(const Value& obj, std::optional<int64_t> start, std::optional<int64_t> stop,
            std::optional<int64_t> step);
// The items a for loop visits: a list's items, a dict's keys, a string's
// characters; undefined gives none.
List iterate(const Value& v);
// len(v); undefined has length 0.
int64_t length(const Value& v);

struct JsonOptions {
  bool ensure_ascii = false;
  std::optional<std::string> indent;  // nullopt: one line
  std::string item_separator = ", ";
  std::string key_separator = ": ";
  bool sort_keys = false;
};
// json.dumps(v, ...) as transformers' tojson filter calls it.
std::string to_json(const Value& v, const JsonOptions& options);
Value from_json(const nlohmann::ordered_json& j);

// UTF-8 <-> code points; invalid UTF-8 is an EvalError.
std::u32string decode_utf8(std::string_view s);
std::string encode_utf8(std::u32string_view s);
// Python's str.isspace() for one code point.
bool is_space(char32_t c);

}  // namespace muse::data::jinja
