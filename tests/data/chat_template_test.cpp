// The chat-template interpreter: expressions, whitespace control, loops,
// namespaces, filters and errors, each against the exact text Jinja (with
// transformers' settings) gives; the real templates are compared with
// transformers by chat_template_check.py.
#include "data/chat_template.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace {

using muse::data::ChatMessage;
using muse::data::ChatRenderOptions;
using muse::data::ChatTemplate;
using muse::data::ChatTemplateError;

std::string render(std::string_view source, std::string_view variables = "{}",
                   const std::vector<ChatMessage>& messages = {}) {
  ChatRenderOptions options;
  options.variables = nlohmann::ordered_json::parse(variables);
  return ChatTemplate::parse(source, "t.jinja").render(messages, options);
}

// The message of the ChatTemplateError that parsing or rendering throws.
std::string error_of(std::string_view source, std::string_view variables = "{}") {
  try {
    render(source, variables);
  } catch (const ChatTemplateError& e) {
    return e.what();
  }
  return "(no error)";
}

// Operators bind as in Jinja and values print as Python prints them.
TEST(ChatTemplate, Expressions) {
  EXPECT_EQ(render("{{ 1 + 2 * 3 }} {{ (1 + 2) * 3 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 "
                   "% 3 }} {{ 1 / 2 }} {{ 2 ** 10 }} {{ -2 ** 2 }}"),
            "7 9 3 -4 1 2 0.5 1024 4");
  EXPECT_EQ(render("{{ 'a' ~ 1 ~ none }} {{ not true or true and false }} {{ 1 < 2 < 3 }} {{ 'b' "
                   "in 'abc' }} {{ 3 not in [1, 2] }} {{ 'y' if 1 > 2 else 'n' }}"),
            "a1None False True True True n");
  EXPECT_EQ(render("{{ [1, 'a', none, true, 1.5, {'k': [2]}, (1,)] }}"),
            "[1, 'a', None, True, 1.5, {'k': [2]}, (1,)]");
  EXPECT_EQ(render("{{ 0.1 + 0.2 }} {{ 1e20 }} {{ 1e-5 }} {{ 3.0 }} {{ 10 / 4 }} {{ 2 * 1.5 }}"),
            "0.30000000000000004 1e+20 1e-05 3.0 2.5 3.0");
  EXPECT_EQ(render("{{ \"a\\tb\\u00e9\\\\\" }}|{{ 'it\\'s' }}|{{ \"x\" \"y\" }}"),
            "a\tbé\\|it's|xy");
}

// Indexes count characters, not bytes; undefined values are empty and falsy.
TEST(ChatTemplate, SubscriptsSlicesAndUndefined) {
  EXPECT_EQ(render("{{ 'hello'[::-1] }} {{ [1, 2, 3][1:] }} {{ [1, 2, 3][-1] }} {{ 'héllo'[1] }} "
                   "{{ 'héllo' | length }} {{ [1, 2, 3, 4][::2] }} {{ 'abc'[-2:] }}"),
            "olleh [2, 3] 3 é 5 [1, 3] bc");
  EXPECT_EQ(render("{{ d.a }}|{{ d['a'] }}|{{ d.missing }}|{{ d.missing is defined }}|{{ "
                   "d.get('missing', 'fallback') }}",
                   R"({"d": {"a": 1}})"),
            "1|1||False|fallback");
  EXPECT_EQ(render("{{ x }}|{{ x is defined }}|{{ x is undefined }}|{{ x | length }}|{{ x | "
                   "default('dflt') }}|{% if not x %}falsy{% endif %}"),
            "|False|True|0|dflt|falsy");
}

// trim_blocks, lstrip_blocks and the - signs, as transformers configures Jinja.
TEST(ChatTemplate, WhitespaceControl) {
  EXPECT_EQ(render("  {%- if true -%}  x  {%- endif -%}  y"), "xy");
  EXPECT_EQ(render("a\n  {% if true %}\n  b\n  {% endif %}\nc\n"), "a\n  b\nc");
  EXPECT_EQ(render("a {# comment #}\n  {# own line #}\nb {{- ' c' }} {{ 'd' -}}   \n e"),
            "a b c de");
}

