#include "telemetry/wandb.h"

#include <curl/curl.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdlib>
#include <ctime>
#include <deque>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <stdexcept>
#include <thread>

#include "telemetry/log.h"

namespace muse::telemetry {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

constexpr const char* kSpoolFile = "wandb-spool.jsonl";
constexpr size_t kMaxRowsPerRequest = 500;
// Rows held in memory for the sender; beyond that (a server gone for very
// long) rows stay only in the spool, for wandb-sync.
constexpr size_t kMaxQueuedRows = 100'000;
constexpr double kSendInterval = 2.0;   // seconds between sends while training
constexpr double kHeartbeat = 30.0;     // seconds of silence before a heartbeat
constexpr double kEventsInterval = 10;  // seconds between system-metric rows
constexpr double kBackoffMin = 0.5, kBackoffMax = 30.0;

double unix_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// ---- HTTP ----

struct Response {
  long status = 0;          // 0: no response (connection refused, timeout, reset)
  double retry_after = -1;  // seconds, when the server said
  std::string body;
  std::string error;  // libcurl's message when status is 0
};

size_t append_body(char* data, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

size_t read_header(char* data, size_t size, size_t n, void* out) {
  const std::string line(data, size * n);
  const std::string name = "retry-after:";
  std::string lower = line.substr(0, name.size());
  for (char& c : lower)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (lower == name) {
    try {
      static_cast<Response*>(out)->retry_after = std::stod(line.substr(name.size()));
    } catch (const std::exception&) {
      // An HTTP date instead of seconds: the usual backoff applies.
    }
  }
  return size * n;
}

// One HTTP request. `key` non-empty: HTTP Basic auth as W&B's API wants it;
// upload URLs are pre-signed and carry their own authorisation.
Response request(const char* method, const std::string& url, const std::string& body,
                 const std::string& key, const std::vector<std::string>& extra_headers) {
  static std::once_flag init;
  std::call_once(init, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  Response r;
  CURL* curl = curl_easy_init();
  if (!curl) {
    r.error = "curl_easy_init failed";
    return r;
  }
  curl_slist* headers = nullptr;
  for (const std::string& header : extra_headers)
    headers = curl_slist_append(headers, header.c_str());
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
  curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.c_str());
  curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  if (!key.empty()) {
    curl_easy_setopt(curl, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
    curl_easy_setopt(curl, CURLOPT_USERNAME, "api");
    curl_easy_setopt(curl, CURLOPT_PASSWORD, key.c_str());
  }
  curl_easy_setopt(curl, CURLOPT_USERAGENT, "muse-train");
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, 10L);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT, 20L);  // a hung server is retried, not waited on
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, append_body);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &r.body);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, read_header);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &r);
  const CURLcode code = curl_easy_perform(curl);
  if (code == CURLE_OK) {
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &r.status);
  } else {
    r.error = curl_easy_strerror(code);
  }
  curl_slist_free_all(headers);
  curl_easy_cleanup(curl);
  return r;
}

Response post(const std::string& url, const std::string& body, const std::string& key) {
  return request("POST", url, body, key, {"Content-Type: application/json"});
}

// Statuses retrying cannot fix (the request or the key is wrong).
bool fatal_status(long status) {
  return status == 400 || status == 401 || status == 403 || status == 404 || status == 410 ||
         status == 422;
}

// ---- the spool ----

std::string random_run_id() {
  static const char kChars[] = "abcdefghijklmnopqrstuvwxyz0123456789";
  std::random_device rd;
  std::mt19937_64 gen(rd());
  std::string id;
  for (int i = 0; i < 8; ++i)
    id += kChars[gen() % 36];
  return id;
}

struct Spool {
  json run;                       // {"id", "project", ...}
  std::vector<std::string> rows;  // serialized history rows, in order
  int64_t last_step = -1;
  double last_runtime = 0;
  std::optional<int> exit_code;  // of the last finished launch
  bool preempting = false;       // that launch was stopped by a preemption notice
};

