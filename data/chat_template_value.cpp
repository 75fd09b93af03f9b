#include "data/chat_template_value.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>

#include "data/chat_template_builtins.h"

namespace muse::data::jinja {

namespace {

using Kind = Value::Kind;

// Longer results than this are refused: `'x' * 10**9` must not exhaust memory.
constexpr size_t kMaxResultBytes = size_t{1} << 26;

bool is_integral(const Value& v) {
  return v.kind == Kind::kInt || v.kind == Kind::kBool;
}
int64_t as_int(const Value& v) {
  return v.kind == Kind::kBool ? int64_t{v.boolean} : v.integer;
}
double as_float(const Value& v) {
  return v.kind == Kind::kFloat ? v.real : static_cast<double>(as_int(v));
}

[[noreturn]] void fail_operands(std::string_view op, const Value& a, const Value& b) {
  throw EvalError("unsupported operand type(s) for " + std::string(op) + ": '" + type_name(a) +
                  "' and '" + type_name(b) + "'");
}

void check_defined(const Value& a, const Value& b) {
  if (a.is_undefined()) fail_undefined(a);
  if (b.is_undefined()) fail_undefined(b);
}

[[noreturn]] void fail_overflow() {
  throw EvalError("integer overflow (only 64-bit integers are supported)");
}
int64_t checked_add(int64_t a, int64_t b) {
  int64_t sum = 0;
  if (__builtin_add_overflow(a, b, &sum)) fail_overflow();
  return sum;
}
int64_t checked_subtract(int64_t a, int64_t b) {
  int64_t difference = 0;
  if (__builtin_sub_overflow(a, b, &difference)) fail_overflow();
  return difference;
}
int64_t checked_multiply(int64_t a, int64_t b) {
  int64_t product = 0;
  if (__builtin_mul_overflow(a, b, &product)) fail_overflow();
  return product;
}

// Python's repr() of a float: the shortest digits that read back the same,
// in fixed notation for exponents -4 <= e < 16, else d.ddde+XX.
std::string float_repr(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
  char buffer[64];
  const auto result =
      std::to_chars(buffer, buffer + sizeof buffer, d, std::chars_format::scientific);
  std::string scientific(buffer, result.ptr);
  std::string sign;
  if (scientific[0] == '-') {
    sign = "-";
    scientific.erase(0, 1);
  }
  const size_t e = scientific.find('e');
  const int exponent = std::stoi(scientific.substr(e + 1));
  std::string digits = scientific.substr(0, e);
  digits.erase(std::remove(digits.begin(), digits.end(), '.'), digits.end());
  const int point = exponent + 1;  // digits are 0.DIGITS * 10^point
  const int n_digits = static_cast<int>(digits.size());
  if (point > -4 && point <= 16) {
    if (point <= 0) return sign + "0." + std::string(-point, '0') + digits;
    if (point >= n_digits) return sign + digits + std::string(point - n_digits, '0') + ".0";
    return sign + digits.substr(0, point) + "." + digits.substr(point);
  }
  std::string out = sign + digits.substr(0, 1);
  if (n_digits > 1) out += "." + digits.substr(1);
  const std::string magnitude = std::to_string(std::abs(exponent));
  return out + (exponent < 0 ? "e-" : "e+") + (magnitude.size() < 2 ? "0" : "") + magnitude;
}

std::string hex(uint32_t c, int width) {
  static const char kDigits[] = "0123456789abcdef";
  std::string out(width, '0');
  for (int i = width - 1; i >= 0; --i, c >>= 4)
    out[i] = kDigits[c & 15];
  return out;
}

// Code points Python's repr() escapes: controls, separators and format characters.
bool is_unprintable(char32_t c) {
  return c < 0x20 || (c >= 0x7f && c <= 0xa0) || c == 0xad || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200f) || (c >= 0x2028 && c <= 0x202f) ||
         (c >= 0x205f && c <= 0x2064) || c == 0x3000 || c == 0xfeff;
}

std::string string_repr(const std::string& s) {
  const bool has_single = s.find('\'') != std::string::npos;
  const char quote = has_single && s.find('"') == std::string::npos ? '"' : '\'';
  std::string out(1, quote);
  for (const char32_t c : decode_utf8(s)) {
    if (c == static_cast<char32_t>(quote) || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (is_unprintable(c)) {
      out += c < 0x100 ? "\\x" + hex(c, 2) : "\\u" + hex(c, 4);
    } else {
      out += encode_utf8(std::u32string_view(&c, 1));
    }
  }
  return out + quote;
}

std::string json_string(const std::string& s, bool ensure_ascii) {
  std::string out = "\"";
  for (const char32_t c : decode_utf8(s)) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      default:
        if (c < 0x20 || (ensure_ascii && c >= 0x7f && c < 0x10000)) {
          out += "\\u" + hex(c, 4);
        } else if (ensure_ascii && c >= 0x10000) {
          const char32_t v = c - 0x10000;
          out += "\\u" + hex(0xd800 + (v >> 10), 4) + "\\u" + hex(0xdc00 + (v & 0x3ff), 4);
        } else {
          out += encode_utf8(std::u32string_view(&c, 1));
        }
    }
  }
  return out + "\"";
}

