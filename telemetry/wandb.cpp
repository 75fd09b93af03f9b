#include "telemetry/wandb.h"

#include <curl/curl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <sstream>
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

Response post(const std::string& url, const std::string& body, const std::string& key) {
  static std::once_flag init;
  std::call_once(init, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  Response r;
  CURL* curl = curl_easy_init();
  if (!curl) {
    r.error = "curl_easy_init failed";
    return r;
  }
  curl_slist* headers = curl_slist_append(nullptr, "Content-Type: application/json");
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.c_str());
  curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
  curl_easy_setopt(curl, CURLOPT_USERNAME, "api");
  curl_easy_setopt(curl, CURLOPT_PASSWORD, key.c_str());
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

// ---- talking to the server ----

// One run's state on the server: what it has acknowledged, and how to send
// more. Used by the sink's thread and by wandb_sync.
class Uploader {
 public:
  Uploader(WandbEndpoint endpoint, json run)
      : endpoint_(std::move(endpoint)), run_(std::move(run)) {}

  // UpsertBucket: creates or resumes the run; learns how many history lines
  // the server holds. Returns false when the server cannot be reached now.
  bool connect(std::string* fatal) {
    static const char* kMutation =
        "mutation UpsertBucket($name: String, $project: String, $entity: String, $groupName: "
        "String, $displayName: String, $config: JSONString, $jobType: String, $tags: [String!], "
        "$host: String, $program: String) { upsertBucket(input: {name: $name, modelName: "
        "$project, entityName: $entity, groupName: $groupName, displayName: $displayName, "
        "config: $config, jobType: $jobType, tags: $tags, host: $host, jobProgram: $program}) { "
        "bucket { id name displayName project { id name entity { id name } } historyLineCount } "
        "inserted } }";
    json config = json::object();
    for (const auto& [key, value] : run_["config"].items())
      config[key] = {{"desc", nullptr}, {"value", value}};
    char host[256] = "";
    gethostname(host, sizeof host - 1);
    const auto nullable = [](const json& v) {
      return v.get<std::string>().empty() ? json(nullptr) : v;
    };
    const json body = {{"operationName", "UpsertBucket"},
                       {"query", kMutation},
                       {"variables",
                        {{"name", run_["id"]},
                         {"project", run_["project"]},
                         {"entity", nullable(run_["entity"])},
                         {"groupName", nullable(run_["group"])},
                         {"displayName", run_["name"]},
                         {"config", config.dump()},
                         {"jobType", run_["job_type"]},
                         {"tags", run_["tags"]},
                         {"host", host},
                         {"program", "muse-train"}}}};
    const Response r = post(endpoint_.base_url + "/graphql", body.dump(), endpoint_.api_key);
    if (r.status != 200) return note_failure(r, "graphql UpsertBucket", fatal);
    try {
      const json reply = json::parse(r.body);
      if (reply.contains("errors") && !reply["errors"].empty()) {
        *fatal = "UpsertBucket: " + reply["errors"].dump();
        return false;
      }
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

  bool connected() const { return connected_; }
  int64_t acked() const { return acked_; }
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
    const Response r =
        post(url(), body.dump(-1, ' ', false, json::error_handler_t::replace), endpoint_.api_key);
    if (r.status < 200 || r.status >= 300) return note_failure(r, "file_stream", fatal);
    acked_ += static_cast<int64_t>(history.size());
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
  int64_t events_sent = 0;
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
    lock.lock();
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
      json extra = json::object();
      extra["files"]["wandb-summary.json"] = {{"offset", 0}, {"content", {summary.dump()}}};
      std::vector<std::string> lines(console.begin(), console.end());
      if (!lines.empty())
        extra["files"]["output.log"] = {{"offset", console_sent}, {"content", lines}};
      if (seconds_since(last_events) >= kEventsInterval) {
        const double wall = seconds_since(last_events), cpu = cpu_seconds();
        extra["files"]["wandb-events.jsonl"] = {
            {"offset", events_sent},
            {"content",
             {json{{"_wandb", true},
                   {"_timestamp", unix_now()},
                   {"_runtime", runtime_offset + seconds_since(start)},
                   {"system.proc.memory.rssMB", rss_mib()},
                   {"system.proc.cpu.percent", 100.0 * (cpu - last_cpu) / std::max(wall, 1e-9)}}
                  .dump()}}};
        last_cpu = cpu;
        last_events = Clock::now();
      }
      const bool complete = finishing && unsent.size() == rows.size() && overflowed == 0;
      if (complete) {
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
        if (extra.contains("files") && extra["files"].contains("wandb-events.jsonl")) ++events_sent;
        if (complete) {
          finished = true;
          wake.notify_all();
          return;
        }
        continue;
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
  if (old.run.is_null()) {
    json config = json::object();
    for (const auto& [key, value] : info.run_config)
      config[key] = yaml_value(value);
    old.run = {{"id", random_run_id()},        {"project", info.config.project},
               {"entity", info.config.entity}, {"group", info.config.group},
               {"name", info.display_name},    {"tags", info.config.tags},
               {"job_type", info.job_type},    {"config", config}};
    s.spool_line({{"run", old.run}});
  }
  s.last_step = old.last_step;
  s.runtime_offset = old.last_runtime;
  for (std::string& row : old.rows)
    s.queue(std::move(row));
  if (!s.online) return;
  s.uploader = std::make_unique<Uploader>(*endpoint, old.run);
  log_info("wandb: run " + old.run["id"].get<std::string>() + " in project " + info.config.project +
           " at " + endpoint->base_url);
  set_log_observer([impl = impl_.get()](std::string_view line, bool is_error) {
    std::ostringstream stamped;
    const auto now = std::chrono::system_clock::now();
    const std::time_t t = std::chrono::system_clock::to_time_t(now);
    char when[32];
    std::strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", std::gmtime(&t));
    stamped << (is_error ? "ERROR " : "") << when << " " << line;
    std::lock_guard lock(impl->mutex);
    impl->console.push_back(stamped.str());
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
  s.spool_line({{"exit", exit_code}});
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

int64_t wandb_sync(const fs::path& run_dir, double timeout_s) {
  const fs::path path = run_dir / kSpoolFile;
  if (!fs::exists(path)) throw std::runtime_error(path.string() + ": no W&B spool here");
  const Spool spool = read_spool(path);
  if (spool.run.is_null()) throw std::runtime_error(path.string() + ": holds no run description");
  Uploader up(WandbEndpoint::from_environment(), spool.run);
  json summary = json::object();
  for (const std::string& row : spool.rows)
    summary.update(json::parse(row));
  const Clock::time_point start = Clock::now();
  std::string fatal;
  int64_t sent = 0;
  size_t next = 0;
  bool complete = false;
  while (!complete) {
    if (seconds_since(start) > timeout_s) {
      throw std::runtime_error("wandb-sync: the server did not take the spool within " +
                               std::to_string(static_cast<int>(timeout_s)) + " s");
    }
    bool ok = up.connected() || up.connect(&fatal);
    if (ok) {
      next = std::max(next, static_cast<size_t>(up.acked()));
      std::vector<std::string> rows(
          spool.rows.begin() + static_cast<std::ptrdiff_t>(std::min(next, spool.rows.size())),
          spool.rows.begin() +
              static_cast<std::ptrdiff_t>(std::min(next + kMaxRowsPerRequest, spool.rows.size())));
      json extra = json::object();
      extra["files"]["wandb-summary.json"] = {{"offset", 0}, {"content", {summary.dump()}}};
      const bool last = next + rows.size() >= spool.rows.size();
      if (last && spool.exit_code) {
        extra["complete"] = true;
        extra["exitcode"] = *spool.exit_code;
      }
      ok = up.send(rows, extra, &fatal);
      if (ok) {
        up.succeeded();
        next += rows.size();
        sent += static_cast<int64_t>(rows.size());
        complete = last;
        continue;
      }
    }
    if (!fatal.empty()) throw std::runtime_error("wandb-sync: " + fatal);
    std::this_thread::sleep_for(std::chrono::duration<double>(up.backoff()));
  }
  return sent;
}

}  // namespace muse::telemetry
