// BullQueue and BullWorker: the BullMQ-compatible producer and worker on Redis. Worker
// handlers run on the runtime's threads and take the GIL only while Python code runs.
#include <pybind11/stl.h>

#include <atomic>
#include <map>

#include "absl/strings/str_cat.h"
#include "common.h"
#include "jobqueue/bull_queue.h"
#include "jobqueue/bull_worker.h"
#include "jobqueue/config.h"

namespace jobqueue::python {
namespace {

BullJobOptions ParseOptions(const py::object& opts) {
  if (opts.is_none()) return BullJobOptions();
  return Value(ParseBullJobOptions(Dumps(opts)));
}

py::object OptionalInt(const std::optional<int64_t>& value) {
  return value ? py::object(py::int_(*value)) : py::object(py::none());
}

py::dict JobDict(const BullJob& job) {
  py::dict out;
  out["id"] = job.id;
  out["name"] = job.name;
  out["data"] = Loads(job.data_json);
  out["opts"] = Loads(job.opts_json.empty() ? "{}" : job.opts_json);
  out["timestamp"] = job.timestamp;
  out["delay"] = job.delay;
  out["priority"] = job.priority;
  out["attempts_made"] = job.attempts_made;
  out["processed_on"] = OptionalInt(job.processed_on);
  out["finished_on"] = OptionalInt(job.finished_on);
  out["return_value"] = job.return_value_json ? Loads(*job.return_value_json) : py::none();
  out["failed_reason"] = job.failed_reason;
  // One entry per failed attempt (Node's job.stacktrace); a list a foreign client garbled
  // reads as empty.
  py::list stacktrace;
  if (auto it = job.fields.find("stacktrace"); it != job.fields.end()) {
    try {
      py::object parsed = Loads(it->second);
      if (py::isinstance<py::list>(parsed)) stacktrace = parsed;
    } catch (const std::exception&) {
    }
  }
  out["stacktrace"] = stacktrace;
  return out;
}

// A redis://, rediss:// or unix:// URL, a Secret, or a Config (its REDIS_URL).
Secret RedisUrl(const py::object& redis) {
  if (py::isinstance<Config>(redis)) {
    Secret url = redis.cast<const Config&>().redis_url();
    if (url.empty()) {
      throw StatusError(absl::FailedPreconditionError("no Redis configured: set REDIS_URL"));
    }
    return url;
  }
  if (py::isinstance<Secret>(redis)) {
    return Secret::Url(std::string(redis.cast<const Secret&>().Reveal()));
  }
  if (!py::isinstance<py::str>(redis)) {
    throw StatusError(absl::InvalidArgumentError(
        "redis must be a URL string, a Secret or a Config with REDIS_URL"));
  }
  return Secret::Url(Convert<std::string>(redis, "redis"));
}

RedisOptions MakeRedisOptions(const py::object& connect_timeout, const py::object& io_timeout,
                              const py::object& tls_ca_file, const Loose<bool>& tls_verify) {
  RedisOptions options;
  options.connect_timeout = ToDuration(connect_timeout, "connect_timeout");
  options.io_timeout = ToDuration(io_timeout, "io_timeout");
  if (auto file = ConvertOptional<std::string>(tls_ca_file, "tls_ca_file")) {
    options.tls_ca_file = *file;
  }
  options.tls_verify = tls_verify.Get("tls_verify");
  return options;
}

// Python's BullQueue; close() drops the pool once no call still uses it.
struct BullHandle {
  std::shared_ptr<BullQueue> queue;