Spool read_spool(const fs::path& path) {
  Spool s;
  std::ifstream in(path);
  std::string line;
  for (int64_t number = 1; std::getline(in, line); ++number) {
    if (line.empty()) continue;
    json j;
    try {
      j = json::parse(line);
    } catch (const json::exception&) {
      // A line cut short by a crash: what follows is a later launch's.
      continue;
    }
    if (j.contains("run")) {
      s.run = j["run"];
    } else if (j.contains("history")) {
      s.rows.push_back(j["history"].dump());
      s.last_step = j["history"].value("_step", s.last_step);
      s.last_runtime = j["history"].value("_runtime", s.last_runtime);
      s.exit_code.reset();
    } else if (j.contains("exit")) {
      s.exit_code = j["exit"].get<int>();
      s.preempting = j.value("preempting", false);
    }
  }
  return s;
}

// A value formatted as YAML ("3", "true", "\"text\"", "[2, 4]") as JSON.
json yaml_value(const std::string& text) {
  try {
    return json::parse(text);
  } catch (const json::exception&) {
    return text;
  }
}

// The resolved config, spooled as dotted keys ("trainer.steps"), nested as
// W&B groups and filters it (trainer -> steps), each top-level key wrapped
// as {"desc": null, "value": ...} as the SDK sends it.
json nested_config(const json& dotted) {
  json nested = json::object();
  for (const auto& [key, value] : dotted.items()) {
    json* node = &nested;
    size_t start = 0;
    for (size_t dot = key.find('.'); dot != std::string::npos; dot = key.find('.', start)) {
      node = &(*node)[key.substr(start, dot - start)];
      start = dot + 1;
    }
    (*node)[key.substr(start)] = value;
  }
  json wrapped = json::object();
  for (const auto& [key, value] : nested.items())
    wrapped[key] = {{"desc", nullptr}, {"value", value}};
  return wrapped;
}

void emit_yaml(YAML::Emitter& out, const json& value) {
  if (value.is_object()) {
    out << YAML::BeginMap;
    for (const auto& [key, item] : value.items()) {
      out << YAML::Key << key << YAML::Value;
      emit_yaml(out, item);
    }
    out << YAML::EndMap;
  } else if (value.is_array()) {
    out << YAML::BeginSeq;
    for (const json& item : value)
      emit_yaml(out, item);
    out << YAML::EndSeq;
  } else if (value.is_string()) {
    out << YAML::DoubleQuoted << value.get<std::string>();
  } else {
    out << value.dump();  // numbers, booleans and null read back as themselves
  }
}

// The Files tab's config.yaml, in the SDK's layout: wandb_version, then the
// wrapped config.
std::string config_yaml(const json& wrapped_config) {
  json document = {{"wandb_version", 1}};
  document.update(wrapped_config);
  YAML::Emitter out;
  emit_yaml(out, document);
  return std::string(out.c_str()) + "\n";
}

std::string iso_utc_now() {
  const std::time_t t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return text;
}

// What the SDK's wandb-metadata.json says about where the run was started,
// as far as muse-train knows it (spooled with the run, so that wandb-sync
// uploads the training machine's, not its own).
json run_metadata(const std::vector<std::string>& args, const std::string& version) {
  utsname system{};
  uname(&system);
  char host[256] = "";
  gethostname(host, sizeof host - 1);
  std::error_code ignored;
  return {{"os", std::string(system.sysname) + "-" + system.release + "-" + system.machine},
          {"host", host},
          {"program", "muse-train"},
          {"version", version},
          {"args", args},
          {"executable", fs::read_symlink("/proc/self/exe", ignored).string()},
          {"startedAt", iso_utc_now()},
          {"cpu_count_logical", std::thread::hardware_concurrency()},
          {"memory",
           {{"total", static_cast<int64_t>(sysconf(_SC_PHYS_PAGES)) * sysconf(_SC_PAGESIZE)}}}};
}

// The run's files for the Files tab.
std::vector<std::pair<std::string, std::string>> run_files(const json& run) {
  return {{"config.yaml", config_yaml(nested_config(run["config"]))},
          {"wandb-metadata.json", run.value("metadata", json::object()).dump(2) + "\n"}};
}

// ---- talking to the server ----

// One run's state on the server: what it has acknowledged, and how to send
// more. Used by the sink's thread and by wandb_sync.
class Uploader {
 public:
  Uploader(WandbEndpoint endpoint, json run)
      : endpoint_(std::move(endpoint)), run_(std::move(run)) {}