void dump_json(const Value& v, const JsonOptions& options, int depth, std::string& out) {
  const auto newline = [&](int level) {
    if (!options.indent) return;
    out += '\n';
    for (int i = 0; i < level; ++i)
      out += *options.indent;
  };
  switch (v.kind) {
    case Kind::kNone:
      out += "null";
      return;
    case Kind::kBool:
      out += v.boolean ? "true" : "false";
      return;
    case Kind::kInt:
      out += std::to_string(v.integer);
      return;
    case Kind::kFloat:
      if (std::isnan(v.real)) {
        out += "NaN";
      } else if (std::isinf(v.real)) {
        out += v.real > 0 ? "Infinity" : "-Infinity";
      } else {
        out += float_repr(v.real);
      }
      return;
    case Kind::kString:
      out += json_string(v.text, options.ensure_ascii);
      return;
    case Kind::kList:
    case Kind::kTuple: {
      if (v.generator) break;
      if (v.items->empty()) {
        out += "[]";
        return;
      }
      out += '[';
      for (size_t i = 0; i < v.items->size(); ++i) {
        if (i > 0) out += options.item_separator;
        newline(depth + 1);
        dump_json((*v.items)[i], options, depth + 1, out);
      }
      newline(depth);
      out += ']';
      return;
    }
    case Kind::kDict: {
      if (v.dict->empty()) {
        out += "{}";
        return;
      }
      std::vector<const std::pair<std::string, Value>*> entries;
      for (const auto& entry : *v.dict)
        entries.push_back(&entry);
      if (options.sort_keys) {
        std::stable_sort(entries.begin(), entries.end(),
                         [](const auto* a, const auto* b) { return a->first < b->first; });
      }
      out += '{';
      for (size_t i = 0; i < entries.size(); ++i) {
        if (i > 0) out += options.item_separator;
        newline(depth + 1);
        out += json_string(entries[i]->first, options.ensure_ascii) + options.key_separator;
        dump_json(entries[i]->second, options, depth + 1, out);
      }
      newline(depth);
      out += '}';
      return;
    }
    default:
      break;
  }
  throw EvalError("Object of type " + type_name(v) + " is not JSON serializable");
}

// Python's slice.indices(): the first index, the bound and the step for a
// sequence of `size` items.
std::vector<int64_t> slice_indices(int64_t size, std::optional<int64_t> start,
                                   std::optional<int64_t> stop, std::optional<int64_t> step) {
  const int64_t by = step.value_or(1);
  if (by == 0) throw EvalError("slice step cannot be zero");
  const auto clamp = [&](std::optional<int64_t> index, int64_t if_missing) {
    if (!index) return if_missing;
    int64_t i = *index < 0 ? *index + size : *index;
    if (by > 0) return std::clamp<int64_t>(i, 0, size);
    return std::clamp<int64_t>(i, -1, size - 1);
  };
  const int64_t first = clamp(start, by > 0 ? 0 : size - 1);
  const int64_t bound = clamp(stop, by > 0 ? size : -1);
  std::vector<int64_t> indices;
  for (int64_t i = first; by > 0 ? i < bound : i > bound; i += by)
    indices.push_back(i);
  return indices;
}

}  // namespace