  std::shared_ptr<BullQueue> Get() const {
    if (queue == nullptr) throw StatusError(absl::FailedPreconditionError("the queue is closed"));
    return queue;
  }
};

// What a BullMQ handler receives. Readable after the handler returns; `stopping` then reads True.
struct PyBullJob {
  BullJob job;
  std::string token;
  py::object data_cache;
  std::atomic<const BullJobContext*> context{nullptr};
};
using BullJobPtr = std::shared_ptr<PyBullJob>;

// Handlers by job name, plus an optional one for every other name. Only touched with the GIL.
struct BullHandlers {
  std::map<std::string, py::object> by_name;
  py::object fallback;
  bool frozen = false;                       // run() started: no more registrations
  std::atomic<BullWorker*> worker{nullptr};  // set once made; lives as long as its handler
};

// jobqueue.UnrecoverableError, created at import and kept for the interpreter's lifetime.
PyObject* g_unrecoverable_error = nullptr;
// traceback.format_exception, imported at import time (a first import from handler threads
// could deadlock).
PyObject* g_format_exception = nullptr;

// failedReason is the exception's text, as Node stores err.message; UnrecoverableError fails
// the job without retrying, as Node's does.
// The job's stacktrace entry is the Python traceback, as a Node job stores err.stack.
// Never throws: an exception raised from C has no traceback, and str() may raise.
absl::Status BullStatusFromPython(py::error_already_set& error) {
  std::string text = SafeStr(error.value()).value_or("");
  if (text.empty()) text = ExceptionTypeName(error.type());
  std::string traceback;
  try {
    // A null handle cannot be passed as an argument; None can.
    py::object trace = error.trace() ? py::object(error.trace()) : py::object(py::none());
    py::object lines =
        py::reinterpret_borrow<py::object>(g_format_exception)(error.type(), error.value(), trace);
    traceback = py::str("").attr("join")(lines).cast<std::string>();
    while (!traceback.empty() && traceback.back() == '\n') traceback.pop_back();
  } catch (...) {
    PyErr_Clear();
    traceback.clear();  // keep the generated entry
  }
  absl::Status status = error.matches(g_unrecoverable_error) ? BullUnrecoverableError(text)
                                                             : absl::InternalError(text);
  return BullErrorWithStacktrace(std::move(status), traceback);
}

BullHandler MakeBullHandler(std::shared_ptr<BullHandlers> handlers) {
  return [handlers](BullJobContext& job) -> absl::StatusOr<std::string> {
    if (InterpreterExiting()) {
      if (BullWorker* worker = handlers->worker.load()) worker->Stop();
      return absl::CancelledError("the Python interpreter is exiting");
    }
    py::gil_scoped_acquire gil;
    const auto found = handlers->by_name.find(job.job().name);
    py::object fn = found != handlers->by_name.end() ? found->second : handlers->fallback;
    if (!fn) {
      return absl::InternalError(
          absl::StrCat("no handler for job name \"", job.job().name, "\" in this worker"));
    }
    auto context = std::make_shared<PyBullJob>();
    context->job = job.job();
    context->token = job.token();
    context->context = &job;
    ResetOnExit<const BullJobContext> reset(context->context);
    return CallHandler(fn, py::cast(context), BullStatusFromPython);
  };
}

struct PyBullWorker {
  std::shared_ptr<BullHandlers> handlers;