  // Learns what the server already holds of the run (a resumed run's lines
  // and summary: RunResumeStatus, as the SDK asks), then creates or resumes
  // it with UpsertBucket. Returns false when the server cannot be reached now.
  bool connect(std::string* fatal) {
    static const char* kResumeQuery =
        "query RunResumeStatus($project: String, $entity: String, $name: String!) { "
        "model(name: $project, entityName: $entity) { id name entity { id name } "
        "bucket(name: $name, missingOk: true) { id name summaryMetrics displayName "
        "logLineCount historyLineCount eventsLineCount config tags } } }";
    json reply;
    if (!graphql("RunResumeStatus", kResumeQuery,
                 {{"project", run_["project"]},
                  {"entity", nullable(run_["entity"])},
                  {"name", run_["id"]}},
                 &reply, fatal))
      return false;
    try {
      const json& model = reply.at("data").at("model");
      const json bucket = model.is_null() ? json(nullptr) : model.value("bucket", json(nullptr));
      if (!bucket.is_null()) {
        console_lines_ = bucket.value("logLineCount", int64_t{0});
        events_lines_ = bucket.value("eventsLineCount", int64_t{0});
        const json summary = bucket.value("summaryMetrics", json(nullptr));
        // A summary this parser cannot read (W&B writes NaN as a bare token)
        // is dropped: the run's summary then holds the keys sent from here.
        if (summary.is_string())
          server_summary_ = json::parse(summary.get<std::string>(), nullptr, false);
        if (!server_summary_.is_object()) server_summary_ = json::object();
      }
    } catch (const json::exception& e) {
      *fatal = std::string("RunResumeStatus: unexpected reply (") + e.what() + ")";
      return false;
    }
    static const char* kMutation =
        "mutation UpsertBucket($name: String, $project: String, $entity: String, $groupName: "
        "String, $displayName: String, $config: JSONString, $jobType: String, $tags: [String!], "
        "$host: String, $program: String) { upsertBucket(input: {name: $name, modelName: "
        "$project, entityName: $entity, groupName: $groupName, displayName: $displayName, "
        "config: $config, jobType: $jobType, tags: $tags, host: $host, jobProgram: $program}) { "
        "bucket { id name displayName project { id name entity { id name } } historyLineCount } "
        "inserted } }";
    char host[256] = "";
    gethostname(host, sizeof host - 1);
    if (!graphql("UpsertBucket", kMutation,
                 {{"name", run_["id"]},
                  {"project", run_["project"]},
                  {"entity", nullable(run_["entity"])},
                  {"groupName", nullable(run_["group"])},
                  {"displayName", run_["name"]},
                  {"config", nested_config(run_["config"]).dump()},
                  {"jobType", run_["job_type"]},
                  {"tags", run_["tags"]},
                  {"host", host},
                  {"program", "muse-train"}},
                 &reply, fatal))
      return false;
    try {
      const json& bucket = reply.at("data").at("upsertBucket").at("bucket");
      entity_ = bucket.at("project").at("entity").at("name").get<std::string>();
      project_ = bucket.at("project").at("name").get<std::string>();
      acked_ = bucket.value("historyLineCount", int64_t{0});
    } catch (const json::exception& e) {
      *fatal = std::string("UpsertBucket: unexpected reply (") + e.what() + ")";
      return false;
    }
    connected_ = true;
    return true;
  }

  // The Files tab: config.yaml and wandb-metadata.json go to the upload URLs
  // CreateRunFiles hands out, and the next file_stream request lists them as
  // uploaded. Returns false on failure, with `error` saying why and `fatal`
  // set when retrying cannot help.
  bool upload_files(std::string* error, bool* fatal) {
    static const char* kMutation =
        "mutation CreateRunFiles($entity: String!, $project: String!, $run: String!, $files: "
        "[String!]!) { createRunFiles(input: {entityName: $entity, projectName: $project, "
        "runName: $run, files: $files}) { runID uploadHeaders files { name uploadUrl } } }";
    const auto files = run_files(run_);
    json names = json::array();
    for (const auto& file : files)
      names.push_back(file.first);
    json reply;
    std::string graphql_fatal;
    if (!graphql(
            "CreateRunFiles", kMutation,
            {{"entity", entity_}, {"project", project_}, {"run", run_["id"]}, {"files", names}},
            &reply, &graphql_fatal)) {
      *fatal = !graphql_fatal.empty();
      *error = *fatal ? graphql_fatal : "graphql CreateRunFiles failed";
      return false;
    }
    try {
      const json& created = reply.at("data").at("createRunFiles");
      std::vector<std::string> headers, done;
      for (const json& header : created.value("uploadHeaders", json::array()))
        headers.push_back(header.get<std::string>());
      for (const json& file : created.at("files")) {
        const std::string name = file.at("name").get<std::string>();
        const auto match = std::find_if(files.begin(), files.end(),
                                        [&](const auto& f) { return f.first == name; });
        if (match == files.end()) continue;
        const Response r =
            request("PUT", file.at("uploadUrl").get<std::string>(), match->second, "", headers);
        if (r.status < 200 || r.status >= 300) {
          *fatal = fatal_status(r.status);
          *error = "upload of " + name + ": " +
                   (r.status ? "HTTP " + std::to_string(r.status) : r.error);
          return false;
        }
        done.push_back(name);
      }
      uploaded_.insert(uploaded_.end(), done.begin(), done.end());
    } catch (const json::exception& e) {
      *fatal = true;
      *error = std::string("CreateRunFiles: unexpected reply (") + e.what() + ")";
      return false;
    }
    return true;
  }