Value Value::undefined(std::string message) {
  Value v;
  v.text = std::move(message);
  return v;
}
Value Value::none() {
  Value v;
  v.kind = Kind::kNone;
  return v;
}
Value Value::from_bool(bool b) {
  Value v;
  v.kind = Kind::kBool;
  v.boolean = b;
  return v;
}
Value Value::from_int(int64_t i) {
  Value v;
  v.kind = Kind::kInt;
  v.integer = i;
  return v;
}
Value Value::from_float(double d) {
  Value v;
  v.kind = Kind::kFloat;
  v.real = d;
  return v;
}
Value Value::from_string(std::string s) {
  Value v;
  v.kind = Kind::kString;
  v.text = std::move(s);
  return v;
}
Value Value::from_list(List list) {
  Value v;
  v.kind = Kind::kList;
  v.items = std::make_shared<const List>(std::move(list));
  return v;
}
Value Value::from_tuple(List list) {
  Value v = from_list(std::move(list));
  v.kind = Kind::kTuple;
  return v;
}
Value Value::from_generator(List list) {
  Value v = from_list(std::move(list));
  v.generator = true;
  return v;
}
Value Value::from_dict(Dict dict) {
  Value v;
  v.kind = Kind::kDict;
  v.dict = std::make_shared<Dict>(std::move(dict));
  return v;
}
Value Value::make_namespace(Dict attributes) {
  Value v = from_dict(std::move(attributes));
  v.kind = Kind::kNamespace;
  return v;
}
Value Value::from_function(Function f) {
  Value v;
  v.kind = Kind::kFunction;
  v.function = std::make_shared<const Function>(std::move(f));
  return v;
}

std::string type_name(const Value& v) {
  switch (v.kind) {
    case Kind::kUndefined:
      return "Undefined";
    case Kind::kNone:
      return "NoneType";
    case Kind::kBool:
      return "bool";
    case Kind::kInt:
      return "int";
    case Kind::kFloat:
      return "float";
    case Kind::kString:
      return "str";
    case Kind::kList:
      return v.generator ? "generator" : "list";
    case Kind::kTuple:
      return "tuple";
    case Kind::kDict:
      return "dict";
    case Kind::kNamespace:
      return "Namespace";
    case Kind::kFunction:
      return "function";
  }
  return "?";
}

void fail_undefined(const Value& v) {
  throw EvalError(v.text);
}

bool truthy(const Value& v) {
  switch (v.kind) {
    case Kind::kUndefined:
    case Kind::kNone:
      return false;
    case Kind::kBool:
      return v.boolean;
    case Kind::kInt:
      return v.integer != 0;
    case Kind::kFloat:
      return v.real != 0.0;
    case Kind::kString:
      return !v.text.empty();
    case Kind::kList:
    case Kind::kTuple:
      return v.generator || !v.items->empty();
    case Kind::kDict:
      return !v.dict->empty();
    case Kind::kNamespace:
    case Kind::kFunction:
      return true;
  }
  return false;
}

std::string to_str(const Value& v) {
  switch (v.kind) {
    case Kind::kUndefined:
      return "";
    case Kind::kString:
      return v.text;
    default:
      return repr(v);
  }
}

