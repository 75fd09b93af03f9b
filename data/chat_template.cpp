// The chat-template interpreter: a lexer that applies Jinja's whitespace
// rules, a recursive-descent parser to statement and expression trees, and a
// tree-walking renderer. Values and builtins live in chat_template_value.* and
// chat_template_builtins.*.
#include "data/chat_template.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>

#include "data/chat_template_builtins.h"
#include "data/chat_template_value.h"

namespace muse::data {

namespace {

using jinja::Call;
using jinja::EvalError;
using jinja::List;
using jinja::Value;

// Deeper nesting than this is refused, so no input overflows the stack.
constexpr int kMaxNesting = 200;
constexpr int kMaxMacroDepth = 100;
// Statements a render may execute before it is stopped as runaway.
constexpr int64_t kMaxSteps = 50'000'000;

std::string where(const std::string& origin, int line) {
  return origin + ": line " + std::to_string(line) + ": ";
}

// ---------------------------------------------------------------- lexer

enum class Tok {
  kText,
  kVarBegin,
  kVarEnd,
  kBlockBegin,
  kBlockEnd,
  kName,
  kString,
  kNumber,
  kOp,
  kEof
};

struct Token {
  Tok kind = Tok::kEof;
  std::string text;  // text, name, operator, or a string literal's value
  Value number;      // an integer or float literal
  int line = 0;
};

bool is_ascii_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}
bool is_digit(char c) {
  return c >= '0' && c <= '9';
}
bool is_name_start(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
bool is_name_char(char c) {
  return is_name_start(c) || is_digit(c);
}

class Lexer {
 public:
  Lexer(std::string_view raw, const std::string& origin) : origin_(origin) {
    // Jinja reads every newline as \n and drops one trailing newline.
    for (size_t i = 0; i < raw.size(); ++i) {
      if (raw[i] == '\r') {
        source_ += '\n';
        if (i + 1 < raw.size() && raw[i + 1] == '\n') ++i;
      } else {
        source_ += raw[i];
      }
    }
    if (!source_.empty() && source_.back() == '\n') source_.pop_back();
  }

  std::vector<Token> run() {
    bool line_starting = true;  // the previous tag's end consumed a newline
    while (pos_ < source_.size()) {
      const size_t open = find_tag_open(pos_);
      std::string text = source_.substr(pos_, open - pos_);
      if (open == source_.size()) {
        emit_text(std::move(text));
        break;
      }
      const char kind = source_[open + 1];
      const char sign = open + 2 < source_.size() ? source_[open + 2] : '\0';
      if (sign == '-') {
        while (!text.empty() && is_ascii_space(text.back()))
          text.pop_back();
      } else if (sign != '+' && kind != '{') {
        // lstrip_blocks: a block or comment tag alone on its line takes the indentation with it.
        const size_t line_begin = text.rfind('\n') == std::string::npos ? 0 : text.rfind('\n') + 1;
        if ((line_begin > 0 || line_starting) && line_begin < text.size() &&
            text.find_first_not_of(" \t\f\v", line_begin) == std::string::npos) {
          text.resize(line_begin);
        }
      }
      emit_text(std::move(text));
      pos_ = open + 2 + (sign == '-' || sign == '+' ? 1 : 0);
      const int tag_line = line_of(open);
      if (kind == '#') {
        line_starting = skip_comment(tag_line);
      } else {
        line_starting = lex_tag(kind == '{' ? Tok::kVarBegin : Tok::kBlockBegin, tag_line);
      }
    }
    tokens_.push_back(Token{Tok::kEof, "", Value(), line_of(source_.size())});
    return std::move(tokens_);
  }

 private:
  [[noreturn]] void fail(int line, const std::string& what) const {
    throw ChatTemplateError(where(origin_, line) + what);
  }

  int line_of(size_t offset) {
    for (; counted_ < offset && counted_ < source_.size(); ++counted_) {
      if (source_[counted_] == '\n') ++line_;
    }
    return line_;
  }

  size_t find_tag_open(size_t from) const {
    for (size_t i = source_.find('{', from); i != std::string::npos; i = source_.find('{', i + 1)) {
      if (i + 1 < source_.size() && std::strchr("{%#", source_[i + 1]) != nullptr) return i;
    }
    return source_.size();
  }

  void emit_text(std::string text) {
    if (!text.empty())
      tokens_.push_back(Token{Tok::kText, std::move(text), Value(), line_of(pos_)});
  }

  // After a tag's end: `-` eats all whitespace, a block or comment end eats
  // one newline (trim_blocks). Returns whether a newline was eaten.
  bool consume_after_end(bool trim_minus, bool trim_one_newline) {
    const size_t begin = pos_;
    if (trim_minus) {
      while (pos_ < source_.size() && is_ascii_space(source_[pos_]))
        ++pos_;
    } else if (trim_one_newline && pos_ < source_.size() && source_[pos_] == '\n') {
      ++pos_;
    }
    return pos_ > begin && source_[pos_ - 1] == '\n';
  }

  bool skip_comment(int line) {
    const size_t close = source_.find("#}", pos_);
    if (close == std::string::npos) fail(line, "comment '{#' is never closed with '#}'");
    const char sign = close > pos_ ? source_[close - 1] : '\0';
    pos_ = close + 2;
    return consume_after_end(sign == '-', sign != '+');
  }

  // Lexes the inside of {{ ... }} or {% ... %} up to and including its end.
  bool lex_tag(Tok begin, int line) {
    tokens_.push_back(Token{begin, "", Value(), line});
    const bool block = begin == Tok::kBlockBegin;
    const std::string_view end = block ? "%}" : "}}";
    int depth = 0;  // open brackets: their closing braces do not end the tag
    while (true) {
      while (pos_ < source_.size() && is_ascii_space(source_[pos_]))
        ++pos_;
      if (pos_ >= source_.size()) {
        fail(line, std::string("'") + (block ? "{%" : "{{") + "' is never closed with '" +
                       std::string(end) + "'");
      }
      const std::string_view rest = std::string_view(source_).substr(pos_);
      if (depth == 0) {
        const bool minus = rest.substr(0, 1) == "-" && rest.substr(1, 2) == end;
        const bool plus = block && rest.substr(0, 1) == "+" && rest.substr(1, 2) == end;
        if (minus || plus || rest.substr(0, 2) == end) {
          tokens_.push_back(
              Token{block ? Tok::kBlockEnd : Tok::kVarEnd, "", Value(), line_of(pos_)});
          pos_ += (minus || plus) ? 3 : 2;
          return consume_after_end(minus, block && !plus);
        }
      }
      lex_token(depth);
    }
  }

  void lex_token(int& depth) {
    const int line = line_of(pos_);
    const char c = source_[pos_];
    if (is_name_start(c)) {
      const size_t begin = pos_;
      while (pos_ < source_.size() && is_name_char(source_[pos_]))
        ++pos_;
      tokens_.push_back(Token{Tok::kName, source_.substr(begin, pos_ - begin), Value(), line});
    } else if (is_digit(c)) {
      lex_number(line);
    } else if (c == '\'' || c == '"') {
      lex_string(line);
    } else {
      static const char* const kOperators[] = {"//", "**", "==", "!=", ">=", "<=", "+", "-", "*",
                                               "/",  "%",  "~",  "<",  ">",  "=",  "(", ")", "[",
                                               "]",  "{",  "}",  ",",  ".",  ":",  "|"};
      for (const char* op : kOperators) {
        if (source_.compare(pos_, std::strlen(op), op) != 0) continue;
        if (std::strchr("([{", op[0]) != nullptr && op[1] == '\0') ++depth;
        if (std::strchr(")]}", op[0]) != nullptr && op[1] == '\0' && depth > 0) --depth;
        tokens_.push_back(Token{Tok::kOp, op, Value(), line});
        pos_ += std::strlen(op);
        return;
      }
      fail(line, std::string("unexpected character '") + c + "'");
    }
  }

  void lex_number(int line) {
    const auto digits = [&] {
      std::string out;
      while (pos_ < source_.size() &&
             (is_digit(source_[pos_]) ||
              (source_[pos_] == '_' && pos_ + 1 < source_.size() && is_digit(source_[pos_ + 1])))) {
        if (source_[pos_] != '_') out += source_[pos_];
        ++pos_;
      }
      return out;
    };
    // After a dot (`x.0.1`) a number is an attribute index, never a float.
    const bool after_dot = pos_ > 0 && source_[pos_ - 1] == '.';
    std::string text = digits();
    bool is_float = false;
    if (!after_dot && pos_ + 1 < source_.size() && source_[pos_] == '.' &&
        is_digit(source_[pos_ + 1])) {
      ++pos_;
      text += "." + digits();
      is_float = true;
    }
    if (!after_dot && pos_ < source_.size() && (source_[pos_] == 'e' || source_[pos_] == 'E')) {
      size_t at = pos_ + 1;
      if (at < source_.size() && (source_[at] == '+' || source_[at] == '-')) ++at;
      if (at < source_.size() && is_digit(source_[at])) {
        text += "e" + source_.substr(pos_ + 1, at - pos_ - 1);
        pos_ = at;
        text += digits();
        is_float = true;
      }
    }
    Value number;
    if (is_float) {
      number = Value::from_float(std::strtod(text.c_str(), nullptr));
    } else {
      try {
        number = Value::from_int(std::stoll(text));
      } catch (const std::out_of_range&) {
        fail(line, "integer " + text + " does not fit in 64 bits");
      }
    }
    tokens_.push_back(Token{Tok::kNumber, text, number, line});
  }

  // A quoted string with Python's escapes.
  void lex_string(int line) {
    const char quote = source_[pos_++];
    std::string value;
    while (true) {
      if (pos_ >= source_.size()) fail(line, "string literal is never closed");
      const char c = source_[pos_++];
      if (c == quote) break;
      if (c != '\\') {
        value += c;
        continue;
      }
      if (pos_ >= source_.size()) fail(line, "string literal is never closed");
      const char e = source_[pos_++];
      switch (e) {
        case '\n':
          break;  // line continuation
        case '\\':
          value += '\\';
          break;
        case '\'':
          value += '\'';
          break;
        case '"':
          value += '"';
          break;
        case 'n':
          value += '\n';
          break;
        case 't':
          value += '\t';
          break;
        case 'r':
          value += '\r';
          break;
        case 'a':
          value += '\a';
          break;
        case 'b':
          value += '\b';
          break;
        case 'f':
          value += '\f';
          break;
        case 'v':
          value += '\v';
          break;
        case 'x':
        case 'u':
        case 'U': {
          const size_t n = e == 'x' ? 2 : e == 'u' ? 4 : 8;
          if (pos_ + n > source_.size()) fail(line, std::string("truncated \\") + e + " escape");
          const std::string hex = source_.substr(pos_, n);
          if (hex.find_first_not_of("0123456789abcdefABCDEF") != std::string::npos) {
            fail(line, std::string("truncated \\") + e + " escape");
          }
          const auto code = static_cast<char32_t>(std::stoul(hex, nullptr, 16));
          if (code > 0x10ffff || (code >= 0xd800 && code < 0xe000))
            fail(line, "escape is not a valid character");
          value += jinja::encode_utf8(std::u32string_view(&code, 1));
          pos_ += n;
          break;
        }
        default:
          if (e >= '0' && e <= '7') {
            char32_t code = e - '0';
            for (int k = 0;
                 k < 2 && pos_ < source_.size() && source_[pos_] >= '0' && source_[pos_] <= '7';
                 ++k) {
              code = code * 8 + (source_[pos_++] - '0');
            }
            value += jinja::encode_utf8(std::u32string_view(&code, 1));
          } else {
            value += '\\';  // Python keeps unknown escapes as they are
            value += e;
          }
      }
    }
    tokens_.push_back(Token{Tok::kString, std::move(value), Value(), line});
  }

  const std::string& origin_;
  std::string source_;
  size_t pos_ = 0;
  size_t counted_ = 0;  // line_ counts the newlines before this offset
  int line_ = 1;
  std::vector<Token> tokens_;
};

// ---------------------------------------------------------------- syntax tree

class Renderer;

struct Expr {
  int line = 0;
  virtual ~Expr() = default;
  virtual Value eval(Renderer& r) const = 0;
};
using ExprPtr = std::unique_ptr<Expr>;

enum class Flow { kNormal, kBreak, kContinue };

struct Stmt {
  int line = 0;
  virtual ~Stmt() = default;
  virtual Flow render(Renderer& r, std::string& out) const = 0;
};
using Body = std::vector<std::unique_ptr<Stmt>>;

struct MacroStmt;

// One level of variables; a macro's level hides its callers' (barrier).
struct Scope {
  std::map<std::string, Value, std::less<>> variables;
  bool barrier = false;
};

class Renderer {
 public:
  explicit Renderer(const std::string& origin) : origin_(origin) { scopes_.emplace_back(); }

  const std::string& origin() const { return origin_; }

  Value lookup(const std::string& name) const {
    for (size_t i = scopes_.size(); i-- > 0;) {
      const auto found = scopes_[i].variables.find(name);
      if (found != scopes_[i].variables.end()) return found->second;
      if (scopes_[i].barrier) i = std::min(i, size_t{2});  // go on with the template's top level
    }
    return Value::undefined("'" + name + "' is undefined");
  }
  void assign(const std::string& name, Value value) {
    scopes_.back().variables[name] = std::move(value);
  }
  void push_scope(bool barrier) { scopes_.push_back(Scope{{}, barrier}); }
  void pop_scope() { scopes_.pop_back(); }

  // Evaluates an expression of the statement on `line`, turning evaluation
  // problems into errors that name the origin and line.
  Value evaluate(const Expr& expr, int line) {
    try {
      return expr.eval(*this);
    } catch (const jinja::TemplateRaised& e) {
      throw ChatTemplateError(where(origin_, line) + "raise_exception: " + e.what());
    } catch (const EvalError& e) {
      throw ChatTemplateError(where(origin_, line) + e.what());
    }
  }

  Flow render_body(const Body& body, std::string& out) {
    for (const auto& stmt : body) {
      if (++steps_ > kMaxSteps) {
        throw ChatTemplateError(where(origin_, stmt->line) +
                                "template runs too long (endless loop?)");
      }
      const Flow flow = stmt->render(*this, out);
      if (flow != Flow::kNormal) return flow;
    }
    return Flow::kNormal;
  }

  Value call_macro(const MacroStmt& macro, const Call& call);

 private:
  const std::string& origin_;
  std::vector<Scope>
      scopes_;  // [0]: globals and the caller's variables, [1]: the template's top level
  int64_t steps_ = 0;
  int macro_depth_ = 0;
};

// Expressions.

struct Literal : Expr {
  Value value;
  Value eval(Renderer&) const override { return value; }
};

struct NameExpr : Expr {
  std::string name;
  Value eval(Renderer& r) const override { return r.lookup(name); }
};

struct ListExpr : Expr {
  std::vector<ExprPtr> items;
  bool tuple = false;
  Value eval(Renderer& r) const override {
    List values;
    for (const auto& item : items)
      values.push_back(item->eval(r));
    return tuple ? Value::from_tuple(std::move(values)) : Value::from_list(std::move(values));
  }
};

struct DictExpr : Expr {
  std::vector<std::pair<ExprPtr, ExprPtr>> entries;
  Value eval(Renderer& r) const override {
    jinja::Dict dict;
    for (const auto& [key_expr, value_expr] : entries) {
      const Value key = key_expr->eval(r);
      if (!key.is_string()) throw EvalError("dict keys other than strings are not supported");
      Value value = value_expr->eval(r);
      const auto found = std::find_if(dict.begin(), dict.end(),
                                      [&](const auto& entry) { return entry.first == key.text; });
      if (found != dict.end()) {
        found->second = std::move(value);
      } else {
        dict.emplace_back(key.text, std::move(value));
      }
    }
    return Value::from_dict(std::move(dict));
  }
};

struct AttributeExpr : Expr {
  ExprPtr object;
  std::string name;
  Value eval(Renderer& r) const override { return jinja::attribute(object->eval(r), name); }
};

struct SubscriptExpr : Expr {
  ExprPtr object, key;
  Value eval(Renderer& r) const override { return jinja::subscript(object->eval(r), key->eval(r)); }
};

struct SliceExpr : Expr {
  ExprPtr object, start, stop, step;  // bounds may be null
  Value eval(Renderer& r) const override {
    const Value obj = object->eval(r);
    const auto bound = [&](const ExprPtr& e) -> std::optional<int64_t> {
      if (!e) return std::nullopt;
      const Value v = e->eval(r);
      if (v.is_none()) return std::nullopt;
      if (v.kind != Value::Kind::kInt && v.kind != Value::Kind::kBool) {
        throw EvalError("slice indices must be integers or None");
      }
      return v.kind == Value::Kind::kBool ? int64_t{v.boolean} : v.integer;
    };
    return jinja::slice(obj, bound(start), bound(stop), bound(step));
  }
};

struct Arguments {
  std::vector<ExprPtr> positional;
  std::vector<std::pair<std::string, ExprPtr>> keyword;

  Call eval(Renderer& r) const {
    Call call;
    for (const auto& arg : positional)
      call.args.push_back(arg->eval(r));
    for (const auto& [name, arg] : keyword)
      call.kwargs.emplace_back(name, arg->eval(r));
    return call;
  }
};

struct CallExpr : Expr {
  ExprPtr callee;
  Arguments arguments;
  Value eval(Renderer& r) const override {
    const Value f = callee->eval(r);
    if (f.is_undefined()) jinja::fail_undefined(f);
    if (f.kind != Value::Kind::kFunction)
      throw EvalError("'" + jinja::type_name(f) + "' object is not callable");
    return (*f.function)(arguments.eval(r));
  }
};

struct FilterExpr : Expr {
  ExprPtr operand;
  const jinja::Function* filter = nullptr;  // [not null]
  Arguments arguments;
  Value eval(Renderer& r) const override {
    Call call = arguments.eval(r);
    call.args.insert(call.args.begin(), operand->eval(r));
    return (*filter)(call);
  }
};

struct TestExpr : Expr {
  ExprPtr operand;
  const jinja::Function* test = nullptr;  // [not null]
  Arguments arguments;
  bool negated = false;
  Value eval(Renderer& r) const override {
    Call call = arguments.eval(r);
    call.args.insert(call.args.begin(), operand->eval(r));
    return Value::from_bool(jinja::truthy((*test)(call)) != negated);
  }
};

struct NotExpr : Expr {
  ExprPtr operand;
  Value eval(Renderer& r) const override {
    return Value::from_bool(!jinja::truthy(operand->eval(r)));
  }
};

struct NegateExpr : Expr {
  ExprPtr operand;
  bool minus = true;  // false: unary plus
  Value eval(Renderer& r) const override {
    const Value v = operand->eval(r);
    if (minus) return jinja::negate(v);
    if (!v.is_number())
      throw EvalError("bad operand type for unary +: '" + jinja::type_name(v) + "'");
    return v;
  }
};

struct LogicExpr : Expr {
  ExprPtr left, right;
  bool is_and = false;
  Value eval(Renderer& r) const override {
    Value first = left->eval(r);
    if (jinja::truthy(first) == is_and) return right->eval(r);
    return first;
  }
};

struct BinaryExpr : Expr {
  std::string op;
  ExprPtr left, right;
  Value eval(Renderer& r) const override {
    const Value a = left->eval(r), b = right->eval(r);
    if (op == "+") return jinja::add(a, b);
    if (op == "-") return jinja::subtract(a, b);
    if (op == "*") return jinja::multiply(a, b);
    if (op == "/") return jinja::divide(a, b);
    if (op == "//") return jinja::floor_divide(a, b);
    if (op == "%") return jinja::modulo(a, b);
    if (op == "**") return jinja::power(a, b);
    return Value::from_string(jinja::to_str(a) + jinja::to_str(b));  // ~
  }
};

struct CompareExpr : Expr {
  ExprPtr first;
  std::vector<std::pair<std::string, ExprPtr>> rest;  // Python chains: a < b < c
  Value eval(Renderer& r) const override {
    Value left = first->eval(r);
    for (const auto& [op, expr] : rest) {
      Value right = expr->eval(r);
      bool holds = false;
      if (op == "==") holds = jinja::equals(left, right);
      if (op == "!=") holds = !jinja::equals(left, right);
      if (op == "<") holds = jinja::less(left, right);
      if (op == ">") holds = jinja::less(right, left);
      if (op == "<=") holds = !jinja::less(right, left);
      if (op == ">=") holds = !jinja::less(left, right);
      if (op == "in") holds = jinja::contains(right, left);
      if (op == "not in") holds = !jinja::contains(right, left);
      if (!holds) return Value::from_bool(false);
      left = std::move(right);
    }
    return Value::from_bool(true);
  }
};

struct ConditionalExpr : Expr {
  ExprPtr condition, if_true, if_false;  // if_false may be null
  Value eval(Renderer& r) const override {
    if (jinja::truthy(condition->eval(r))) return if_true->eval(r);
    if (if_false) return if_false->eval(r);
    return Value::undefined("the inline if-expression on line " + std::to_string(line) +
                            " evaluated to false and no else section was defined.");
  }
};

// Statements.

struct TextStmt : Stmt {
  std::string text;
  Flow render(Renderer&, std::string& out) const override {
    out += text;
    return Flow::kNormal;
  }
};

struct OutputStmt : Stmt {
  ExprPtr expr;
  Flow render(Renderer& r, std::string& out) const override {
    const Value v = r.evaluate(*expr, line);
    try {
      out += jinja::to_str(v);
    } catch (const EvalError& e) {
      throw ChatTemplateError(where(r.origin(), line) + e.what());
    }
    return Flow::kNormal;
  }
};

struct IfStmt : Stmt {
  std::vector<std::pair<ExprPtr, Body>> branches;  // if, elif...
  Body otherwise;
  Flow render(Renderer& r, std::string& out) const override {
    for (const auto& [condition, body] : branches) {
      if (jinja::truthy(r.evaluate(*condition, condition->line))) return r.render_body(body, out);
    }
    return r.render_body(otherwise, out);
  }
};

// The names a for loop or set binds: one name, or several unpacked from a sequence.
struct Target {
  std::vector<std::string> names;
  bool unpack = false;

  void bind(Renderer& r, const Value& value) const {
    if (!unpack) {
      r.assign(names[0], value);
      return;
    }
    const List items = jinja::iterate(value);
    if (items.size() != names.size()) {
      throw EvalError("cannot unpack " + std::to_string(items.size()) + " values into " +
                      std::to_string(names.size()) + " names");
    }
    for (size_t i = 0; i < names.size(); ++i)
      r.assign(names[i], items[i]);
  }
};

struct ForStmt : Stmt {
  Target target;
  ExprPtr iterable;
  ExprPtr filter;  // may be null: `for x in xs if cond`
  Body body, otherwise;

  Flow render(Renderer& r, std::string& out) const override {
    List items;
    try {
      items = jinja::iterate(r.evaluate(*iterable, line));
      if (filter) {
        List kept;
        for (const Value& item : items) {
          r.push_scope(false);
          target.bind(r, item);
          const bool keep = jinja::truthy(r.evaluate(*filter, line));
          r.pop_scope();
          if (keep) kept.push_back(item);
        }
        items = std::move(kept);
      }
    } catch (const EvalError& e) {
      throw ChatTemplateError(where(r.origin(), line) + e.what());
    }
    if (items.empty()) return render_scoped(r, otherwise, out);
    const auto n = static_cast<int64_t>(items.size());
    for (int64_t i = 0; i < n; ++i) {
      r.push_scope(false);
      try {
        target.bind(r, items[i]);
      } catch (const EvalError& e) {
        throw ChatTemplateError(where(r.origin(), line) + e.what());
      }
      r.assign("loop", loop_object(items, i));
      const Flow flow = r.render_body(body, out);
      r.pop_scope();
      if (flow == Flow::kBreak) break;
    }
    return Flow::kNormal;
  }

  static Flow render_scoped(Renderer& r, const Body& body, std::string& out) {
    r.push_scope(false);
    const Flow flow = r.render_body(body, out);
    r.pop_scope();
    return flow;
  }

  static Value loop_object(const List& items, int64_t i) {
    const auto n = static_cast<int64_t>(items.size());
    jinja::Dict loop = {
        {"index", Value::from_int(i + 1)},    {"index0", Value::from_int(i)},
        {"revindex", Value::from_int(n - i)}, {"revindex0", Value::from_int(n - i - 1)},
        {"first", Value::from_bool(i == 0)},  {"last", Value::from_bool(i == n - 1)},
        {"length", Value::from_int(n)}};
    if (i > 0) loop.emplace_back("previtem", items[i - 1]);
    if (i + 1 < n) loop.emplace_back("nextitem", items[i + 1]);
    loop.emplace_back("cycle", Value::from_function([i](const Call& call) {
                        if (call.args.empty()) throw EvalError("no items for cycling given");
                        return call.args[i % static_cast<int64_t>(call.args.size())];
                      }));
    return Value::from_dict(std::move(loop));
  }
};

struct SetStmt : Stmt {
  Target target;
  std::string attribute;  // `set ns.attribute = ...`: target names the namespace
  ExprPtr value;          // null for a block set: the body's text is the value
  Body body;

  Flow render(Renderer& r, std::string&) const override {
    Value v;
    if (value) {
      v = r.evaluate(*value, line);
    } else {
      std::string text;
      r.render_body(body, text);
      v = Value::from_string(std::move(text));
    }
    try {
      if (attribute.empty()) {
        target.bind(r, v);
        return Flow::kNormal;
      }
      const Value ns = r.lookup(target.names[0]);
      if (ns.kind != Value::Kind::kNamespace)
        throw EvalError("cannot assign attribute on non-namespace object");
      if (!attribute.empty() && attribute[0] == '_') {
        throw EvalError(
            "chat templates cannot store underscore-prefixed attributes on a namespace");
      }
      const auto found = std::find_if(ns.dict->begin(), ns.dict->end(),
                                      [&](const auto& entry) { return entry.first == attribute; });
      if (found != ns.dict->end()) {
        found->second = std::move(v);
      } else {
        ns.dict->emplace_back(attribute, std::move(v));
      }
    } catch (const EvalError& e) {
      throw ChatTemplateError(where(r.origin(), line) + e.what());
    }
    return Flow::kNormal;
  }
};

struct MacroStmt : Stmt {
  std::string name;
  std::vector<std::pair<std::string, ExprPtr>> parameters;  // default may be null
  Body body;

  Flow render(Renderer& r, std::string&) const override {
    r.assign(name, Value::from_function(
                       [this, &r](const Call& call) { return r.call_macro(*this, call); }));
    return Flow::kNormal;
  }
};

struct LoopControlStmt : Stmt {
  Flow flow = Flow::kBreak;
  Flow render(Renderer&, std::string&) const override { return flow; }
};

// transformers' {% generation %} marks assistant text; rendering keeps its body as is.
struct BlockStmt : Stmt {
  Body body;
  Flow render(Renderer& r, std::string& out) const override { return r.render_body(body, out); }
};

Value Renderer::call_macro(const MacroStmt& macro, const Call& call) {
  if (call.args.size() > macro.parameters.size()) {
    throw EvalError("macro '" + macro.name + "' takes not more than " +
                    std::to_string(macro.parameters.size()) + " argument(s)");
  }
  if (macro_depth_ >= kMaxMacroDepth) throw EvalError("macro calls nest too deeply");
  ++macro_depth_;
  push_scope(true);
  for (size_t i = 0; i < macro.parameters.size(); ++i) {
    const auto& [name, fallback] = macro.parameters[i];
    const auto keyword =
        std::find_if(call.kwargs.begin(), call.kwargs.end(),
                     [&wanted = name](const auto& kw) { return kw.first == wanted; });
    if (i < call.args.size()) {
      assign(name, call.args[i]);
    } else if (keyword != call.kwargs.end()) {
      assign(name, keyword->second);
    } else if (fallback) {
      assign(name, fallback->eval(*this));
    } else {
      assign(name, Value::undefined("parameter '" + name + "' was not provided"));
    }
  }
  for (const auto& [key, unused] : call.kwargs) {
    const bool known =
        std::any_of(macro.parameters.begin(), macro.parameters.end(),
                    [&wanted = key](const auto& parameter) { return parameter.first == wanted; });
    if (!known)
      throw EvalError("macro '" + macro.name + "' takes no keyword argument '" + key + "'");
  }
  std::string out;
  render_body(macro.body, out);
  pop_scope();
  --macro_depth_;
  return Value::from_string(std::move(out));
}

// ---------------------------------------------------------------- parser

class Parser {
 public:
  Parser(std::vector<Token> tokens, const std::string& origin)
      : tokens_(std::move(tokens)), origin_(origin) {}

  Body parse_template() {
    std::string end;
    Body body = parse_body({}, "", 0, end);
    return body;
  }

 private:
  [[noreturn]] void fail(int line, const std::string& what) const {
    throw ChatTemplateError(where(origin_, line) + what);
  }

  const Token& peek(size_t ahead = 0) const {
    return tokens_[std::min(pos_ + ahead, tokens_.size() - 1)];
  }
  Token next() {
    Token t = peek();
    if (pos_ < tokens_.size() - 1) ++pos_;
    return t;
  }
  bool is_op(const char* op, size_t ahead = 0) const {
    return peek(ahead).kind == Tok::kOp && peek(ahead).text == op;
  }
  bool is_name(const char* name, size_t ahead = 0) const {
    return peek(ahead).kind == Tok::kName && peek(ahead).text == name;
  }
  bool skip_op(const char* op) {
    if (!is_op(op)) return false;
    next();
    return true;
  }
  bool skip_name(const char* name) {
    if (!is_name(name)) return false;
    next();
    return true;
  }
  std::string describe(const Token& t) const {
    switch (t.kind) {
      case Tok::kEof:
        return "end of template";
      case Tok::kVarEnd:
        return "end of '{{ }}'";
      case Tok::kBlockEnd:
        return "end of '{% %}'";
      case Tok::kString:
        return "string";
      default:
        return "'" + t.text + "'";
    }
  }
  void expect_op(const char* op) {
    if (!skip_op(op))
      fail(peek().line, std::string("expected '") + op + "', found " + describe(peek()));
  }
  std::string expect_name() {
    if (peek().kind != Tok::kName) fail(peek().line, "expected a name, found " + describe(peek()));
    return next().text;
  }
  void expect_block_end() {
    if (peek().kind != Tok::kBlockEnd)
      fail(peek().line, "expected end of tag '%}', found " + describe(peek()));
    next();
  }

  // Counts nesting so that deep input is an error, not a stack overflow.
  struct Nesting {
    Parser& parser;
    explicit Nesting(Parser& p, int line) : parser(p) {
      if (++parser.depth_ > kMaxNesting) parser.fail(line, "nesting too deep");
    }
    ~Nesting() { --parser.depth_; }
    Nesting(const Nesting&) = delete;
    Nesting& operator=(const Nesting&) = delete;
  };

  // Operators chained in one loop (a + b + c ...) nest the tree as deeply as
  // parentheses would; `chain` counts them.
  void deepen(int& chain, int line) {
    if (depth_ + ++chain > kMaxNesting) fail(line, "nesting too deep");
  }

  template <typename T>
  std::unique_ptr<T> node(int line) {
    auto n = std::make_unique<T>();
    n->line = line;
    return n;
  }

  // Statements up to one of `ends` (a block tag name, left unconsumed after
  // its name: `end` receives it). `opener` names the block for the error
  // when the template ends first.
  Body parse_body(const std::vector<std::string>& ends, const std::string& opener, int opener_line,
                  std::string& end) {
    Nesting nesting(*this, opener_line);
    Body body;
    while (true) {
      const Token& t = peek();
      if (t.kind == Tok::kEof) {
        if (ends.empty()) return body;
        fail(opener_line, "'" + opener + "' is never closed (expected '" + ends.back() + "')");
      }
      if (t.kind == Tok::kText) {
        auto text = node<TextStmt>(t.line);
        text->text = next().text;
        body.push_back(std::move(text));
      } else if (t.kind == Tok::kVarBegin) {
        const int line = next().line;
        auto output = node<OutputStmt>(line);
        output->expr = parse_tuple(true);
        if (peek().kind != Tok::kVarEnd)
          fail(peek().line, "expected end of '{{ }}', found " + describe(peek()));
        next();
        body.push_back(std::move(output));
      } else if (t.kind == Tok::kBlockBegin) {
        const int line = next().line;
        if (peek().kind != Tok::kName) fail(line, "expected a tag name, found " + describe(peek()));
        const std::string name = peek().text;
        if (std::find(ends.begin(), ends.end(), name) != ends.end()) {
          next();
          end = name;
          return body;
        }
        body.push_back(parse_statement(line));
      } else {
        fail(t.line, "unexpected " + describe(t));
      }
    }
  }

  std::unique_ptr<Stmt> parse_statement(int line) {
    const std::string name = next().text;
    if (name == "if") return parse_if(line);
    if (name == "for") return parse_for(line);
    if (name == "set") return parse_set(line);
    if (name == "macro") return parse_macro(line);
    if (name == "generation") {
      expect_block_end();
      auto block = node<BlockStmt>(line);
      std::string end;
      block->body = parse_body({"endgeneration"}, "generation", line, end);
      expect_block_end();
      return block;
    }
    if (name == "break" || name == "continue") {
      if (loop_depth_ == 0) fail(line, "'" + name + "' outside of a for loop");
      auto control = node<LoopControlStmt>(line);
      control->flow = name == "break" ? Flow::kBreak : Flow::kContinue;
      expect_block_end();
      return control;
    }
    static const char* const kKnownUnsupported[] = {"raw",     "include", "import",    "from",
                                                    "extends", "block",   "call",      "filter",
                                                    "with",    "do",      "autoescape"};
    for (const char* tag : kKnownUnsupported) {
      if (name == tag)
        fail(line, "the '" + name + "' tag is not supported by muse-train's chat templates");
    }
    fail(line, "unknown or misplaced tag '" + name + "'");
  }

  std::unique_ptr<Stmt> parse_if(int line) {
    auto stmt = node<IfStmt>(line);
    ExprPtr condition = parse_expression(true);
    while (true) {
      expect_block_end();
      std::string end;
      Body body = parse_body({"elif", "else", "endif"}, "if", line, end);
      stmt->branches.emplace_back(std::move(condition), std::move(body));
      if (end == "elif") {
        condition = parse_expression(true);
        continue;
      }
      if (end == "else") {
        expect_block_end();
        stmt->otherwise = parse_body({"endif"}, "if", line, end);
      }
      expect_block_end();
      return stmt;
    }
  }

  Target parse_target() {
    Target target;
    target.names.push_back(expect_name());
    while (skip_op(",")) {
      target.unpack = true;
      if (peek().kind != Tok::kName) break;
      target.names.push_back(expect_name());
    }
    return target;
  }

  std::unique_ptr<Stmt> parse_for(int line) {
    auto stmt = node<ForStmt>(line);
    stmt->target = parse_target();
    if (!skip_name("in")) fail(peek().line, "expected 'in' in for loop, found " + describe(peek()));
    stmt->iterable = parse_tuple(false);
    if (skip_name("if")) stmt->filter = parse_expression(true);
    if (is_name("recursive")) fail(line, "recursive for loops are not supported");
    expect_block_end();
    std::string end;
    ++loop_depth_;
    stmt->body = parse_body({"else", "endfor"}, "for", line, end);
    --loop_depth_;
    if (end == "else") {
      expect_block_end();
      stmt->otherwise = parse_body({"endfor"}, "for", line, end);
    }
    expect_block_end();
    return stmt;
  }

  std::unique_ptr<Stmt> parse_set(int line) {
    auto stmt = node<SetStmt>(line);
    if (peek().kind == Tok::kName && is_op(".", 1)) {
      stmt->target.names.push_back(next().text);
      next();
      stmt->attribute = expect_name();
    } else {
      stmt->target = parse_target();
    }
    if (skip_op("=")) {
      stmt->value = parse_tuple(true);
      expect_block_end();
      return stmt;
    }
    if (stmt->target.unpack || !stmt->attribute.empty()) fail(line, "a block set assigns one name");
    if (is_op("|")) fail(line, "filters on a block set are not supported");
    expect_block_end();
    std::string end;
    stmt->body = parse_body({"endset"}, "set", line, end);
    expect_block_end();
    return stmt;
  }

  std::unique_ptr<Stmt> parse_macro(int line) {
    auto stmt = node<MacroStmt>(line);
    stmt->name = expect_name();
    expect_op("(");
    while (!skip_op(")")) {
      if (!stmt->parameters.empty()) expect_op(",");
      if (skip_op(")")) break;
      std::string parameter = expect_name();
      ExprPtr fallback = skip_op("=") ? parse_expression(true) : nullptr;
      stmt->parameters.emplace_back(std::move(parameter), std::move(fallback));
    }
    expect_block_end();
    std::string end;
    const int saved_loops = loop_depth_;
    loop_depth_ = 0;  // break inside a macro cannot leave the caller's loop
    stmt->body = parse_body({"endmacro"}, "macro", line, end);
    loop_depth_ = saved_loops;
    if (peek().kind == Tok::kName && peek().text == stmt->name) next();
    expect_block_end();
    return stmt;
  }

  // Expressions, loosest binding first, as Jinja's parser.

  ExprPtr parse_tuple(bool with_conditional) {
    const int line = peek().line;
    ExprPtr first = with_conditional ? parse_expression(true) : parse_or();
    if (!is_op(",")) return first;
    auto tuple = node<ListExpr>(line);
    tuple->tuple = true;
    tuple->items.push_back(std::move(first));
    while (skip_op(",")) {
      if (peek().kind == Tok::kVarEnd || peek().kind == Tok::kBlockEnd || is_op(")") ||
          is_name("if"))
        break;
      tuple->items.push_back(with_conditional ? parse_expression(true) : parse_or());
    }
    return tuple;
  }

  ExprPtr parse_expression(bool with_conditional) {
    Nesting nesting(*this, peek().line);
    const int line = peek().line;
    ExprPtr expr = parse_or();
    int chain = 0;
    while (with_conditional && skip_name("if")) {
      deepen(chain, line);
      auto conditional = node<ConditionalExpr>(line);
      conditional->condition = parse_or();
      conditional->if_true = std::move(expr);
      if (skip_name("else")) conditional->if_false = parse_expression(true);
      expr = std::move(conditional);
    }
    return expr;
  }

  ExprPtr parse_logic(bool is_and) {
    const int line = peek().line;
    ExprPtr left = is_and ? parse_not() : parse_logic(true);
    int chain = 0;
    while (skip_name(is_and ? "and" : "or")) {
      deepen(chain, line);
      auto logic = node<LogicExpr>(line);
      logic->is_and = is_and;
      logic->left = std::move(left);
      logic->right = is_and ? parse_not() : parse_logic(true);
      left = std::move(logic);
    }
    return left;
  }
  ExprPtr parse_or() { return parse_logic(false); }

  ExprPtr parse_not() {
    Nesting nesting(*this, peek().line);
    if (is_name("not")) {
      auto negation = node<NotExpr>(next().line);
      negation->operand = parse_not();
      return negation;
    }
    return parse_compare();
  }

  ExprPtr parse_compare() {
    const int line = peek().line;
    ExprPtr first = parse_math1();
    std::vector<std::pair<std::string, ExprPtr>> rest;
    int chain = 0;
    while (true) {
      deepen(chain, line);
      static const char* const kComparisons[] = {"==", "!=", "<", "<=", ">", ">="};
      const char* op = nullptr;
      for (const char* candidate : kComparisons) {
        if (is_op(candidate)) op = candidate;
      }
      if (op != nullptr) {
        next();
        rest.emplace_back(op, parse_math1());
      } else if (skip_name("in")) {
        rest.emplace_back("in", parse_math1());
      } else if (is_name("not") && is_name("in", 1)) {
        next();
        next();
        rest.emplace_back("not in", parse_math1());
      } else {
        break;
      }
    }
    if (rest.empty()) return first;
    auto compare = node<CompareExpr>(line);
    compare->first = std::move(first);
    compare->rest = std::move(rest);
    return compare;
  }

  ExprPtr binary(std::string op, ExprPtr left, ExprPtr right, int line) {
    auto expr = node<BinaryExpr>(line);
    expr->op = std::move(op);
    expr->left = std::move(left);
    expr->right = std::move(right);
    return expr;
  }

  ExprPtr parse_math1() {
    const int line = peek().line;
    ExprPtr left = parse_concat();
    int chain = 0;
    while (is_op("+") || is_op("-")) {
      deepen(chain, line);
      std::string op = next().text;
      left = binary(std::move(op), std::move(left), parse_concat(), line);
    }
    return left;
  }

  ExprPtr parse_concat() {
    const int line = peek().line;
    ExprPtr left = parse_math2();
    int chain = 0;
    while (skip_op("~")) {
      deepen(chain, line);
      left = binary("~", std::move(left), parse_math2(), line);
    }
    return left;
  }

  ExprPtr parse_math2() {
    const int line = peek().line;
    ExprPtr left = parse_pow();
    int chain = 0;
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      deepen(chain, line);
      std::string op = next().text;
      left = binary(std::move(op), std::move(left), parse_pow(), line);
    }
    return left;
  }

  ExprPtr parse_pow() {
    const int line = peek().line;
    ExprPtr left = parse_unary(true);
    int chain = 0;
    while (skip_op("**")) {
      deepen(chain, line);
      left = binary("**", std::move(left), parse_unary(true), line);
    }
    return left;
  }

  ExprPtr parse_unary(bool with_filter) {
    Nesting nesting(*this, peek().line);
    const int line = peek().line;
    ExprPtr expr;
    if (is_op("-") || is_op("+")) {
      auto sign = node<NegateExpr>(line);
      sign->minus = next().text == "-";
      sign->operand = parse_unary(false);
      expr = std::move(sign);
    } else {
      expr = parse_primary();
    }
    expr = parse_postfix(std::move(expr));
    return with_filter ? parse_filters(std::move(expr)) : std::move(expr);
  }

  ExprPtr parse_primary() {
    const Token t = next();
    if (t.kind == Tok::kName) {
      auto literal = node<Literal>(t.line);
      if (t.text == "true" || t.text == "True") {
        literal->value = Value::from_bool(true);
      } else if (t.text == "false" || t.text == "False") {
        literal->value = Value::from_bool(false);
      } else if (t.text == "none" || t.text == "None") {
        literal->value = Value::none();
      } else {
        auto name = node<NameExpr>(t.line);
        name->name = t.text;
        return name;
      }
      return literal;
    }
    if (t.kind == Tok::kString) {
      std::string text = t.text;
      while (peek().kind == Tok::kString)
        text += next().text;  // adjacent literals join
      auto literal = node<Literal>(t.line);
      literal->value = Value::from_string(std::move(text));
      return literal;
    }
    if (t.kind == Tok::kNumber) {
      auto literal = node<Literal>(t.line);
      literal->value = t.number;
      return literal;
    }
    if (t.kind == Tok::kOp && t.text == "(") {
      if (skip_op(")")) {
        auto empty = node<ListExpr>(t.line);
        empty->tuple = true;
        return empty;
      }
      ExprPtr inner = parse_tuple(true);
      expect_op(")");
      return inner;
    }
    if (t.kind == Tok::kOp && t.text == "[") {
      auto list = node<ListExpr>(t.line);
      while (!skip_op("]")) {
        if (!list->items.empty()) expect_op(",");
        if (skip_op("]")) break;
        list->items.push_back(parse_expression(true));
      }
      return list;
    }
    if (t.kind == Tok::kOp && t.text == "{") {
      auto dict = node<DictExpr>(t.line);
      while (!skip_op("}")) {
        if (!dict->entries.empty()) expect_op(",");
        if (skip_op("}")) break;
        ExprPtr key = parse_expression(true);
        expect_op(":");
        dict->entries.emplace_back(std::move(key), parse_expression(true));
      }
      return dict;
    }
    fail(t.line, "unexpected " + describe(t) + " in an expression");
  }

  ExprPtr parse_postfix(ExprPtr expr) {
    int chain = 0;
    while (true) {
      const int line = peek().line;
      deepen(chain, line);
      if (skip_op(".")) {
        if (peek().kind == Tok::kNumber && peek().number.kind == Value::Kind::kInt) {
          auto index = node<SubscriptExpr>(line);
          index->object = std::move(expr);
          auto key = node<Literal>(line);
          key->value = next().number;
          index->key = std::move(key);
          expr = std::move(index);
        } else {
          auto attribute = node<AttributeExpr>(line);
          attribute->object = std::move(expr);
          attribute->name = expect_name();
          expr = std::move(attribute);
        }
      } else if (skip_op("[")) {
        expr = parse_subscript(std::move(expr), line);
      } else if (is_op("(")) {
        expr = parse_call(std::move(expr), line);
      } else {
        return expr;
      }
    }
  }

  ExprPtr parse_subscript(ExprPtr object, int line) {
    ExprPtr start;
    if (!is_op(":")) {
      start = parse_expression(true);
      if (skip_op("]")) {
        auto index = node<SubscriptExpr>(line);
        index->object = std::move(object);
        index->key = std::move(start);
        return index;
      }
    }
    auto slice = node<SliceExpr>(line);
    slice->object = std::move(object);
    slice->start = std::move(start);
    expect_op(":");
    if (!is_op("]") && !is_op(":")) slice->stop = parse_expression(true);
    if (skip_op(":") && !is_op("]")) slice->step = parse_expression(true);
    expect_op("]");
    return slice;
  }

  Arguments parse_arguments() {
    Arguments arguments;
    expect_op("(");
    while (!skip_op(")")) {
      if (!arguments.positional.empty() || !arguments.keyword.empty()) expect_op(",");
      if (skip_op(")")) break;
      if (is_op("*") || is_op("**"))
        fail(peek().line, "*args and **kwargs in calls are not supported");
      if (peek().kind == Tok::kName && is_op("=", 1)) {
        std::string name = next().text;
        next();
        arguments.keyword.emplace_back(std::move(name), parse_expression(true));
      } else {
        if (!arguments.keyword.empty())
          fail(peek().line, "positional argument after a keyword argument");
        arguments.positional.push_back(parse_expression(true));
      }
    }
    return arguments;
  }

  ExprPtr parse_call(ExprPtr callee, int line) {
    auto call = node<CallExpr>(line);
    call->callee = std::move(callee);
    call->arguments = parse_arguments();
    return call;
  }

  ExprPtr parse_filters(ExprPtr expr) {
    int chain = 0;
    while (true) {
      const int line = peek().line;
      deepen(chain, line);
      if (skip_op("|")) {
        const std::string name = expect_name();
        auto filter = node<FilterExpr>(line);
        filter->filter = jinja::find_filter(name);
        if (filter->filter == nullptr) fail(line, "the filter '" + name + "' is not supported");
        filter->operand = std::move(expr);
        if (is_op("(")) filter->arguments = parse_arguments();
        expr = std::move(filter);
      } else if (skip_name("is")) {
        auto test = node<TestExpr>(line);
        test->negated = skip_name("not");
        const std::string name = expect_name();
        test->test = jinja::find_test(name);
        if (test->test == nullptr) fail(line, "the test '" + name + "' is not supported");
        test->operand = std::move(expr);
        const Token& arg = peek();
        const bool bare_argument = (arg.kind == Tok::kName || arg.kind == Tok::kString ||
                                    arg.kind == Tok::kNumber || is_op("[") || is_op("{")) &&
                                   !is_name("else") && !is_name("or") && !is_name("and");
        if (is_op("(")) {
          test->arguments = parse_arguments();
        } else if (bare_argument) {
          if (is_name("is")) fail(line, "tests cannot be chained with 'is'");
          test->arguments.positional.push_back(parse_postfix(parse_primary()));
        }
        expr = std::move(test);
      } else if (is_op("(")) {
        expr = parse_call(std::move(expr), line);
      } else {
        return expr;
      }
    }
  }

  std::vector<Token> tokens_;
  size_t pos_ = 0;
  const std::string& origin_;
  int depth_ = 0;
  int loop_depth_ = 0;
};

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ChatTemplateError(path.string() + ": cannot be read");
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

struct ChatTemplate::Program {
  std::string origin;
  Body body;
};

ChatTemplate::ChatTemplate(std::shared_ptr<const Program> program) : program_(std::move(program)) {}

ChatTemplate ChatTemplate::parse(std::string_view source, std::string origin) {
  auto program = std::make_shared<Program>();
  program->origin = std::move(origin);
  Parser parser(Lexer(source, program->origin).run(), program->origin);
  program->body = parser.parse_template();
  return ChatTemplate(std::move(program));
}

const std::string& ChatTemplate::origin() const {
  return program_->origin;
}

std::string ChatTemplate::render(const std::vector<ChatMessage>& messages,
                                 const ChatRenderOptions& options) const {
  Renderer r(program_->origin);
  for (auto& [name, function] : jinja::global_functions())
    r.assign(name, function);
  List message_values;
  for (const ChatMessage& message : messages) {
    message_values.push_back(Value::from_dict({{"role", Value::from_string(message.role)},
                                               {"content", Value::from_string(message.content)}}));
  }
  // The variables transformers' render_jinja_template passes.
  r.assign("messages", Value::from_list(std::move(message_values)));
  r.assign("add_generation_prompt", Value::from_bool(options.add_generation_prompt));
  r.assign("tools", Value::none());
  r.assign("documents", Value::none());
  if (!options.bos_token.empty()) r.assign("bos_token", Value::from_string(options.bos_token));
  if (!options.eos_token.empty()) r.assign("eos_token", Value::from_string(options.eos_token));
  if (!options.variables.is_object()) {
    throw ChatTemplateError(program_->origin + ": render variables must be a JSON object");
  }
  for (const auto& [name, value] : options.variables.items()) {
    if (name == "messages" || name == "add_generation_prompt") {
      throw ChatTemplateError(program_->origin + ": '" + name + "' cannot be passed as a variable");
    }
    try {
      r.assign(name, jinja::from_json(value));
    } catch (const EvalError& e) {
      throw ChatTemplateError(program_->origin + ": variable '" + name + "': " + e.what());
    }
  }
  r.push_scope(false);  // the template's own top level
  std::string out;
  r.render_body(program_->body, out);
  return out;
}

std::optional<ChatTemplate> find_chat_template(const std::filesystem::path& dir) {
  const std::filesystem::path jinja_file = dir / "chat_template.jinja";
  if (std::filesystem::exists(jinja_file))
    return ChatTemplate::parse(read_file(jinja_file), jinja_file.string());
  const std::filesystem::path config_file = dir / "tokenizer_config.json";
  if (!std::filesystem::exists(config_file)) return std::nullopt;
  nlohmann::json config;
  try {
    config = nlohmann::json::parse(read_file(config_file));
  } catch (const nlohmann::json::exception& e) {
    throw ChatTemplateError(config_file.string() + ": not valid JSON: " + e.what());
  }
  const auto found = config.find("chat_template");
  if (found == config.end() || found->is_null()) return std::nullopt;
  const std::string origin = config_file.string() + ": chat_template";
  if (found->is_string()) return ChatTemplate::parse(found->get<std::string>(), origin);
  if (found->is_array()) {
    for (const auto& named : *found) {
      // Compared as JSON: a "name" that is not a string is just not "default".
      if (named.is_object() && named.contains("name") && named["name"] == "default" &&
          named.contains("template") && named["template"].is_string()) {
        return ChatTemplate::parse(named["template"].get<std::string>(), origin + "[default]");
      }
    }
    throw ChatTemplateError(origin + ": none of the named templates is called 'default'");
  }
  throw ChatTemplateError(origin + ": expected a string or a list of {\"name\", \"template\"}");
}

}  // namespace muse::data