  bool connected() const { return connected_; }
  int64_t acked() const { return acked_; }
  // What the server held of the run when it was resumed.
  int64_t console_lines() const { return console_lines_; }
  int64_t events_lines() const { return events_lines_; }
  const json& server_summary() const { return server_summary_; }
  std::string url() const {
    return endpoint_.base_url + "/files/" + entity_ + "/" + project_ + "/" +
           run_["id"].get<std::string>() + "/file_stream";
  }

  // Posts one file_stream request; `history` rows start at line acked().
  bool send(const std::vector<std::string>& history, const json& extra, std::string* fatal) {
    json body = extra;
    if (!history.empty()) {
      body["files"]["wandb-history.jsonl"] = {{"offset", acked_}, {"content", history}};
    }
    if (!uploaded_.empty()) body["uploaded"] = uploaded_;
    const Response r =
        post(url(), body.dump(-1, ' ', false, json::error_handler_t::replace), endpoint_.api_key);
    if (r.status < 200 || r.status >= 300) return note_failure(r, "file_stream", fatal);
    acked_ += static_cast<int64_t>(history.size());
    uploaded_.clear();
    return true;
  }

  // Seconds to wait before the next attempt after a failure.
  double backoff() {
    const double wait = retry_after_ >= 0
                            ? retry_after_
                            : std::min(kBackoffMax, kBackoffMin * std::pow(2.0, failures_));
    return wait * (retry_after_ >= 0 ? 1.0 : 1.0 + 0.25 * (std::rand() % 100) / 100.0);
  }
  void succeeded() {
    failures_ = 0;
    retry_after_ = -1;
  }

 private:
  static json nullable(const json& v) { return v.get<std::string>().empty() ? json(nullptr) : v; }

  // One GraphQL request; a reply with `errors` is fatal (the server refused it).
  bool graphql(const std::string& operation, const char* query, const json& variables, json* reply,
               std::string* fatal) {
    const json body = {{"operationName", operation}, {"query", query}, {"variables", variables}};
    const Response r = post(endpoint_.base_url + "/graphql", body.dump(), endpoint_.api_key);
    if (r.status != 200) return note_failure(r, "graphql " + operation, fatal);
    try {
      *reply = json::parse(r.body);
    } catch (const json::exception& e) {
      *fatal = operation + ": unexpected reply (" + e.what() + ")";
      return false;
    }
    if (reply->contains("errors") && !(*reply)["errors"].empty()) {
      *fatal = operation + ": " + (*reply)["errors"].dump();
      return false;
    }
    return true;
  }

  bool note_failure(const Response& r, const std::string& what, std::string* fatal) {
    ++failures_;
    retry_after_ = r.retry_after;
    if (fatal_status(r.status)) {
      *fatal = what + ": HTTP " + std::to_string(r.status) + " " + r.body.substr(0, 200);
    } else if (failures_ == 1) {
      log_warning("wandb: " + what + " failed (" +
                  (r.status ? "HTTP " + std::to_string(r.status) : r.error) +
                  "); retrying in the background, records wait in " + kSpoolFile);
    }
    return false;
  }

  WandbEndpoint endpoint_;
  json run_;
  std::string entity_, project_;
  int64_t acked_ = 0;
  int64_t console_lines_ = 0, events_lines_ = 0;
  json server_summary_ = json::object();
  std::vector<std::string> uploaded_;  // files to report in the next request
  bool connected_ = false;
  int failures_ = 0;
  double retry_after_ = -1;
};