std::string repr(const Value& v) {
  switch (v.kind) {
    case Kind::kUndefined:
      return "";
    case Kind::kNone:
      return "None";
    case Kind::kBool:
      return v.boolean ? "True" : "False";
    case Kind::kInt:
      return std::to_string(v.integer);
    case Kind::kFloat:
      return float_repr(v.real);
    case Kind::kString:
      return string_repr(v.text);
    case Kind::kList:
    case Kind::kTuple: {
      if (v.generator) break;
      const bool tuple = v.kind == Kind::kTuple;
      std::string out = tuple ? "(" : "[";
      for (size_t i = 0; i < v.items->size(); ++i) {
        if (i > 0) out += ", ";
        out += repr((*v.items)[i]);
      }
      if (tuple && v.items->size() == 1) out += ",";
      return out + (tuple ? ")" : "]");
    }
    case Kind::kDict: {
      std::string out = "{";
      for (size_t i = 0; i < v.dict->size(); ++i) {
        if (i > 0) out += ", ";
        out += string_repr((*v.dict)[i].first) + ": " + repr((*v.dict)[i].second);
      }
      return out + "}";
    }
    default:
      break;
  }
  throw EvalError("printing a " + type_name(v) + " is not supported (Python prints its address)");
}

bool equals(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (is_integral(a) && is_integral(b)) return as_int(a) == as_int(b);
    return as_float(a) == as_float(b);
  }
  if (a.kind != b.kind) return false;
  switch (a.kind) {
    case Kind::kUndefined:
    case Kind::kNone:
      return true;
    case Kind::kString:
      return a.text == b.text;
    case Kind::kList:
    case Kind::kTuple:
      if (a.generator || b.generator) return a.items == b.items;
      return std::equal(a.items->begin(), a.items->end(), b.items->begin(), b.items->end(), equals);
    case Kind::kDict:
      if (a.dict->size() != b.dict->size()) return false;
      for (const auto& [key, value] : *a.dict) {
        const auto found =
            std::find_if(b.dict->begin(), b.dict->end(),
                         [&wanted = key](const auto& entry) { return entry.first == wanted; });
        if (found == b.dict->end() || !equals(value, found->second)) return false;
      }
      return true;
    case Kind::kNamespace:
      return a.dict == b.dict;
    case Kind::kFunction:
      return a.function == b.function;
    default:
      return false;
  }
}

bool less(const Value& a, const Value& b) {
  check_defined(a, b);
  if (a.is_number() && b.is_number()) {
    if (is_integral(a) && is_integral(b)) return as_int(a) < as_int(b);
    return as_float(a) < as_float(b);
  }
  if (a.is_string() && b.is_string()) return a.text < b.text;  // UTF-8 bytes order as code points
  if (a.is_sequence() && a.kind == b.kind) {
    return std::lexicographical_compare(a.items->begin(), a.items->end(), b.items->begin(),
                                        b.items->end(), less);
  }
  throw EvalError("'<' not supported between instances of '" + type_name(a) + "' and '" +
                  type_name(b) + "'");
}

Value add(const Value& a, const Value& b) {
  check_defined(a, b);
  if (a.is_number() && b.is_number()) {
    if (is_integral(a) && is_integral(b)) {
      return Value::from_int(checked_add(as_int(a), as_int(b)));
    }
    return Value::from_float(as_float(a) + as_float(b));
  }
  if (a.is_string() && b.is_string()) return Value::from_string(a.text + b.text);
  if (a.is_sequence() && a.kind == b.kind && !a.generator && !b.generator) {
    List joined = *a.items;
    joined.insert(joined.end(), b.items->begin(), b.items->end());
    return a.kind == Kind::kTuple ? Value::from_tuple(std::move(joined))
                                  : Value::from_list(std::move(joined));
  }
  fail_operands("+", a, b);
}

Value subtract(const Value& a, const Value& b) {
  check_defined(a, b);
  if (!a.is_number() || !b.is_number()) fail_operands("-", a, b);
  if (is_integral(a) && is_integral(b)) {
    return Value::from_int(checked_subtract(as_int(a), as_int(b)));
  }
  return Value::from_float(as_float(a) - as_float(b));
}