TEST(ChatTemplate, Loops) {
  EXPECT_EQ(
      render("{% for x in ['a', 'b', 'c'] %}{{ loop.index0 }}{{ loop.index }}{{ x }}{{ loop.length "
             "}}{% if loop.first %}F{% endif %}{% if loop.last %}L{% endif %};{% endfor %}"),
      "01a3F;12b3;23c3L;");
  EXPECT_EQ(render("{% for x in [] %}x{% else %}empty{% endfor %}|{% for x in [1, 2, 3, 4] if x is "
                   "even %}{{ x }}{{ loop.index }}{% endfor %}"),
            "empty|2142");
  EXPECT_EQ(render("{% for k, v in {'a': 1, 'b': 2}.items() %}{{ k }}={{ v }},{% endfor %}|{% for "
                   "k, v in {'z': 0} | items %}{{ k }}{{ v }}{% endfor %}"),
            "a=1,b=2,|z0");
  EXPECT_EQ(render("{% for x in [1, 2, 3, 4, 5] %}{% if x == 2 %}{% continue %}{% endif %}{% if x "
                   "== 4 %}{% break %}{% endif %}{{ x }}{% endfor %}"),
            "13");
  EXPECT_EQ(render("{% set x = 1 %}{% for i in [1, 2] %}{{ x }}{% set x = i * 10 %}{{ x }},{% "
                   "endfor %}{{ x }}"),
            "110,120,1");
}

TEST(ChatTemplate, NamespaceAndMacro) {
  EXPECT_EQ(
      render(
          "{% set ns = namespace(total=0, seen='') %}{% for i in [1, 2, 3] %}{% set ns.total = "
          "ns.total + i %}{% set ns.seen = ns.seen ~ i %}{% endfor %}{{ ns.total }} {{ ns.seen }}"),
      "6 123");
  EXPECT_EQ(render("{% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}{{ "
                   "greet('A') }} {{ greet('B', punct='?') }}"),
            "Hi A! Hi B?");
}

TEST(ChatTemplate, Filters) {
  EXPECT_EQ(render("{{ '  pad  ' | trim }}|{{ 'xxhixx' | trim('x') }}|{{ ['a', 'b'] | join(', ') "
                   "}}|{{ 'abc' | upper }}|{{ 'ABC' | lower }}|{{ 'aXa' | replace('a', 'b') }}|{{ "
                   "'hello wORLD' | capitalize }}|{{ 'hello wORLD-x' | title }}"),
            "pad|hi|a, b|ABC|abc|bXb|Hello world|Hello World-X");
  EXPECT_EQ(
      render("{{ {'b': 'é', 'a': [1, 2.5, none, true]} | tojson }}|{{ {'b': 1, 'a': {}} | "
             "tojson(indent=2, sort_keys=true) }}|{{ 'q\"\\n' | tojson }}"),
      "{\"b\": \"é\", \"a\": [1, 2.5, null, true]}|{\n  \"a\": {},\n  \"b\": 1\n}|\"q\\\"\\n\"");
  EXPECT_EQ(
      render(
          "{{ m | selectattr('role', 'equalto', 'user') | map(attribute='content') | join('+') "
          "}}|{{ m | rejectattr('role', 'equalto', 'user') | list | length }}|{{ m | first }}|{{ "
          "(m | last).role }}|{{ m | map(attribute='role') | list }}",
          R"({"m": [{"role": "user", "content": "u1"}, {"role": "assistant", "content": "a1"}, {"role": "user", "content": "u2"}]})"),
      "u1+u2|1|{'role': 'user', 'content': 'u1'}|user|['user', 'assistant', 'user']");
  EXPECT_EQ(render("{{ '42' | int + 1 }}|{{ 'x' | int }}|{{ 3.9 | int }}|{{ 5 | string ~ '!' }}|{{ "
                   "'ab' | list }}|{{ [1, 2] | reverse | list }}|{{ 'ab' | reverse }}|{{ 'a\\nb' | "
                   "indent(2) }}|{{ 'a\\nb' | indent(2, first=true) }}|{{ [] | first }}"),
            "43|0|3|5!|['a', 'b']|[2, 1]|ba|a\n  b|  a\n  b|");
}