  template <typename F>
  void VisitPython(F&& visit) const {
    if (!handlers) return;
    for (const auto& [name, handler] : handlers->by_name) visit(handler);
    visit(handlers->fallback);
  }
  // Only for an unreachable worker, which nothing can run any more.
  void ClearPython() {
    if (!handlers) return;
    handlers->by_name.clear();
    handlers->fallback = py::object();
  }
  std::unique_ptr<BullWorker> worker;
  std::string queue;
  absl::Duration shutdown_timeout;
  bool ran = false;
};

void CheckJobName(const py::object& name) {
  if (!name.is_none() && !py::isinstance<py::str>(name)) {
    throw StatusError(absl::InvalidArgumentError(
        "the job name must be a str, or None for every name (decorate with "
        "@worker.handler(\"name\") or @worker.handler())"));
  }
}

void RegisterBullHandler(PyBullWorker& w, const py::object& name, const py::object& fn) {
  BullHandlers& h = *w.handlers;
  if (h.frozen) {
    throw StatusError(absl::FailedPreconditionError("register handlers before run()"));
  }
  CheckJobName(name);
  const std::string label =
      name.is_none() ? std::string("every job") : Convert<std::string>(name, "job name");
  if (!PyCallable_Check(fn.ptr())) {
    throw StatusError(
        absl::InvalidArgumentError(absl::StrCat("the handler of ", label, " is not callable")));
  }
  if (name.is_none()) {
    if (h.fallback) {
      throw StatusError(absl::AlreadyExistsError("a handler for every job is already registered"));
    }
    h.fallback = fn;
    return;
  }
  if (label.empty()) throw StatusError(absl::InvalidArgumentError("job name must not be empty"));
  if (!h.by_name.emplace(label, fn).second) {
    throw StatusError(absl::AlreadyExistsError(
        absl::StrCat("a handler for \"", label, "\" is already registered")));
  }
}

BullWorkerStats RunBull(PyBullWorker& w, bool handle_signals) {
  if (w.ran) throw StatusError(absl::FailedPreconditionError("a worker runs only once"));
  if (w.handlers->by_name.empty() && !w.handlers->fallback) {
    throw StatusError(absl::FailedPreconditionError(
        "no handlers registered: pass handler= or use @worker.handler(name)"));
  }
  w.ran = true;
  w.handlers->frozen = true;
  BullWorker* worker = w.worker.get();
  RunUntilStopped([worker] { return worker->Run(); }, [worker] { worker->Stop(); },
                  [worker] { worker->StopNow(); }, handle_signals, w.shutdown_timeout);
  return worker->stats();
}

// The typed parameters are Loose (see common.h): a wrong type raises TypeError naming it, and
// every argument is checked before the URL is used.
std::unique_ptr<PyBullWorker> MakeBullWorker(
    const py::object& redis, const Loose<std::string>& queue_arg, const py::object& handler,
    const Loose<std::string>& prefix, const Loose<std::string>& name, const Loose<int>& concurrency,
    const py::object& lock_duration, const py::object& lock_renew_time,
    const py::object& stalled_interval, const Loose<int>& max_stalled_count,
    const Loose<bool>& check_stalled, const py::object& drain_delay, const py::object& limiter,
    const py::object& shutdown_timeout, const py::object& exit_when_idle,
    const Loose<int>& prefetch, const py::object& prefetch_window,
    const py::object& connect_timeout, const py::object& io_timeout, const py::object& tls_ca_file,
    const Loose<bool>& tls_verify) {
  const std::string queue = queue_arg.Get("queue");
  BullWorkerOptions options;
  options.prefix = prefix.Get("prefix");
  options.name = name.Get("name");
  options.concurrency = concurrency.Get("concurrency");
  options.redis = MakeRedisOptions(connect_timeout, io_timeout, tls_ca_file, tls_verify);
  options.lock_duration = ToDuration(lock_duration, "lock_duration");
  if (!lock_renew_time.is_none()) {
    options.lock_renew_time = ToDuration(lock_renew_time, "lock_renew_time");
  }
  options.stalled_interval = ToDuration(stalled_interval, "stalled_interval");
  options.max_stalled_count = max_stalled_count.Get("max_stalled_count");
  options.check_stalled = check_stalled.Get("check_stalled");
  options.drain_delay = ToDuration(drain_delay, "drain_delay");
  if (!limiter.is_none()) {
    // Node's {max, duration (ms)}.
    if (!py::isinstance<py::dict>(limiter) || !limiter.contains("max") ||
        !limiter.contains("duration") || !py::isinstance<py::int_>(limiter["max"]) ||
        !py::isinstance<py::int_>(limiter["duration"])) {
      throw StatusError(
          absl::InvalidArgumentError("limiter must be a dict {\"max\": N, \"duration\": ms}"));
    }
    options.limiter_max = Convert<int>(limiter["max"], "limiter[\"max\"]");
    options.limiter_duration =
        absl::Milliseconds(Convert<int64_t>(limiter["duration"], "limiter[\"duration\"]"));
  }
  options.shutdown_timeout = ToDuration(shutdown_timeout, "shutdown_timeout");
  if (!exit_when_idle.is_none()) {
    options.exit_when_idle = ToDuration(exit_when_idle, "exit_when_idle");
  }
  options.prefetch = prefetch.Get("prefetch");
  options.prefetch_window = ToDuration(prefetch_window, "prefetch_window");
  const Secret url = RedisUrl(redis);
  Check(options.Validate());
  auto w = std::make_unique<PyBullWorker>();
  // The last copy may go on a runtime thread; Python objects are dropped with the GIL.
  w->handlers = std::shared_ptr<BullHandlers>(new BullHandlers, [](BullHandlers* h) {
    if (InterpreterExiting()) return;  // leaked: Python is going away
    py::gil_scoped_acquire gil;
    delete h;
  });
  w->queue = queue;
  w->shutdown_timeout = options.shutdown_timeout;
  if (!handler.is_none()) RegisterBullHandler(*w, py::none(), handler);
  BullHandler dispatch = MakeBullHandler(w->handlers);
  w->worker =
      Value(Unlocked([&] { return BullWorker::Create(url, queue, std::move(dispatch), options); }));
  w->handlers->worker = w->worker.get();
  return w;
}

}  // namespace

void RegisterBull(py::module_& m) {
  py::class_<BullHandle>(m, "BullQueue", R"doc(
A BullMQ-compatible queue on Redis (producer side): jobs are written exactly as BullMQ's
Queue.add writes them, so Node workers (and dashboards) process them.

    bull = BullQueue(config, "emails")
    bull.add("welcome", {"to": "a@example.com"}, {"attempts": 3, "delay": 5000})

`redis` is a redis://, rediss:// or unix:// URL, a Secret, or a Config (its REDIS_URL).)doc")
      .def(py::init([](const py::object& redis, const Loose<std::string>& name_arg,
                       const Loose<std::string>& prefix, const Loose<int>& pool_size,
                       const py::object& connect_timeout, const py::object& io_timeout,
                       const py::object& tls_ca_file, const Loose<bool>& tls_verify) {
             // Every argument is checked before the URL is used (a wrong type: TypeError).
             const std::string name = name_arg.Get("name");
             BullQueueOptions options;
             options.prefix = prefix.Get("prefix");
             options.pool_size = pool_size.Get("pool_size");
             options.redis = MakeRedisOptions(connect_timeout, io_timeout, tls_ca_file, tls_verify);
             const Secret url = RedisUrl(redis);
             auto handle = std::make_unique<BullHandle>();
             handle->queue = Value(Unlocked([&] { return BullQueue::Open(url, name, options); }));
             return handle;
           }),
           py::arg("redis"), py::arg("name"), py::kw_only(), py::arg("prefix") = "bull",
           py::arg("pool_size") = 4, py::arg("connect_timeout") = 5.0, py::arg("io_timeout") = 5.0,
           py::arg("tls_ca_file") = py::none(), py::arg("tls_verify") = true)
      .def_property_readonly("name", [](const BullHandle& h) { return h.Get()->name(); })
      .def_property_readonly("closed", [](const BullHandle& h) { return h.queue == nullptr; })
      .def(
          "close", [](BullHandle& h) { h.queue.reset(); }, "Closes the connections.")
      .def(
          "add",
          [](const BullHandle& h, const std::string& name, const py::object& data,
             const py::object& opts) {
            auto q = h.Get();
            const std::string data_json = data.is_none() ? std::string("{}") : Dumps(data);
            const BullJobOptions options = ParseOptions(opts);
            return Value(Unlocked([&] { return q->Add(name, data_json, options); }));
          },
          py::arg("name"), py::arg("data") = py::none(), py::arg("opts") = py::none(),
          R"doc(
Adds a job as Queue.add(name, data, opts) does in Node and returns its id. opts is a dict of
BullMQ JobsOptions (jobId, delay, priority, lifo, attempts, backoff, removeOnComplete, ...);
unknown keys raise InvalidArgumentError. A duplicate jobId returns the existing job's id.)doc")
      .def(
          "counts",
          [](const BullHandle& h) {
            auto q = h.Get();
            const BullJobCounts c = Value(Unlocked([&] { return q->Counts(); }));
            py::dict out;
            out["active"] = c.active;
            out["completed"] = c.completed;
            out["delayed"] = c.delayed;
            out["failed"] = c.failed;
            out["paused"] = c.paused;
            out["prioritized"] = c.prioritized;
            out["waiting"] = c.waiting;
            out["waiting-children"] = c.waiting_children;
            return out;
          },
          "Job counts per state, keyed as Node's getJobCounts() keys them.")
      .def(
          "get_job",
          [](const BullHandle& h, const std::string& id) {
            auto q = h.Get();
            return JobDict(Value(Unlocked([&] { return q->GetJob(id); })));
          },
          py::arg("id"),
          "The job hash as a dict (data, opts and return_value decoded); NotFoundError when "
          "there is no such job.")
      .def(
          "drain",
          [](const BullHandle& h, bool delayed) {
            auto q = h.Get();
            return Value(Unlocked([&] { return q->Drain(delayed); }));
          },
          py::kw_only(), py::arg("delayed") = false,
          "Queue.drain: removes the waiting and prioritized jobs (and the delayed ones with "
          "delayed=True) with their data. Returns how many.")
      .def(
          "clean",
          [](const BullHandle& h, const std::string& state, const py::object& grace,
             int64_t limit) {
            auto q = h.Get();
            const absl::Duration grace_duration = ToDuration(grace, "grace");
            return Value(Unlocked([&] { return q->Clean(state, grace_duration, limit); }));
          },
          py::arg("state"), py::arg("grace") = 0.0, py::arg("limit") = 0,
          "Queue.clean: removes up to limit (0: all) jobs of state (completed, failed, delayed, "
          "prioritized, wait, paused) older than grace seconds; locked jobs stay. Returns their "
          "ids.")
      .def(
          "remove",
          [](const BullHandle& h, const std::string& id) {
            auto q = h.Get();
            Check(Unlocked([&] { return q->Remove(id); }));
          },
          py::arg("id"),
          "Job.remove: the job and its data. NotFoundError when missing, "
          "FailedPreconditionError while it runs.")
      .def(
          "retry_jobs",
          [](const BullHandle& h, const std::string& state) {
            auto q = h.Get();
            return Value(Unlocked([&] { return q->RetryJobs(state); }));
          },
          py::arg("state") = "failed",
          "Queue.retryJobs: every failed (or completed) job back to wait. Returns how many.")
      .def(
          "promote",
          [](const BullHandle& h, const py::object& id) -> int64_t {
            auto q = h.Get();
            if (id.is_none()) return Value(Unlocked([&] { return q->PromoteAll(); }));
            const std::string job_id = ConvertOptional<std::string>(id, "id").value();
            Check(Unlocked([&] { return q->Promote(job_id); }));
            return 1;
          },
          py::arg("id") = py::none(),
          "Job.promote for one delayed job (FailedPreconditionError when it is not delayed), or "
          "Queue.promoteJobs for all with no id. Returns how many moved.")
      .def("__enter__", [](py::object self) { return self; })
      .def("__exit__", [](BullHandle& h, const py::object&, const py::object&, const py::object&) {
        h.queue.reset();
        return false;
      });
  g_unrecoverable_error = PyErr_NewExceptionWithDoc(
      "jobqueue.UnrecoverableError",
      "Raised by a BullWorker handler to fail the job at once, without the retries its\n"
      "`attempts` allow (Node BullMQ's UnrecoverableError). The message becomes failedReason.",
      PyExc_Exception, nullptr);
  if (g_unrecoverable_error == nullptr) throw py::error_already_set();
  m.add_object("UnrecoverableError", py::handle(g_unrecoverable_error));
  g_format_exception =
      py::object(py::module_::import("traceback").attr("format_exception")).release().ptr();

  py::class_<BullWorkerStats>(m, "BullWorkerStats", "A BullWorker's counters.")
      .def_readonly("completed", &BullWorkerStats::completed)
      .def_readonly("failed", &BullWorkerStats::failed, "Failed for good (no retry left).")
      .def_readonly("retried", &BullWorkerStats::retried, "Failed and moved back to wait/delayed.")
      .def_readonly("lost", &BullWorkerStats::lost, "Lock lost before finishing.")
      .def_readonly("released", &BullWorkerStats::released, "Handed back at shutdown.")
      .def_readonly("stalled_recovered", &BullWorkerStats::stalled_recovered)
      .def_readonly("steps", &BullWorkerStats::steps, "Finish+claim script calls.")
      .def_readonly("reconnects", &BullWorkerStats::reconnects)
      .def_readonly("prefetched", &BullWorkerStats::prefetched,
                    "Jobs claimed ahead of a free handler.")
      .def_readonly("adopted", &BullWorkerStats::adopted,
                    "Claims whose reply was lost, found again and kept.")
      .def("__repr__", [](const BullWorkerStats& s) {
        return absl::StrCat("BullWorkerStats(completed=", s.completed, ", failed=", s.failed,
                            ", retried=", s.retried, ", lost=", s.lost, ", released=", s.released,
                            ", stalled_recovered=", s.stalled_recovered,
                            ", prefetched=", s.prefetched, ", steps=", s.steps,
                            ", reconnects=", s.reconnects, ", adopted=", s.adopted, ")");
      });

  py::class_<PyBullJob, BullJobPtr>(m, "BullJob", R"doc(
The BullMQ job a BullWorker handler runs: id, name, data (decoded JSON), data_json, opts,
timestamp, delay, priority, attempts_made, processed_on, token (this claim's lock token).
Long handlers may watch `stopping` and raise: an error once the worker is stopping hands the
job back to wait without using up an attempt.)doc")
      .def_property_readonly("id", [](const PyBullJob& j) { return j.job.id; })
      .def_property_readonly("name", [](const PyBullJob& j) { return j.job.name; })
      .def_property_readonly(
          "data",
          [](PyBullJob& j) {
            if (!j.data_cache) j.data_cache = Loads(j.job.data_json);
            return j.data_cache;
          },
          "The job's data, decoded from JSON.")
      .def_property_readonly("data_json", [](const PyBullJob& j) { return j.job.data_json; })
      .def_property_readonly(
          "opts",
          [](const PyBullJob& j) {
            return Loads(j.job.opts_json.empty() ? "{}" : j.job.opts_json);
          },
          "The job's JobsOptions as a dict.")
      .def_property_readonly("timestamp", [](const PyBullJob& j) { return j.job.timestamp; })
      .def_property_readonly("delay", [](const PyBullJob& j) { return j.job.delay; })
      .def_property_readonly("priority", [](const PyBullJob& j) { return j.job.priority; })
      .def_property_readonly(
          "attempts_made", [](const PyBullJob& j) { return j.job.attempts_made; },
          "Attempts that failed before this one (BullMQ's attemptsMade).")
      .def_property_readonly("processed_on",
                             [](const PyBullJob& j) { return OptionalInt(j.job.processed_on); })
      .def_property_readonly("token", [](const PyBullJob& j) { return j.token; })
      .def_property_readonly(
          "stopping",
          [](const PyBullJob& j) {
            const BullJobContext* job = j.context.load();
            return job == nullptr || job->stopping();
          },
          "True once the worker is shutting down (and after the handler returned).")
      .def("__repr__", [](const PyBullJob& j) {
        return absl::StrCat("BullJob(id='", j.job.id, "', name='", j.job.name, "')");
      });

  py::class_<PyBullWorker>(m, "BullWorker", CollectableThrough<PyBullWorker>(), R"doc(
A BullMQ-compatible worker: processes jobs that Node's Queue.add, BullQueue.add or the C API
added, beside Node workers on the same queue (locks, stalled checks, retries with the job's
backoff, removeOnComplete/removeOnFail as BullMQ does them).

    worker = BullWorker(config, "emails", concurrency=4)

    @worker.handler("welcome")
    def welcome(job):
        send(job.data["to"])
        return {"sent": True}      # the job's returnvalue

    worker.run()   # until SIGINT/SIGTERM, stop(), or exit_when_idle

A handler gets a BullJob. What it returns (JSON-serialisable) becomes returnvalue; an exception
fails the attempt with its text as failedReason (retried per the job's attempts/backoff), and
UnrecoverableError fails it for good. `handler` (positional) serves every job name, as Node's
processor does; @worker.handler(name) serves one name. Handlers run on worker threads, holding
the GIL only while Python runs.)doc")
      .def(py::init(&MakeBullWorker), py::arg("redis"), py::arg("queue"),
           py::arg("handler") = py::none(), py::kw_only(), py::arg("prefix") = "bull",
           py::arg("name") = "", py::arg("concurrency") = 1, py::arg("lock_duration") = 30.0,
           py::arg("lock_renew_time") = py::none(), py::arg("stalled_interval") = 30.0,
           py::arg("max_stalled_count") = 1, py::arg("check_stalled") = true,
           py::arg("drain_delay") = 5.0, py::arg("limiter") = py::none(),
           py::arg("shutdown_timeout") = 30.0, py::arg("exit_when_idle") = py::none(),
           py::arg("prefetch") = 64, py::arg("prefetch_window") = 0.002,
           py::arg("connect_timeout") = 5.0, py::arg("io_timeout") = 5.0,
           py::arg("tls_ca_file") = py::none(), py::arg("tls_verify") = true,
           R"doc(
redis is a URL, a Secret or a Config (its REDIS_URL). Connects at once (a bad URL or password
raises here). Durations are seconds or timedeltas: lock_duration (renewed every
lock_renew_time, default half of it), stalled_interval, drain_delay (longest blocking wait),
shutdown_timeout (in-flight jobs get this long on stop; the rest go back to wait) and
exit_when_idle (run() returns after that long without work). name is the worker's name as
Node's getWorkers() lists it. limiter is Node's {"max": N, "duration": ms}. Up to prefetch
jobs are claimed ahead of a free handler while handlers are fast (at most what they get
through in prefetch_window); prefetch=0 turns that off.)doc")
      .def("register", &RegisterBullHandler, py::arg("name"), py::arg("handler"),
           "Registers handler(job) for jobs named `name` (None: every other name), before run. "
           "AlreadyExistsError for a second.")
      .def(
          "handler",
          [](py::object self, const py::object& name) {
            CheckJobName(name);
            return py::cpp_function([self, name](py::object fn) {
              RegisterBullHandler(self.cast<PyBullWorker&>(), name, fn);
              return fn;
            });
          },
          py::arg("name") = py::none(),
          "Decorator form of register: @worker.handler(\"welcome\"), or @worker.handler() for "
          "every job name.")
      .def("run", &RunBull, py::kw_only(), py::arg("handle_signals") = true, R"doc(
Processes jobs until stop(), SIGINT/SIGTERM (when handle_signals and on the main thread: the
previous handlers are restored afterwards), or exit_when_idle, with the GIL released. Stops
gracefully: in-flight handlers get shutdown_timeout, the rest go back to wait and no lock is
left behind. Returns the BullWorkerStats. A worker runs once.)doc")
      .def(
          "stop", [](PyBullWorker& w, bool now) { StopWorker(*w.worker, now); }, py::kw_only(),
          py::arg("now") = false,
          "Asks run() to stop gracefully; returns at once. Safe from any thread and handler. "
          "now=True hands back running jobs at once instead of waiting out shutdown_timeout (as a "
          "second SIGINT does).")
      .def_property_readonly("stats", [](const PyBullWorker& w) { return w.worker->stats(); })
      .def_property_readonly("queue", [](const PyBullWorker& w) { return w.queue; })
      .def_property_readonly(
          "job_names",
          [](const PyBullWorker& w) {
            std::vector<std::string> names;
            for (const auto& entry : w.handlers->by_name) names.push_back(entry.first);
            return names;
          },
          "The names with their own handler, sorted.");
}

}  // namespace jobqueue::python
