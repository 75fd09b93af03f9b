#include "data/chat_template_builtins.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <ctime>
#include <map>

namespace muse::data::jinja {

namespace {

using Kind = Value::Kind;

// Jinja's range() refuses more items than this (the sandbox's MAX_RANGE).
constexpr int64_t kMaxRange = 100000;

// Letters outside ASCII that have a case: changing their case needs
// Unicode's tables, which this renderer does not carry.
bool has_non_ascii_case(char32_t c) {
  return c == 0xb5 || (c >= 0xc0 && c <= 0x24f) || (c >= 0x370 && c <= 0x58f) ||
         (c >= 0x10a0 && c <= 0x10ff) || (c >= 0x13a0 && c <= 0x13ff) ||
         (c >= 0x1e00 && c <= 0x1fff) || (c >= 0x2160 && c <= 0x2184) ||
         (c >= 0x24b6 && c <= 0x24e9) || (c >= 0x2c00 && c <= 0x2dff) ||
         (c >= 0xa640 && c <= 0xa7ff) || (c >= 0xff21 && c <= 0xff5a) || c >= 0x10400;
}

void check_ascii_case(const std::string& s) {
  for (const char32_t c : decode_utf8(s)) {
    if (has_non_ascii_case(c)) {
      throw EvalError("changing the case of '" + encode_utf8(std::u32string_view(&c, 1)) +
                      "' is not supported (ASCII letters only)");
    }
  }
}

std::string upper(std::string s) {
  check_ascii_case(s);
  for (char& c : s)
    c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

std::string lower(std::string s) {
  check_ascii_case(s);
  for (char& c : s)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string capitalize(const std::string& s) {
  std::string out = lower(s);
  if (!out.empty()) out[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(out[0])));
  return out;
}

// Python's str.title(): a letter after a letter is lowered, any other is raised.
std::string python_title(const std::string& s) {
  std::string out = lower(s);
  bool after_letter = false;
  for (char& c : out) {
    const bool letter = std::isalpha(static_cast<unsigned char>(c)) != 0;
    if (letter && !after_letter) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    after_letter = letter;
  }
  return out;
}

// Jinja's title filter: words begin after whitespace or one of -({[<.
std::string jinja_title(const std::string& s) {
  std::string out = lower(s);
  bool word_start = true;
  for (char& c : out) {
    const bool separator = std::isspace(static_cast<unsigned char>(c)) ||
                           std::string_view("-({[<").find(c) != std::string_view::npos;
    if (word_start && !separator)
      c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    word_start = separator;
  }
  return out;
}

// str.strip(chars) on one or both ends; no chars means whitespace.
std::string strip(const std::string& s, const Value& chars, bool left, bool right) {
  if (!chars.is_none() && !chars.is_undefined() && !chars.is_string()) {
    throw EvalError("strip arg must be None or str");
  }
  const std::u32string text = decode_utf8(s);
  const std::u32string set = chars.is_string() ? decode_utf8(chars.text) : U"";
  const auto strips = [&](char32_t c) {
    return chars.is_string() ? set.find(c) != std::u32string::npos : is_space(c);
  };
  size_t begin = 0, end = text.size();
  while (left && begin < end && strips(text[begin]))
    ++begin;
  while (right && end > begin && strips(text[end - 1]))
    --end;
  return encode_utf8(std::u32string_view(text).substr(begin, end - begin));
}

Value split(const std::string& s, const Value& separator, int64_t max_split) {
  List parts;
  if (separator.is_none() || separator.is_undefined()) {
    const std::u32string text = decode_utf8(s);
    size_t i = 0;
    while (i < text.size()) {
      while (i < text.size() && is_space(text[i]))
        ++i;
      if (i == text.size()) break;
      size_t end = i;
      if (max_split >= 0 && static_cast<int64_t>(parts.size()) == max_split) {
        end = text.size();
        while (end > i && is_space(text[end - 1]))
          --end;
      } else {
        while (end < text.size() && !is_space(text[end]))
          ++end;
      }
      parts.push_back(
          Value::from_string(encode_utf8(std::u32string_view(text).substr(i, end - i))));
      i = end;
    }
    return Value::from_list(std::move(parts));
  }
  if (!separator.is_string()) throw EvalError("must be str or None, not " + type_name(separator));
  if (separator.text.empty()) throw EvalError("empty separator");
  size_t begin = 0;
  for (size_t found; (max_split < 0 || static_cast<int64_t>(parts.size()) < max_split) &&
                     (found = s.find(separator.text, begin)) != std::string::npos;
       begin = found + separator.text.size()) {
    parts.push_back(Value::from_string(s.substr(begin, found - begin)));
  }
  parts.push_back(Value::from_string(s.substr(begin)));
  return Value::from_list(std::move(parts));
}

std::string replace(const std::string& s, const std::string& old, const std::string& with,
                    int64_t count) {
  std::string out;
  size_t begin = 0;
  int64_t done = 0;
  if (old.empty()) {  // Python inserts `with` around every character
    const std::u32string text = decode_utf8(s);
    for (size_t i = 0; i <= text.size(); ++i) {
      if (count < 0 || done < count) {
        out += with;
        ++done;
      }
      if (i < text.size()) out += encode_utf8(std::u32string_view(text).substr(i, 1));
    }
    return out;
  }
  for (size_t found;
       (count < 0 || done < count) && (found = s.find(old, begin)) != std::string::npos;
       begin = found + old.size(), ++done) {
    out += s.substr(begin, found - begin) + with;
  }
  return out + s.substr(begin);
}

const std::string& require_string(const Value& v, std::string_view what) {
  if (v.is_undefined()) fail_undefined(v);
  if (!v.is_string()) {
    throw EvalError(std::string(what) + " needs a string, not " + type_name(v));
  }
  return v.text;
}

int64_t require_int(const Value& v, std::string_view what) {
  if (v.is_undefined()) fail_undefined(v);
  if (v.kind == Kind::kBool) return v.boolean;
  if (v.kind != Kind::kInt)
    throw EvalError(std::string(what) + " needs an integer, not " + type_name(v));
  return v.integer;
}

bool starts_or_ends(const std::string& s, const Value& affix, bool at_start) {
  const auto matches = [&](const Value& candidate) {
    const std::string& a = require_string(candidate, at_start ? "startswith" : "endswith");
    if (a.size() > s.size()) return false;
    return at_start ? s.compare(0, a.size(), a) == 0
                    : s.compare(s.size() - a.size(), a.size(), a) == 0;
  };
  if (affix.kind == Kind::kTuple)
    return std::any_of(affix.items->begin(), affix.items->end(), matches);
  return matches(affix);
}

// Python's int(text): optional sign, digits with single underscores between, surrounding
// whitespace.
std::optional<int64_t> parse_int(const std::string& text) {
  std::string digits = strip(text, Value::none(), true, true);
  if (!digits.empty() && digits[0] == '+') digits.erase(0, 1);
  std::string plain;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (digits[i] == '_' && i > 0 && i + 1 < digits.size() &&
        std::isdigit(static_cast<unsigned char>(digits[i - 1])) &&
        std::isdigit(static_cast<unsigned char>(digits[i + 1]))) {
      continue;
    }
    plain += digits[i];
  }
  int64_t value = 0;
  const char* end = plain.data() + plain.size();
  const auto [ptr, error] = std::from_chars(plain.data(), end, value);
  if (plain.empty() || error != std::errc() || ptr != end || plain[0] == '+') return std::nullopt;
  return value;
}

std::optional<double> parse_float(const std::string& text) {
  const std::string trimmed = strip(text, Value::none(), true, true);
  double value = 0.0;
  const char* end = trimmed.data() + trimmed.size();
  const auto [ptr, error] = std::from_chars(trimmed.data(), end, value);
  if (trimmed.empty() || error != std::errc() || ptr != end) return std::nullopt;
  return value;
}

// Jinja's attribute getter for selectattr/map: "a.b" reads item["a"]["b"].
Value read_path(const Value& item, const std::string& path) {
  Value current = item;
  size_t begin = 0;
  while (true) {
    const size_t dot = path.find('.', begin);
    const std::string part =
        path.substr(begin, dot == std::string::npos ? std::string::npos : dot - begin);
    const auto index = parse_int(part);
    current = subscript(current,
                        index && !part.empty() && std::isdigit(static_cast<unsigned char>(part[0]))
                            ? Value::from_int(*index)
                            : Value::from_string(part));
    if (dot == std::string::npos) return current;
    begin = dot + 1;
  }
}

bool apply_test(const std::string& name, const Value& v, std::vector<Value> extra) {
  const Function* test = find_test(name);
  if (test == nullptr) throw EvalError("no test named '" + name + "'");
  Call call;
  call.args.push_back(v);
  call.args.insert(call.args.end(), extra.begin(), extra.end());
  return truthy((*test)(call));
}

// select, reject, selectattr, rejectattr: args after the value are
// [attribute,] [test name, test arguments...].
Value select_items(const Call& call, bool by_attribute, bool keep, std::string_view name) {
  if (call.args.empty() || (by_attribute && call.args.size() < 2)) {
    throw EvalError(std::string(name) + "() is missing arguments");
  }
  if (!call.kwargs.empty()) throw EvalError(std::string(name) + "() takes no keyword arguments");
  const std::string attribute = by_attribute ? require_string(call.args[1], name) : "";
  const size_t test_at = by_attribute ? 2 : 1;
  List kept;
  for (const Value& item : iterate(call.args[0])) {
    const Value tested = by_attribute ? read_path(item, attribute) : item;
    bool passes = truthy(tested);
    if (call.args.size() > test_at) {
      const std::string& test = require_string(call.args[test_at], name);
      passes = apply_test(test, tested, {call.args.begin() + test_at + 1, call.args.end()});
    }
    if (passes == keep) kept.push_back(item);
  }
  return Value::from_generator(std::move(kept));
}

Value map_items(const Call& call) {
  if (call.args.empty()) throw EvalError("map() is missing its value");
  List mapped;
  const auto attribute = std::find_if(call.kwargs.begin(), call.kwargs.end(),
                                      [](const auto& kw) { return kw.first == "attribute"; });
  if (attribute != call.kwargs.end()) {
    const auto fallback = std::find_if(call.kwargs.begin(), call.kwargs.end(),
                                       [](const auto& kw) { return kw.first == "default"; });
    for (const auto& [key, unused] : call.kwargs) {
      if (key != "attribute" && key != "default")
        throw EvalError("map() got an unexpected keyword '" + key + "'");
    }
    const std::string& path = require_string(attribute->second, "map");
    for (const Value& item : iterate(call.args[0])) {
      Value v = read_path(item, path);
      if (v.is_undefined() && fallback != call.kwargs.end()) v = fallback->second;
      mapped.push_back(v);
    }
    return Value::from_generator(std::move(mapped));
  }
  if (call.args.size() < 2) throw EvalError("map() needs a filter name or attribute=");
  const std::string& name = require_string(call.args[1], "map");
  const Function* filter = find_filter(name);
  if (filter == nullptr) throw EvalError("no filter named '" + name + "'");
  for (const Value& item : iterate(call.args[0])) {
    Call inner;
    inner.args.push_back(item);
    inner.args.insert(inner.args.end(), call.args.begin() + 2, call.args.end());
    inner.kwargs = call.kwargs;
    mapped.push_back((*filter)(inner));
  }
  return Value::from_generator(std::move(mapped));
}

// Python's str.splitlines() boundaries.
bool is_line_break(char32_t c) {
  return c == '\n' || c == '\r' || c == 0x0b || c == 0x0c || (c >= 0x1c && c <= 0x1e) ||
         c == 0x85 || c == 0x2028 || c == 0x2029;
}

std::vector<std::string> split_lines(const std::string& s) {
  const std::u32string text = decode_utf8(s);
  std::vector<std::string> lines;
  size_t begin = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    if (!is_line_break(text[i])) continue;
    lines.push_back(encode_utf8(std::u32string_view(text).substr(begin, i - begin)));
    if (text[i] == '\r' && i + 1 < text.size() && text[i + 1] == '\n') ++i;
    begin = i + 1;
  }
  if (begin < text.size()) lines.push_back(encode_utf8(std::u32string_view(text).substr(begin)));
  return lines;
}

Value indent(const Call& call) {
  const Arguments a("indent", call, {"s", "width", "first", "blank"}, 1);
  if (a.get(0).is_undefined()) fail_undefined(a.get(0));
  const Value width = a.get_or(1, Value::from_int(4));
  const std::string indention =
      width.is_string() ? width.text : std::string(require_int(width, "indent"), ' ');
  const std::vector<std::string> lines = split_lines(to_str(a.get(0)) + "\n");
  std::string out;
  for (size_t i = 0; i < lines.size(); ++i) {
    if (i > 0) out += "\n";
    const bool indented =
        i > 0 && (truthy(a.get_or(3, Value::from_bool(false))) || !lines[i].empty());
    out += (indented ? indention : "") + lines[i];
  }
  if (truthy(a.get_or(2, Value::from_bool(false)))) out = indention + out;
  return Value::from_string(out);
}

Value tojson(const Call& call) {
  const Arguments a("tojson", call, {"x", "ensure_ascii", "indent", "separators", "sort_keys"}, 1);
  JsonOptions options;
  options.ensure_ascii = truthy(a.get_or(1, Value::from_bool(false)));
  const Value indent_by = a.get_or(2, Value::none());
  if (indent_by.is_string()) {
    options.indent = indent_by.text;
  } else if (!indent_by.is_none()) {
    options.indent =
        std::string(std::max<int64_t>(0, require_int(indent_by, "tojson indent")), ' ');
  }
  if (options.indent) options.item_separator = ",";
  const Value separators = a.get_or(3, Value::none());
  if (!separators.is_none()) {
    if (!separators.is_sequence() || separators.items->size() != 2) {
      throw EvalError("tojson separators must be a pair of strings");
    }
    options.item_separator = require_string((*separators.items)[0], "tojson separators");
    options.key_separator = require_string((*separators.items)[1], "tojson separators");
  }
  options.sort_keys = truthy(a.get_or(4, Value::from_bool(false)));
  return Value::from_string(to_json(a.get(0), options));
}

Value to_int(const Call& call) {
  const Arguments a("int", call, {"value", "default", "base"}, 1);
  const Value& v = a.get(0);
  const Value fallback = a.get_or(1, Value::from_int(0));
  if (a.has(2) && require_int(a.get(2), "int base") != 10)
    throw EvalError("int(base=...) other than 10 is not supported");
  switch (v.kind) {
    case Kind::kUndefined:
      fail_undefined(v);
    case Kind::kBool:
      return Value::from_int(v.boolean);
    case Kind::kInt:
      return v;
    case Kind::kFloat:
      return Value::from_int(static_cast<int64_t>(v.real));
    case Kind::kString: {
      if (auto i = parse_int(v.text)) return Value::from_int(*i);
      if (auto d = parse_float(v.text)) return Value::from_int(static_cast<int64_t>(*d));
      return fallback;
    }
    default:
      return fallback;
  }
}

Value to_float(const Call& call) {
  const Arguments a("float", call, {"value", "default"}, 1);
  const Value& v = a.get(0);
  const Value fallback = a.get_or(1, Value::from_float(0.0));
  if (v.is_undefined()) fail_undefined(v);
  if (v.is_number())
    return Value::from_float(
        v.kind == Kind::kFloat
            ? v.real
            : static_cast<double>(v.kind == Kind::kBool ? v.boolean : v.integer));
  if (v.is_string()) {
    if (auto d = parse_float(v.text)) return Value::from_float(*d);
  }
  return fallback;
}

Value first_or_last(const Call& call, bool first) {
  const Arguments a(first ? "first" : "last", call, {"seq"}, 1);
  if (!first && a.get(0).generator) throw EvalError("'generator' object is not reversible");
  const List items = iterate(a.get(0));
  if (items.empty())
    return Value::undefined(first ? "No first item, sequence was empty."
                                  : "No last item, sequence was empty.");
  return first ? items.front() : items.back();
}

Value join(const Call& call) {
  const Arguments a("join", call, {"value", "d", "attribute"}, 1);
  const std::string separator = to_str(a.get_or(1, Value::from_string("")));
  std::string out;
  bool first = true;
  for (const Value& item : iterate(a.get(0))) {
    if (!first) out += separator;
    first = false;
    out += to_str(a.has(2) ? read_path(item, require_string(a.get(2), "join attribute")) : item);
  }
  return Value::from_string(out);
}

Value reverse(const Call& call) {
  const Arguments a("reverse", call, {"value"}, 1);
  const Value& v = a.get(0);
  if (v.is_string()) {
    std::u32string text = decode_utf8(v.text);
    std::reverse(text.begin(), text.end());
    return Value::from_string(encode_utf8(text));
  }
  if (v.is_undefined()) fail_undefined(v);
  List items = iterate(v);
  std::reverse(items.begin(), items.end());
  return Value::from_generator(std::move(items));
}

Value items(const Call& call) {
  const Arguments a("items", call, {"value"}, 1);
  const Value& v = a.get(0);
  if (v.is_undefined()) return Value::from_generator({});
  if (!v.is_mapping()) throw EvalError("can only get item pairs from a mapping");
  List pairs;
  for (const auto& [key, value] : *v.dict)
    pairs.push_back(Value::from_tuple({Value::from_string(key), value}));
  return Value::from_generator(std::move(pairs));
}

using StringFunction = std::string (*)(std::string);

Function string_filter(const char* name, StringFunction f) {
  return [name, f](const Call& call) {
    const Arguments a(name, call, {"s"}, 1);
    return Value::from_string(f(to_str(a.get(0))));
  };
}

const std::map<std::string, Function, std::less<>>& filters() {
  static const std::map<std::string, Function, std::less<>> table = [] {
    std::map<std::string, Function, std::less<>> t;
    t["trim"] = [](const Call& call) {
      const Arguments a("trim", call, {"value", "chars"}, 1);
      return Value::from_string(strip(to_str(a.get(0)), a.get_or(1, Value::none()), true, true));
    };
    t["tojson"] = tojson;
    t["length"] = t["count"] = [](const Call& call) {
      return Value::from_int(length(Arguments("length", call, {"value"}, 1).get(0)));
    };
    t["first"] = [](const Call& call) { return first_or_last(call, true); };
    t["last"] = [](const Call& call) { return first_or_last(call, false); };
    t["join"] = join;
    t["upper"] = string_filter("upper", upper);
    t["lower"] = string_filter("lower", lower);
    t["capitalize"] = string_filter("capitalize", [](std::string s) { return capitalize(s); });
    t["title"] = string_filter("title", [](std::string s) { return jinja_title(s); });
    t["string"] = string_filter("string", [](std::string s) { return s; });
    t["safe"] = [](const Call& call) { return Arguments("safe", call, {"value"}, 1).get(0); };
    t["replace"] = [](const Call& call) {
      const Arguments a("replace", call, {"s", "old", "new", "count"}, 3);
      const int64_t count =
          a.has(3) && !a.get(3).is_none() ? require_int(a.get(3), "replace count") : -1;
      return Value::from_string(
          replace(to_str(a.get(0)), to_str(a.get(1)), to_str(a.get(2)), count));
    };
    t["default"] = t["d"] = [](const Call& call) {
      const Arguments a("default", call, {"value", "default_value", "boolean"}, 1);
      const bool replace_falsy = truthy(a.get_or(2, Value::from_bool(false)));
      const Value& v = a.get(0);
      if (v.is_undefined() || (replace_falsy && !truthy(v)))
        return a.get_or(1, Value::from_string(""));
      return v;
    };
    t["list"] = [](const Call& call) {
      return Value::from_list(iterate(Arguments("list", call, {"value"}, 1).get(0)));
    };
    t["int"] = to_int;
    t["float"] = to_float;
    t["select"] = [](const Call& call) { return select_items(call, false, true, "select"); };
    t["reject"] = [](const Call& call) { return select_items(call, false, false, "reject"); };
    t["selectattr"] = [](const Call& call) { return select_items(call, true, true, "selectattr"); };
    t["rejectattr"] = [](const Call& call) {
      return select_items(call, true, false, "rejectattr");
    };
    t["map"] = map_items;
    t["items"] = items;
    t["reverse"] = reverse;
    t["indent"] = indent;
    return t;
  }();
  return table;
}

Function type_test(const char* name, bool (*predicate)(const Value&)) {
  return [name, predicate](const Call& call) {
    return Value::from_bool(predicate(Arguments(name, call, {"value"}, 1).get(0)));
  };
}

Function comparison_test(const char* name, bool (*predicate)(const Value&, const Value&)) {
  return [name, predicate](const Call& call) {
    const Arguments a(name, call, {"value", "other"}, 2);
    return Value::from_bool(predicate(a.get(0), a.get(1)));
  };
}

const std::map<std::string, Function, std::less<>>& tests() {
  static const std::map<std::string, Function, std::less<>> table = [] {
    std::map<std::string, Function, std::less<>> t;
    t["defined"] = type_test("defined", [](const Value& v) { return !v.is_undefined(); });
    t["undefined"] = type_test("undefined", [](const Value& v) { return v.is_undefined(); });
    t["none"] = type_test("none", [](const Value& v) { return v.is_none(); });
    t["string"] = type_test("string", [](const Value& v) { return v.is_string(); });
    t["number"] = type_test("number", [](const Value& v) { return v.is_number(); });
    t["integer"] = type_test("integer", [](const Value& v) { return v.kind == Kind::kInt; });
    t["float"] = type_test("float", [](const Value& v) { return v.kind == Kind::kFloat; });
    t["boolean"] = type_test("boolean", [](const Value& v) { return v.kind == Kind::kBool; });
    t["true"] =
        type_test("true", [](const Value& v) { return v.kind == Kind::kBool && v.boolean; });
    t["false"] =
        type_test("false", [](const Value& v) { return v.kind == Kind::kBool && !v.boolean; });
    t["mapping"] = type_test("mapping", [](const Value& v) { return v.is_mapping(); });
    t["callable"] = type_test("callable", [](const Value& v) { return v.kind == Kind::kFunction; });
    t["iterable"] = type_test("iterable", [](const Value& v) {
      return v.is_undefined() || v.is_string() || v.is_sequence() || v.is_mapping();
    });
    t["sequence"] = type_test("sequence", [](const Value& v) {
      return v.is_undefined() || v.is_string() || (v.is_sequence() && !v.generator) ||
             v.is_mapping();
    });
    t["equalto"] = t["eq"] = t["=="] = comparison_test("equalto", equals);
    t["ne"] = t["!="] =
        comparison_test("ne", [](const Value& a, const Value& b) { return !equals(a, b); });
    t["lt"] = t["lessthan"] = t["<"] = comparison_test("lt", less);
    t["gt"] = t["greaterthan"] = t[">"] =
        comparison_test("gt", [](const Value& a, const Value& b) { return less(b, a); });
    t["le"] = t["<="] =
        comparison_test("le", [](const Value& a, const Value& b) { return !less(b, a); });
    t["ge"] = t[">="] =
        comparison_test("ge", [](const Value& a, const Value& b) { return !less(a, b); });
    t["in"] = comparison_test("in", [](const Value& a, const Value& b) { return contains(b, a); });
    t["sameas"] = comparison_test("sameas", [](const Value& a, const Value& b) {
      const bool singleton = a.is_none() || a.kind == Kind::kBool;
      return a.kind == b.kind &&
             (singleton ? equals(a, b) : a.items == b.items && a.dict == b.dict);
    });
    t["odd"] = type_test("odd", [](const Value& v) { return require_int(v, "odd") % 2 != 0; });
    t["even"] = type_test("even", [](const Value& v) { return require_int(v, "even") % 2 == 0; });
    t["divisibleby"] = comparison_test(
        "divisibleby", [](const Value& a, const Value& b) { return !truthy(modulo(a, b)); });
    t["lower"] = type_test("lower", [](const Value& v) { return to_str(v) == lower(to_str(v)); });
    t["upper"] = type_test("upper", [](const Value& v) { return to_str(v) == upper(to_str(v)); });
    return t;
  }();
  return table;
}

Value string_method(const std::string& s, const std::string& name, const Call& call) {
  const auto chars = [&](const char* method) {
    return Arguments(method, call, {"chars"}, 0).get_or(0, Value::none());
  };
  if (name == "strip") return Value::from_string(strip(s, chars("strip"), true, true));
  if (name == "lstrip") return Value::from_string(strip(s, chars("lstrip"), true, false));
  if (name == "rstrip") return Value::from_string(strip(s, chars("rstrip"), false, true));
  if (name == "split") {
    const Arguments a("split", call, {"sep", "maxsplit"}, 0);
    return split(s, a.get_or(0, Value::none()),
                 a.has(1) ? require_int(a.get(1), "split maxsplit") : -1);
  }
  if (name == "startswith" || name == "endswith") {
    const Arguments a(name, call, {"affix"}, 1);
    return Value::from_bool(starts_or_ends(s, a.get(0), name == "startswith"));
  }
  if (name == "replace") {
    const Arguments a("replace", call, {"old", "new", "count"}, 2);
    return Value::from_string(replace(s, require_string(a.get(0), "replace"),
                                      require_string(a.get(1), "replace"),
                                      a.has(2) ? require_int(a.get(2), "replace count") : -1));
  }
  if (name == "find") {
    const Arguments a("find", call, {"sub"}, 1);
    const size_t at = s.find(require_string(a.get(0), "find"));
    return Value::from_int(
        at == std::string::npos ? -1 : static_cast<int64_t>(decode_utf8(s.substr(0, at)).size()));
  }
  if (name == "count") {
    const std::string sub = require_string(Arguments("count", call, {"sub"}, 1).get(0), "count");
    if (sub.empty()) return Value::from_int(static_cast<int64_t>(decode_utf8(s).size()) + 1);
    int64_t n = 0;
    for (size_t at = s.find(sub); at != std::string::npos; at = s.find(sub, at + sub.size()))
      ++n;
    return Value::from_int(n);
  }
  if (name == "join") {
    std::string out;
    bool first = true;
    for (const Value& item : iterate(Arguments("join", call, {"iterable"}, 1).get(0))) {
      if (!first) out += s;
      first = false;
      out += require_string(item, "join");
    }
    return Value::from_string(out);
  }
  Arguments(name, call, {}, 0);  // the rest take no arguments
  if (name == "upper") return Value::from_string(upper(s));
  if (name == "lower") return Value::from_string(lower(s));
  if (name == "title") return Value::from_string(python_title(s));
  return Value::from_string(capitalize(s));
}

Value dict_method(const Value& d, const std::string& name, const Call& call) {
  if (name == "get") {
    const Arguments a("get", call, {"key", "default"}, 1);
    if (a.get(0).is_string()) {
      for (const auto& [key, value] : *d.dict) {
        if (key == a.get(0).text) return value;
      }
    }
    return a.get_or(1, Value::none());
  }
  Arguments(name, call, {}, 0);
  List out;
  for (const auto& [key, value] : *d.dict) {
    if (name == "items") out.push_back(Value::from_tuple({Value::from_string(key), value}));
    if (name == "keys") out.push_back(Value::from_string(key));
    if (name == "values") out.push_back(value);
  }
  return Value::from_list(std::move(out));
}

Value strftime_now(const Call& call) {
  const std::string format =
      require_string(Arguments("strftime_now", call, {"format"}, 1).get(0), "strftime_now");
  const std::time_t now = std::time(nullptr);
  std::tm local{};
  localtime_r(&now, &local);
  char buffer[256];
  const size_t n = std::strftime(buffer, sizeof buffer, format.c_str(), &local);
  if (n == 0 && !format.empty()) throw EvalError("strftime_now: format too long or empty result");
  return Value::from_string(std::string(buffer, n));
}

Value range(const Call& call) {
  const Arguments a("range", call, {"start", "stop", "step"}, 1);
  int64_t start = 0, stop = require_int(a.get(0), "range"), step = 1;
  if (a.has(1)) {
    start = stop;
    stop = require_int(a.get(1), "range");
  }
  if (a.has(2)) step = require_int(a.get(2), "range");
  if (step == 0) throw EvalError("range() arg 3 must not be zero");
  List numbers;
  for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
    if (static_cast<int64_t>(numbers.size()) >= kMaxRange) throw EvalError("range too big");
    numbers.push_back(Value::from_int(i));
  }
  return Value::from_list(std::move(numbers));
}