TEST(ChatTemplate, MethodsAndTests) {
  EXPECT_EQ(
      render("{{ ' a b '.strip() }}|{{ 'xa'.lstrip('x') }}|{{ 'ax '.rstrip() }}|{{ "
             "'a,b,,c'.split(',') }}|{{ ' a  b '.split() }}|{{ 'a b c'.split(' ', 1) }}|{{ "
             "'abc'.startswith('ab') }}|{{ 'abc'.endswith(('x', 'c')) }}|{{ 'aa'.replace('a', 'b', "
             "1) }}|{{ 'Ab'.upper() }}{{ 'Ab'.lower() }}|{{ 'hello world'.title() }}"),
      "a b|a|ax|['a', 'b', '', 'c']|['a', 'b']|['a', 'b c']|True|True|ba|ABab|Hello World");
  EXPECT_EQ(render("{{ d.keys() | list }}|{{ d.values() | list }}|{% for k in d %}{{ k }}{% endfor "
                   "%}|{{ d | length }}|{{ 'a' in d }}",
                   R"({"d": {"a": 1, "b": 2}})"),
            "['a', 'b']|[1, 2]|ab|2|True");
  EXPECT_EQ(render("{{ none is none }} {{ 1 is number }} {{ 'a' is string }} {{ {} is mapping }} "
                   "{{ [] is iterable }} {{ [] is sequence }} {{ true is boolean }} {{ false is "
                   "false }} {{ 1 is true }} {{ 'a' is equalto 'a' }} {{ x is not defined }}"),
            "True True True True True True True True False True True");
}

TEST(ChatTemplate, SetForms) {
  EXPECT_EQ(render("{% set a, b = [1, 2] %}{{ a }}{{ b }}|{% set block %}in {{ 'block' }}{% endset "
                   "%}{{ block }}|{{ dict(x=1) }}|{{ range(3) | list }}"),
            "12|in block|{'x': 1}|[0, 1, 2]");
  EXPECT_EQ(render("{{ bos_token is defined }}"), "False");
}

TEST(ChatTemplate, MessagesAndRenderOptions) {
  const ChatTemplate chat = ChatTemplate::parse(
      "{{ bos_token }}{% for m in messages %}<{{ m.role }}>{{ m['content'] }}{{ eos_token }}"
      "{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}{{ tools }}|{{ extra }}",
      "chat.jinja");
  ChatRenderOptions options;
  options.bos_token = "<s>";
  options.eos_token = "</s>";
  options.variables = {{"extra", {1, "two"}}};
  const std::vector<ChatMessage> messages = {{"user", "Hi"}, {"assistant", "Hello"}};
  EXPECT_EQ(chat.render(messages, options),
            "<s><user>Hi</s><assistant>Hello</s><assistant>None|[1, 'two']");
  options.add_generation_prompt = false;
  options.bos_token.clear();
  options.variables = {{"eos_token", "<eos>"}};
  EXPECT_EQ(chat.render(messages, options), "<user>Hi<eos><assistant>Hello<eos>None|");
  EXPECT_EQ(chat.origin(), "chat.jinja");
}