Value multiply(const Value& a, const Value& b) {
  check_defined(a, b);
  if (a.is_number() && b.is_number()) {
    if (is_integral(a) && is_integral(b)) {
      return Value::from_int(checked_multiply(as_int(a), as_int(b)));
    }
    return Value::from_float(as_float(a) * as_float(b));
  }
  const bool repeat_a = (a.is_string() || a.is_sequence()) && is_integral(b);
  const bool repeat_b = (b.is_string() || b.is_sequence()) && is_integral(a);
  if (!repeat_a && !repeat_b) fail_operands("*", a, b);
  const Value& repeated = repeat_a ? a : b;
  const int64_t times = std::max<int64_t>(0, as_int(repeat_a ? b : a));
  const size_t unit = repeated.is_string() ? repeated.text.size() : repeated.items->size();
  if (unit > 0 && static_cast<uint64_t>(times) > kMaxResultBytes / unit) {
    throw EvalError("repetition result too large");
  }
  if (repeated.is_string()) {
    std::string out;
    for (int64_t i = 0; i < times; ++i)
      out += repeated.text;
    return Value::from_string(std::move(out));
  }
  List out;
  for (int64_t i = 0; i < times; ++i)
    out.insert(out.end(), repeated.items->begin(), repeated.items->end());
  return repeated.kind == Kind::kTuple ? Value::from_tuple(std::move(out))
                                       : Value::from_list(std::move(out));
}

Value divide(const Value& a, const Value& b) {
  check_defined(a, b);
  if (!a.is_number() || !b.is_number()) fail_operands("/", a, b);
  if (as_float(b) == 0.0) throw EvalError("division by zero");
  return Value::from_float(as_float(a) / as_float(b));
}

Value floor_divide(const Value& a, const Value& b) {
  check_defined(a, b);
  if (!a.is_number() || !b.is_number()) fail_operands("//", a, b);
  if (as_float(b) == 0.0) throw EvalError("division by zero");
  if (is_integral(a) && is_integral(b)) {
    const int64_t x = as_int(a), y = as_int(b);
    if (x == std::numeric_limits<int64_t>::min() && y == -1) fail_overflow();
    int64_t q = x / y;
    if ((x % y != 0) && ((x < 0) != (y < 0))) --q;
    return Value::from_int(q);
  }
  return Value::from_float(std::floor(as_float(a) / as_float(b)));
}

Value modulo(const Value& a, const Value& b) {
  check_defined(a, b);
  if (a.is_string()) throw EvalError("printf-style string formatting ('%') is not supported");
  if (!a.is_number() || !b.is_number()) fail_operands("%", a, b);
  if (as_float(b) == 0.0) throw EvalError("modulo by zero");
  if (is_integral(a) && is_integral(b)) {
    const int64_t x = as_int(a), y = as_int(b);
    if (y == -1) return Value::from_int(0);
    int64_t r = x % y;
    if (r != 0 && ((r < 0) != (y < 0))) r += y;
    return Value::from_int(r);
  }
  const double y = as_float(b);
  double r = std::fmod(as_float(a), y);
  if (r != 0.0 && ((r < 0) != (y < 0))) r += y;
  return Value::from_float(r);
}

Value power(const Value& a, const Value& b) {
  check_defined(a, b);
  if (!a.is_number() || !b.is_number()) fail_operands("**", a, b);
  if (is_integral(a) && is_integral(b) && as_int(b) >= 0) {
    int64_t base = as_int(a), exponent = as_int(b), result = 1;
    while (exponent > 0) {  // by squaring: a huge exponent overflows early, never loops long
      if (exponent & 1) result = checked_multiply(result, base);
      exponent >>= 1;
      if (exponent > 0) base = checked_multiply(base, base);
    }
    return Value::from_int(result);
  }
  return Value::from_float(std::pow(as_float(a), as_float(b)));
}

Value negate(const Value& a) {
  if (a.is_undefined()) fail_undefined(a);
  if (a.kind == Kind::kFloat) return Value::from_float(-a.real);
  if (!is_integral(a)) throw EvalError("bad operand type for unary -: '" + type_name(a) + "'");
  return Value::from_int(checked_subtract(0, as_int(a)));
}