// The password for `host` in ~/.netrc ("machine HOST login USER password KEY").
std::string netrc_password(const std::string& host) {
  const char* home = std::getenv("HOME");
  if (!home) return "";
  std::ifstream in(fs::path(home) / ".netrc");
  std::string word, machine, password;
  bool in_host = false;
  while (in >> word) {
    if (word == "machine") {
      in >> machine;
      in_host = machine == host;
    } else if (word == "password" && in >> password && in_host) {
      return password;
    }
  }
  return "";
}

std::string host_of(const std::string& url) {
  const size_t start = url.find("://") == std::string::npos ? 0 : url.find("://") + 3;
  const size_t end = url.find_first_of(":/", start);
  return url.substr(start, end == std::string::npos ? std::string::npos : end - start);
}

// Resident memory of this process, in MiB.
double rss_mib() {
  std::ifstream statm("/proc/self/statm");
  long pages = 0, resident = 0;
  statm >> pages >> resident;
  return static_cast<double>(resident) * static_cast<double>(sysconf(_SC_PAGESIZE)) / (1 << 20);
}

double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

}  // namespace

WandbEndpoint WandbEndpoint::from_environment() {
  WandbEndpoint e;
  const char* base = std::getenv("WANDB_BASE_URL");
  e.base_url = base && *base ? base : "https://api.wandb.ai";
  while (!e.base_url.empty() && e.base_url.back() == '/')
    e.base_url.pop_back();
  const char* key = std::getenv("WANDB_API_KEY");
  e.api_key = key && *key ? key : netrc_password(host_of(e.base_url));
  if (e.api_key.empty()) {
    throw std::runtime_error(
        "online mode needs an API key: set WANDB_API_KEY or "
        "add 'machine " +
        host_of(e.base_url) + " login user password KEY' to ~/.netrc");
  }
  return e;
}

struct WandbSink::Impl {
  fs::path spool_path;
  std::ofstream spool;
  bool online = false;
  bool ended = false;  // finish() was called
  Clock::time_point start = Clock::now();
  double runtime_offset = 0;
  int64_t last_step = -1;  // of the last row spooled
  json pending;            // the row of the current step, not yet spooled
  int64_t pending_step = -1;

  // Shared with the sender thread.
  std::mutex mutex;
  std::condition_variable wake;
  std::deque<std::string> unsent;  // rows the server may not have yet
  int64_t unsent_base = 0;         // line number of unsent.front()
  int64_t overflowed = 0;          // rows after `unsent` that are only in the spool
  std::deque<std::string> console;
  int64_t console_sent = 0;
  json summary = json::object();
  bool finishing = false;
  bool preempting = false;  // mark_preempting() was called
  bool finished = false;
  int exit_code = 0;
  Clock::time_point deadline;
  std::unique_ptr<Uploader> uploader;
  std::thread sender;

  void spool_line(const json& j) {
    spool << j.dump(-1, ' ', false, json::error_handler_t::replace) << '\n';
    spool.flush();
  }

  // Moves the pending row to the spool and the send queue.
  void commit_pending() {
    if (pending.is_null()) return;
    spool_line({{"history", pending}});
    last_step = pending_step;
    std::lock_guard lock(mutex);
    queue(pending.dump(-1, ' ', false, json::error_handler_t::replace));
    summary.update(pending);
    pending = nullptr;
    wake.notify_one();
  }

  // Hands a row to the sender, or leaves it to the spool once the queue is
  // full (rows must go in order: none after the first one left out).
  void queue(std::string row) {
    if (overflowed > 0 || unsent.size() >= kMaxQueuedRows) {
      ++overflowed;
    } else {
      unsent.push_back(std::move(row));
    }
  }

  void run_sender();
};