TEST(ChatTemplate, ErrorsNameOriginAndLine) {
  EXPECT_EQ(error_of("a\n{% include 'other.jinja' %}"),
            "t.jinja: line 2: the 'include' tag is not supported by muse-train's chat templates");
  EXPECT_EQ(error_of("x\n{% if true %}\nbody"),
            "t.jinja: line 2: 'if' is never closed (expected 'endif')");
  EXPECT_EQ(error_of("{% for m in messages %}{% endif %}"),
            "t.jinja: line 1: unknown or misplaced tag 'endif'");
  EXPECT_EQ(error_of("{{ 1 + "), "t.jinja: line 1: '{{' is never closed with '}}'");
  EXPECT_EQ(error_of("{# note"), "t.jinja: line 1: comment '{#' is never closed with '#}'");
  EXPECT_EQ(error_of("{{ 'abc }}"), "t.jinja: line 1: string literal is never closed");
  EXPECT_EQ(error_of("\n\n{{ x | frobnicate }}"),
            "t.jinja: line 3: the filter 'frobnicate' is not supported");
  EXPECT_EQ(error_of("{{ x is frobnicated }}"),
            "t.jinja: line 1: the test 'frobnicated' is not supported");
  EXPECT_EQ(error_of("{% if true %}\n  {{ raise_exception('Roles must alternate') }}\n{% endif %}"),
            "t.jinja: line 2: raise_exception: Roles must alternate");
  EXPECT_EQ(error_of("{{ 1 + 'a' }}"),
            "t.jinja: line 1: unsupported operand type(s) for +: 'int' and 'str'");
  EXPECT_EQ(error_of("{{ x.y }}"), "t.jinja: line 1: 'x' is undefined");
  EXPECT_EQ(error_of("{{ nothing('a') }}"), "t.jinja: line 1: 'nothing' is undefined");
  EXPECT_EQ(error_of("{{ d.missing.deeper }}", R"({"d": {}})"),
            "t.jinja: line 1: 'dict object' has no attribute 'missing'");
  EXPECT_EQ(error_of("{{ none | length }}"),
            "t.jinja: line 1: object of type 'NoneType' has no len()");
  EXPECT_EQ(error_of("{{ x | tojson }}"),
            "t.jinja: line 1: Object of type Undefined is not JSON serializable");
  EXPECT_EQ(error_of("{% set n = 1 %}{% set n.a = 2 %}"),
            "t.jinja: line 1: cannot assign attribute on non-namespace object");
  EXPECT_EQ(error_of("{{ 'é' | upper }}"),
            "t.jinja: line 1: changing the case of 'é' is not supported (ASCII letters only)");
  EXPECT_EQ(error_of("{{ '%s' % 1 }}"),
            "t.jinja: line 1: printf-style string formatting ('%') is not supported");
  EXPECT_EQ(error_of("{{ namespace() }}"),
            "t.jinja: line 1: printing a Namespace is not supported (Python prints its address)");
  EXPECT_EQ(error_of("{% break %}"), "t.jinja: line 1: 'break' outside of a for loop");
}

// Malformed input is a ChatTemplateError: no crash, no hang, no stack overflow.
TEST(ChatTemplate, GarbageNeverCrashes) {
  const std::vector<std::string> malformed = {"{{",
                                              "{%",
                                              "{{ }}",
                                              "{% %}",
                                              "{% if %}",
                                              "{{ (((( }}",
                                              "{% for %}",
                                              "{% for x in %}{% endfor %}",
                                              "{% set %}",
                                              "{{ 1 +* 2 }}",
                                              "{{ a.( }}",
                                              "{% else %}",
                                              "{{ [1, 2 }}",
                                              "{{ {'a' 1} }}",
                                              "{% macro %}",
                                              "{{ x is }}",
                                              "{{ x | }}",
                                              "{{ x[ }}",
                                              "{{ x[1:2:3:4] }}",
                                              "{{ } }}",
                                              "{% if x %}{% elif %}{% endif %}",
                                              "{{ 'a' \\ }}",
                                              "{% set x %}",
                                              "{% if " + std::string(100000, '(') + "1 %}",
                                              "{{ " + std::string(100000, '(') + "1 }}",
                                              "{{ " + std::string(50000, '-') + "1 }}",
                                              "{{ 1" + std::string(100000, '+') + " }}"};
  for (const std::string& source : malformed) {
    EXPECT_THROW(ChatTemplate::parse(source, "bad.jinja"), ChatTemplateError)
        << source.substr(0, 60);
  }
  std::string long_chain = "{{ 1";
  for (int i = 0; i < 100000; ++i)
    long_chain += " + 1";
  EXPECT_THROW(ChatTemplate::parse(long_chain + " }}", "bad.jinja"), ChatTemplateError);

  // Random token soup: each either parses and renders, or throws ChatTemplateError.
  const std::vector<std::string> pieces = {
      "{{",    "}}",   "{%",   "%}",    "{#",     "#}",       "-",
      "if ",   "for ", " in ", "endif", "endfor", "set ",     "x",
      "=",     "(",    ")",    "[",     "]",      "{",        "}",
      "'",     "\"",   "|",    "is ",   "not ",   ",",        ".",
      ":",     "1",    " ",    "\n",    "loop",   "messages", "namespace",
      "~",     "+",    "*",    "else",  "macro ", "endmacro", "raise_exception",
      "length"};
  std::mt19937 random(7);
  const std::vector<ChatMessage> messages = {{"user", "Hi"}};
  for (int i = 0; i < 3000; ++i) {
    std::string source;
    const int n = std::uniform_int_distribution<int>(1, 30)(random);
    for (int k = 0; k < n; ++k)
      source += pieces[random() % pieces.size()];
    try {
      ChatTemplate::parse(source, "soup.jinja").render(messages, ChatRenderOptions());
    } catch (const ChatTemplateError&) {
    }
  }
}