// namespace(...) and dict(...): an optional mapping, then keyword arguments.
Dict mapping_arguments(const Call& call, std::string_view function) {
  if (call.args.size() > 1)
    throw EvalError(std::string(function) + "() takes at most 1 positional argument");
  Dict entries;
  if (!call.args.empty()) {
    if (!call.args[0].is_mapping()) throw EvalError(std::string(function) + "() needs a mapping");
    entries = *call.args[0].dict;
  }
  for (const auto& [key, value] : call.kwargs) {
    const auto found = std::find_if(entries.begin(), entries.end(),
                                    [&wanted = key](const auto& e) { return e.first == wanted; });
    if (found != entries.end()) {
      found->second = value;
    } else {
      entries.emplace_back(key, value);
    }
  }
  return entries;
}

}  // namespace

Arguments::Arguments(std::string_view function, const Call& call,
                     std::initializer_list<const char*> names, size_t required)
    : function_(function), names_(names.begin(), names.end()), values_(names.size()) {
  if (call.args.size() > names_.size()) {
    throw EvalError(function_ + "() takes at most " + std::to_string(names_.size()) +
                    " arguments (" + std::to_string(call.args.size()) + " given)");
  }
  for (size_t i = 0; i < call.args.size(); ++i)
    values_[i] = call.args[i];
  for (const auto& [key, value] : call.kwargs) {
    const auto at = std::find(names_.begin(), names_.end(), key);
    if (at == names_.end())
      throw EvalError(function_ + "() got an unexpected keyword argument '" + key + "'");
    auto& slot = values_[at - names_.begin()];
    if (slot) throw EvalError(function_ + "() got multiple values for argument '" + key + "'");
    slot = value;
  }
  for (size_t i = 0; i < required; ++i) {
    if (!values_[i])
      throw EvalError(function_ + "() missing required argument '" + names_[i] + "'");
  }
}