void WandbSink::Impl::run_sender() {
  std::unique_lock lock(mutex);
  Clock::time_point last_send = Clock::now() - std::chrono::hours(1);
  Clock::time_point last_events = Clock::now();
  double last_cpu = cpu_seconds();
  int64_t events_sent = 0;  // line offset of wandb-events.jsonl
  std::string events_row;   // the system-metrics row not yet acknowledged
  bool events_this_launch = false;
  bool resumed = false;  // the server's lines and summary of earlier launches are known
  bool files_done = false;
  bool files_warned = false;
  std::string fatal;
  const auto out_of_time = [&] { return finishing && Clock::now() >= deadline; };
  while (!out_of_time() && !(finishing && unsent.empty() && overflowed > 0)) {
    // Wait for rows, the send interval, a heartbeat or the end.
    wake.wait_for(lock, std::chrono::milliseconds(200));
    const bool due = seconds_since(last_send) >= (finishing ? 0.0 : kSendInterval);
    if (!due && !(finishing && !unsent.empty())) continue;
    const bool has_data = !unsent.empty() || !console.empty();
    if (!has_data && !finishing && seconds_since(last_send) < kHeartbeat) continue;

    lock.unlock();
    bool ok = uploader->connected() || uploader->connect(&fatal);
    if (ok && !files_done) {
      std::string error;
      bool give_up = false;
      files_done = uploader->upload_files(&error, &give_up) || give_up;
      if (!files_done && !files_warned) {
        log_warning("wandb: " + error + "; the run's files are retried with the next request");
        files_warned = true;
      } else if (give_up) {
        log_warning("wandb: " + error + "; the Files tab stays without config.yaml");
      }
    }
    lock.lock();
    if (ok && !resumed) {
      // A resumed run continues each file where the server's copy ends, and
      // its summary keeps the keys only earlier launches logged.
      console_sent = uploader->console_lines();
      events_sent = uploader->events_lines();
      json merged = uploader->server_summary();
      merged.update(summary);
      summary = std::move(merged);
      resumed = true;
    }
    if (ok && uploader->acked() > unsent_base) {
      // The server already holds some rows (a resumed run): skip them.
      while (!unsent.empty() && unsent_base < uploader->acked()) {
        unsent.pop_front();
        ++unsent_base;
      }
    }
    if (ok) {
      std::vector<std::string> rows;
      for (size_t i = 0; i < unsent.size() && i < kMaxRowsPerRequest; ++i)
        rows.push_back(unsent[i]);
      const double runtime = runtime_offset + seconds_since(start);
      summary["_runtime"] = runtime;
      summary["_wandb"] = {{"runtime", static_cast<int64_t>(runtime)}};
      json extra = json::object();
      extra["files"]["wandb-summary.json"] = {{"offset", 0}, {"content", {summary.dump()}}};
      std::vector<std::string> lines(console.begin(), console.end());
      if (!lines.empty())
        extra["files"]["output.log"] = {{"offset", console_sent}, {"content", lines}};
      // The run is marked finished last, once its files are up too.
      const bool complete =
          finishing && unsent.size() == rows.size() && overflowed == 0 && files_done;
      // Every launch leaves at least one system-metrics row, however short.
      // A row is resent unchanged until acknowledged, so a retry cannot
      // replace one the server took.
      if (events_row.empty() &&
          (seconds_since(last_events) >= kEventsInterval || (complete && !events_this_launch))) {
        const double wall = seconds_since(last_events), cpu = cpu_seconds();
        events_row =
            json{{"_wandb", true},
                 {"_timestamp", unix_now()},
                 {"_runtime", runtime},
                 {"system.proc.memory.rssMB", rss_mib()},
                 {"system.proc.cpu.percent", 100.0 * (cpu - last_cpu) / std::max(wall, 1e-9)}}
                .dump();
        last_cpu = cpu;
        last_events = Clock::now();
      }
      if (!events_row.empty())
        extra["files"]["wandb-events.jsonl"] = {{"offset", events_sent}, {"content", {events_row}}};
      if (complete) {
        if (preempting) extra["preempting"] = true;
        extra["complete"] = true;
        extra["exitcode"] = exit_code;
      }
      lock.unlock();
      ok = uploader->send(rows, extra, &fatal);
      lock.lock();
      if (ok) {
        uploader->succeeded();
        last_send = Clock::now();
        for (size_t i = 0; i < rows.size(); ++i) {
          unsent.pop_front();
          ++unsent_base;
        }
        console_sent += static_cast<int64_t>(lines.size());
        console.erase(console.begin(), console.begin() + static_cast<std::ptrdiff_t>(lines.size()));
        if (!events_row.empty()) {
          ++events_sent;
          events_this_launch = true;
          events_row.clear();
        }
        if (complete) {
          finished = true;
          wake.notify_all();
          return;
        }
        if (files_done || !finishing) continue;
        // Only the files are missing: retry them after the backoff.
      }
    }
    if (!fatal.empty()) {
      lock.unlock();  // the log observer takes the lock
      log_warning("wandb: giving up on the server (" + fatal + "); records stay in " +
                  spool_path.string() + " for muse-train wandb-sync");
      return;
    }
    // Back off (honouring Retry-After), waking early only to finish.
    const double wait = uploader->backoff();
    const Clock::time_point until = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                                       std::chrono::duration<double>(wait));
    wake.wait_until(lock, finishing ? std::min(until, deadline) : until,
                    [&] { return out_of_time(); });
  }
}