bool contains(const Value& container, const Value& item) {
  switch (container.kind) {
    case Kind::kUndefined:
      return false;
    case Kind::kString:
      if (!item.is_string()) {
        throw EvalError("'in <string>' requires string as left operand, not " + type_name(item));
      }
      return container.text.find(item.text) != std::string::npos;
    case Kind::kList:
    case Kind::kTuple:
      return std::any_of(container.items->begin(), container.items->end(),
                         [&](const Value& v) { return equals(v, item); });
    case Kind::kDict:
      return item.is_string() &&
             std::any_of(container.dict->begin(), container.dict->end(),
                         [&](const auto& entry) { return entry.first == item.text; });
    default:
      throw EvalError("argument of type '" + type_name(container) + "' is not iterable");
  }
}

namespace {

std::optional<Value> find_key(const Value& obj, const std::string& key) {
  for (const auto& [name, value] : *obj.dict) {
    if (name == key) return value;
  }
  return std::nullopt;
}

Value missing_attribute(const Value& obj, const std::string& name) {
  return Value::undefined("'" + type_name(obj) + " object' has no attribute '" + name + "'");
}

}  // namespace

Value subscript(const Value& obj, const Value& key) {
  if (obj.is_undefined()) fail_undefined(obj);
  if (obj.generator) throw EvalError("'generator' object is not subscriptable");
  if ((obj.is_mapping() || obj.kind == Kind::kNamespace) && key.is_string()) {
    if (auto found = find_key(obj, key.text)) return *found;
  }
  if ((obj.is_sequence() || obj.is_string()) && is_integral(key)) {
    const int64_t size = obj.is_string() ? length(obj) : static_cast<int64_t>(obj.items->size());
    const int64_t index = as_int(key) < 0 ? as_int(key) + size : as_int(key);
    if (index < 0 || index >= size) {
      return Value::undefined("'" + type_name(obj) + " object' has no element " +
                              std::to_string(as_int(key)));
    }
    if (obj.is_sequence()) return (*obj.items)[index];
    return Value::from_string(encode_utf8(decode_utf8(obj.text).substr(index, 1)));
  }
  if (key.is_string()) {
    if (auto method = bound_method(obj, key.text)) return *method;
    return missing_attribute(obj, key.text);
  }
  return Value::undefined("'" + type_name(obj) + " object' has no element " + repr(key));
}

Value attribute(const Value& obj, const std::string& name) {
  if (obj.is_undefined()) fail_undefined(obj);
  if (auto method = bound_method(obj, name)) return *method;
  if (obj.is_mapping() || obj.kind == Kind::kNamespace) {
    if (auto found = find_key(obj, name)) return *found;
  }
  return missing_attribute(obj, name);
}

Value slice(const Value& obj, std::optional<int64_t> start, std::optional<int64_t> stop,
            std::optional<int64_t> step) {
  if (obj.is_undefined()) fail_undefined(obj);
  if (obj.is_string()) {
    const std::u32string text = decode_utf8(obj.text);
    std::u32string out;
    for (const int64_t i : slice_indices(static_cast<int64_t>(text.size()), start, stop, step)) {
      out += text[i];
    }
    return Value::from_string(encode_utf8(out));
  }
  if (!obj.is_sequence() || obj.generator)
    throw EvalError("'" + type_name(obj) + "' object is not subscriptable");
  List out;
  for (const int64_t i :
       slice_indices(static_cast<int64_t>(obj.items->size()), start, stop, step)) {
    out.push_back((*obj.items)[i]);
  }
  return obj.kind == Kind::kTuple ? Value::from_tuple(std::move(out))
                                  : Value::from_list(std::move(out));
}

List iterate(const Value& v) {
  switch (v.kind) {
    case Kind::kUndefined:
      return {};
    case Kind::kList:
    case Kind::kTuple:
      return *v.items;
    case Kind::kDict: {
      List keys;
      for (const auto& entry : *v.dict)
        keys.push_back(Value::from_string(entry.first));
      return keys;
    }
    case Kind::kString: {
      List characters;
      for (const char32_t c : decode_utf8(v.text)) {
        characters.push_back(Value::from_string(encode_utf8(std::u32string_view(&c, 1))));
      }
      return characters;
    }
    default:
      throw EvalError("'" + type_name(v) + "' object is not iterable");
  }
}