const Value& Arguments::get(size_t i) const {
  if (!values_[i]) throw EvalError(function_ + "() missing argument '" + names_[i] + "'");
  return *values_[i];
}

const Function* find_filter(std::string_view name) {
  const auto found = filters().find(name);
  return found == filters().end() ? nullptr : &found->second;
}

const Function* find_test(std::string_view name) {
  const auto found = tests().find(name);
  return found == tests().end() ? nullptr : &found->second;
}

std::optional<Value> bound_method(const Value& obj, const std::string& name) {
  static const std::vector<std::string> kStringMethods = {
      "strip", "lstrip", "rstrip", "split", "startswith", "endswith", "replace",
      "find",  "count",  "join",   "upper", "lower",      "title",    "capitalize"};
  static const std::vector<std::string> kDictMethods = {"get", "items", "keys", "values"};
  if (obj.is_string() &&
      std::find(kStringMethods.begin(), kStringMethods.end(), name) != kStringMethods.end()) {
    return Value::from_function(
        [s = obj.text, name](const Call& call) { return string_method(s, name, call); });
  }
  if (obj.is_mapping() &&
      std::find(kDictMethods.begin(), kDictMethods.end(), name) != kDictMethods.end()) {
    return Value::from_function(
        [obj, name](const Call& call) { return dict_method(obj, name, call); });
  }
  return std::nullopt;
}

Dict global_functions() {
  Dict globals;
  globals.emplace_back(
      "raise_exception", Value::from_function([](const Call& call) -> Value {
        throw TemplateRaised(to_str(Arguments("raise_exception", call, {"message"}, 1).get(0)));
      }));
  globals.emplace_back("strftime_now", Value::from_function(strftime_now));
  globals.emplace_back("namespace", Value::from_function([](const Call& call) {
                         return Value::make_namespace(mapping_arguments(call, "namespace"));
                       }));
  globals.emplace_back("dict", Value::from_function([](const Call& call) {
                         return Value::from_dict(mapping_arguments(call, "dict"));
                       }));
  globals.emplace_back("range", Value::from_function(range));
  return globals;
}

}  // namespace muse::data::jinja