WandbSink::WandbSink(const fs::path& run_dir, WandbRunInfo info) : impl_(std::make_unique<Impl>()) {
  Impl& s = *impl_;
  s.spool_path = run_dir / kSpoolFile;
  s.online = info.config.mode == "online";
  std::optional<WandbEndpoint> endpoint;
  if (s.online) endpoint = WandbEndpoint::from_environment();  // before anything is written
  Spool old = read_spool(s.spool_path);
  s.spool.open(s.spool_path, std::ios::app);
  if (!s.spool) throw std::runtime_error(s.spool_path.string() + ": cannot open");
  const json metadata = run_metadata(info.args, info.version);
  if (old.run.is_null()) {
    json config = json::object();
    for (const auto& [key, value] : info.run_config)
      config[key] = yaml_value(value);
    old.run = {{"id", random_run_id()},        {"project", info.config.project},
               {"entity", info.config.entity}, {"group", info.config.group},
               {"name", info.display_name},    {"tags", info.config.tags},
               {"job_type", info.job_type},    {"config", config},
               {"metadata", metadata}};
    s.spool_line({{"run", old.run}});
  }
  s.last_step = old.last_step;
  s.runtime_offset = old.last_runtime;
  for (std::string& row : old.rows) {
    s.summary.update(json::parse(row));
    s.queue(std::move(row));
  }
  if (!s.online) return;
  json launch = old.run;
  launch["metadata"] = metadata;  // this launch's command line and start
  s.uploader = std::make_unique<Uploader>(*endpoint, std::move(launch));
  log_info("wandb: run " + old.run["id"].get<std::string>() + " in project " + info.config.project +
           " at " + endpoint->base_url);
  // One console entry per line, stamped as the SDK stamps output.log
  // (UTC with microseconds, "ERROR " before stderr's lines).
  set_log_observer([impl = impl_.get()](std::string_view text, bool is_error,
                                        std::chrono::system_clock::time_point now) {
    const std::time_t t = std::chrono::system_clock::to_time_t(now);
    const auto micros =
        std::chrono::duration_cast<std::chrono::microseconds>(now.time_since_epoch()).count() %
        1'000'000;
    char when[48];
    const size_t n = std::strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", std::gmtime(&t));
    std::snprintf(when + n, sizeof when - n, ".%06lld", static_cast<long long>(micros));
    const std::string prefix = std::string(is_error ? "ERROR " : "") + when + " ";
    std::lock_guard lock(impl->mutex);
    for (size_t start = 0; start <= text.size();) {
      const size_t end = std::min(text.find('\n', start), text.size());
      impl->console.push_back(prefix + std::string(text.substr(start, end - start)));
      start = end + 1;
    }
  });
  s.sender = std::thread([impl = impl_.get()] { impl->run_sender(); });
}

WandbSink::~WandbSink() {
  if (!impl_->ended) finish(1, 5);
}

void WandbSink::write(const Record& record) {
  Impl& s = *impl_;
  const Value* step_value = record.find("step");
  const int64_t step =
      step_value ? std::get<int64_t>(*step_value) : std::max<int64_t>(s.pending_step, 0);
  if (step <= s.last_step) return;  // logged before a resume: W&B has it
  if (step != s.pending_step) s.commit_pending();
  if (s.pending.is_null()) {
    s.pending = {{"_step", step},
                 {"_timestamp", unix_now()},
                 {"_runtime", s.runtime_offset + seconds_since(s.start)}};
    s.pending_step = step;
  }
  const Value* eval = record.find("eval");
  const std::string prefix = eval ? "eval/" + std::get<std::string>(*eval) + "/" : "";
  for (const auto& [key, value] : record.fields()) {
    if (key == "step" || key == "eval") continue;
    std::visit(
        [&](const auto& v) {
          using T = std::decay_t<decltype(v)>;
          if constexpr (std::is_same_v<T, double>) {
            s.pending[prefix + key] = std::isfinite(v) ? json(v) : json(nullptr);
          } else {
            s.pending[prefix + key] = v;
          }
        },
        value);
  }
}