int64_t length(const Value& v) {
  switch (v.kind) {
    case Kind::kUndefined:
      return 0;
    case Kind::kString:
      return static_cast<int64_t>(decode_utf8(v.text).size());
    case Kind::kList:
    case Kind::kTuple:
      if (v.generator) break;
      return static_cast<int64_t>(v.items->size());
    case Kind::kDict:
      return static_cast<int64_t>(v.dict->size());
    default:
      break;
  }
  throw EvalError("object of type '" + type_name(v) + "' has no len()");
}

std::string to_json(const Value& v, const JsonOptions& options) {
  std::string out;
  dump_json(v, options, 0, out);
  return out;
}

Value from_json(const nlohmann::ordered_json& j) {
  switch (j.type()) {
    case nlohmann::ordered_json::value_t::null:
      return Value::none();
    case nlohmann::ordered_json::value_t::boolean:
      return Value::from_bool(j.get<bool>());
    case nlohmann::ordered_json::value_t::number_integer:
      return Value::from_int(j.get<int64_t>());
    case nlohmann::ordered_json::value_t::number_unsigned:
      if (j.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        throw EvalError("integer " + j.dump() + " does not fit in 64 bits");
      }
      return Value::from_int(j.get<int64_t>());
    case nlohmann::ordered_json::value_t::number_float:
      return Value::from_float(j.get<double>());
    case nlohmann::ordered_json::value_t::string:
      return Value::from_string(j.get<std::string>());
    case nlohmann::ordered_json::value_t::array: {
      List items;
      for (const auto& item : j)
        items.push_back(from_json(item));
      return Value::from_list(std::move(items));
    }
    case nlohmann::ordered_json::value_t::object: {
      Dict dict;
      for (const auto& [key, item] : j.items())
        dict.emplace_back(key, from_json(item));
      return Value::from_dict(std::move(dict));
    }
    default:
      throw EvalError("unsupported JSON value " + j.dump());
  }
}

std::u32string decode_utf8(std::string_view s) {
  std::u32string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    const auto byte = static_cast<unsigned char>(s[i]);
    const int extra = byte < 0x80 ? 0 : byte >= 0xf0 ? 3 : byte >= 0xe0 ? 2 : byte >= 0xc0 ? 1 : -1;
    if (extra < 0 || byte > 0xf4 || i + extra >= s.size()) {
      throw EvalError("text is not valid UTF-8");
    }
    char32_t c = extra == 0 ? byte : byte & (0x3f >> extra);
    for (int k = 1; k <= extra; ++k) {
      const auto next = static_cast<unsigned char>(s[i + k]);
      if ((next & 0xc0) != 0x80) throw EvalError("text is not valid UTF-8");
      c = (c << 6) | (next & 0x3f);
    }
    out += c;
    i += extra + 1;
  }
  return out;
}

std::string encode_utf8(std::u32string_view s) {
  std::string out;
  for (const char32_t c : s) {
    if (c < 0x80) {
      out += static_cast<char>(c);
    } else if (c < 0x800) {
      out += static_cast<char>(0xc0 | (c >> 6));
      out += static_cast<char>(0x80 | (c & 0x3f));
    } else if (c < 0x10000) {
      out += static_cast<char>(0xe0 | (c >> 12));
      out += static_cast<char>(0x80 | ((c >> 6) & 0x3f));
      out += static_cast<char>(0x80 | (c & 0x3f));
    } else {
      out += static_cast<char>(0xf0 | (c >> 18));
      out += static_cast<char>(0x80 | ((c >> 12) & 0x3f));
      out += static_cast<char>(0x80 | ((c >> 6) & 0x3f));
      out += static_cast<char>(0x80 | (c & 0x3f));
    }
  }
  return out;
}

bool is_space(char32_t c) {
  return (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x20) || c == 0x85 || c == 0xa0 ||
         c == 0x1680 || (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 || c == 0x202f ||
         c == 0x205f || c == 0x3000;
}

}  // namespace muse::data::jinja