class FindChatTemplate : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ =
        std::filesystem::temp_directory_path() /
        ("muse_chat_template_" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) +
         "_" + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  void write(const std::string& name, const std::string& text) {
    std::ofstream(dir_ / name) << text;
  }
  std::string render_found() {
    const auto found = muse::data::find_chat_template(dir_);
    return found ? found->render({{"user", "Hi"}}, ChatRenderOptions()) : "(none)";
  }
  std::filesystem::path dir_;
};

TEST_F(FindChatTemplate, PrefersTheJinjaFileOverTokenizerConfig) {
  EXPECT_EQ(render_found(), "(none)");
  write("tokenizer_config.json", R"({"bos_token": "<s>"})");
  EXPECT_EQ(render_found(), "(none)");
  write("tokenizer_config.json", R"({"chat_template": "config:{{ messages[0].content }}"})");
  EXPECT_EQ(render_found(), "config:Hi");
  write("chat_template.jinja", "file:{{ messages[0].content }}\n");
  EXPECT_EQ(render_found(), "file:Hi");
}

TEST_F(FindChatTemplate, TakesTheDefaultOfNamedTemplates) {
  write(
      "tokenizer_config.json",
      R"({"chat_template": [{"name": "tool_use", "template": "tools"}, {"name": "default", "template": "default"}]})");
  EXPECT_EQ(render_found(), "default");
  write("tokenizer_config.json",
        R"({"chat_template": [{"name": "tool_use", "template": "tools"}]})");
  try {
    muse::data::find_chat_template(dir_);
    FAIL() << "expected ChatTemplateError";
  } catch (const ChatTemplateError& e) {
    EXPECT_NE(std::string(e.what()).find(
                  "tokenizer_config.json: chat_template: none of the named templates is "
                  "called 'default'"),
              std::string::npos)
        << e.what();
  }
  // A name that is not a string is not "default" (fuzz_tokenizer_config).
  write("tokenizer_config.json", R"({"chat_template": [{"name": 5, "template": "x"}]})");
  EXPECT_THROW(muse::data::find_chat_template(dir_), ChatTemplateError);
}

TEST_F(FindChatTemplate, ErrorsNameTheFile) {
  write("tokenizer_config.json", "{not json");
  EXPECT_THROW(muse::data::find_chat_template(dir_), ChatTemplateError);
  write("chat_template.jinja", "line one\n{% if %}");
  try {
    muse::data::find_chat_template(dir_);
    FAIL() << "expected ChatTemplateError";
  } catch (const ChatTemplateError& e) {
    EXPECT_EQ(std::string(e.what()), (dir_ / "chat_template.jinja").string() +
                                         ": line 2: unexpected end of '{% %}' in an expression");
  }
}

}  // namespace