void WandbSink::flush() {
  impl_->commit_pending();
}

void WandbSink::finish(int exit_code, double timeout_s) {
  Impl& s = *impl_;
  if (s.ended) return;
  s.ended = true;
  s.commit_pending();
  json end = {{"exit", exit_code}};
  if (s.preempting) end["preempting"] = true;
  s.spool_line(end);
  if (!s.online) return;
  set_log_observer(nullptr);
  {
    std::lock_guard lock(s.mutex);
    s.finishing = true;
    s.exit_code = exit_code;
    s.deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                    std::chrono::duration<double>(timeout_s));
    s.wake.notify_all();
  }
  if (s.sender.joinable()) s.sender.join();
  std::lock_guard lock(s.mutex);
  if (!s.finished) {
    log_warning("wandb: " + std::to_string(static_cast<int64_t>(s.unsent.size()) + s.overflowed) +
                " row(s) not sent; they are in " + s.spool_path.string() +
                ": upload them with muse-train wandb-sync " + s.spool_path.parent_path().string());
  }
}

void WandbSink::mark_preempting() {
  std::lock_guard lock(impl_->mutex);
  impl_->preempting = true;
}

int64_t wandb_sync(const fs::path& run_dir, double timeout_s) {
  const fs::path path = run_dir / kSpoolFile;
  if (!fs::exists(path)) throw std::runtime_error(path.string() + ": no W&B spool here");
  const Spool spool = read_spool(path);
  if (spool.run.is_null()) throw std::runtime_error(path.string() + ": holds no run description");
  Uploader up(WandbEndpoint::from_environment(), spool.run);
  json summary = json::object();
  for (const std::string& row : spool.rows)
    summary.update(json::parse(row));
  summary["_wandb"] = {{"runtime", static_cast<int64_t>(spool.last_runtime)}};
  const Clock::time_point start = Clock::now();
  std::string fatal;
  int64_t sent = 0;
  size_t next = 0;
  bool complete = false;
  bool resumed = false;
  bool files_done = false;
  while (!complete) {
    if (seconds_since(start) > timeout_s) {
      throw std::runtime_error("wandb-sync: the server did not take the spool within " +
                               std::to_string(static_cast<int>(timeout_s)) + " s");
    }
    bool ok = up.connected() || up.connect(&fatal);
    if (ok && !files_done) {
      std::string error;
      bool give_up = false;
      files_done = up.upload_files(&error, &give_up) || give_up;
      if (give_up)
        log_warning("wandb-sync: " + error + "; the Files tab stays without config.yaml");
    }
    if (ok && !resumed) {
      json merged = up.server_summary();  // keys only the server holds stay
      merged.update(summary);
      summary = std::move(merged);
      resumed = true;
    }
    if (ok) {
      next = std::max(next, static_cast<size_t>(up.acked()));
      std::vector<std::string> rows(
          spool.rows.begin() + static_cast<std::ptrdiff_t>(std::min(next, spool.rows.size())),
          spool.rows.begin() +
              static_cast<std::ptrdiff_t>(std::min(next + kMaxRowsPerRequest, spool.rows.size())));
      json extra = json::object();
      extra["files"]["wandb-summary.json"] = {{"offset", 0}, {"content", {summary.dump()}}};
      const bool last = next + rows.size() >= spool.rows.size();
      if (last && files_done && spool.exit_code) {
        if (spool.preempting) extra["preempting"] = true;
        extra["complete"] = true;
        extra["exitcode"] = *spool.exit_code;
      }
      ok = up.send(rows, extra, &fatal);
      if (ok) {
        up.succeeded();
        next += rows.size();
        sent += static_cast<int64_t>(rows.size());
        complete = last && files_done;
        if (complete || !last) continue;
        // Only the files are missing: retry them after the backoff.
      }
    }
    if (!fatal.empty()) throw std::runtime_error("wandb-sync: " + fatal);
    std::this_thread::sleep_for(std::chrono::duration<double>(up.backoff()));
  }
  return sent;
}

}  // namespace muse::telemetry
