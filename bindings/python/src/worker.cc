// Worker: the Postgres worker runtime with Python handlers. Handlers run on the runtime's
// threads and take the GIL only while Python code runs; run() waits with the GIL released.
#include "jobqueue/worker.h"

#include <pybind11/stl.h>
#if defined(__GLIBCXX__)
#include <cxxabi.h>
#endif

#include <algorithm>
#include <atomic>
#include <chrono>
#include <optional>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "common.h"
#include "jobqueue/config.h"

namespace jobqueue::python {
namespace {

// What a handler receives. Valid for reading after the handler returns, but `stopping` then
// reads True.
struct PyJobContext {
  Lease lease;
  py::object payload_cache;
  std::atomic<const JobContext*> context{nullptr};
};
using JobContextPtr = std::shared_ptr<PyJobContext>;

struct PyWorker {
  std::shared_ptr<PgQueue> queue;
  std::unique_ptr<Worker> worker;
  std::vector<std::string> job_types;
  // The registered handlers, shared with the runtime's copies (see CollectableThrough).
  std::vector<std::shared_ptr<py::object>> handlers;
  absl::Duration shutdown_timeout;
  bool ran = false;

  template <typename F>
  void VisitPython(F&& visit) const {
    for (const auto& handler : handlers) visit(*handler);
  }
  // Only for an unreachable worker, which nothing can run any more.
  void ClearPython() {
    for (auto& handler : handlers) *handler = py::none();
  }
};

// A Python exception from a handler as the status the runtime records: LeaseLostError says the
// lease is gone (nothing is written); everything else fails the attempt with "Type: message".
absl::Status StatusFromPython(py::error_already_set& error) {
  const std::string text =
      absl::StrCat(ExceptionTypeName(error.type()), ": ",
                   SafeStr(error.value()).value_or("<exception str() failed>"));
  if (error.matches(LeaseLostErrorClass())) return LeaseLostError(text);
  if (error.matches(ErrorClass(absl::StatusCode::kCancelled))) return absl::CancelledError(text);
  return absl::InternalError(text);
}

JobHandler MakeHandler(const py::object& fn, PyWorker& w) {
  // Dropped with the GIL held, whichever thread releases the last copy (leaked at exit).
  std::shared_ptr<py::object> callable(new py::object(fn), [](py::object* object) {
    if (InterpreterExiting()) return;
    py::gil_scoped_acquire gil;
    delete object;
  });
  w.handlers.push_back(callable);
  return [callable, worker = w.worker.get()](JobContext& job) -> absl::StatusOr<std::string> {
    if (InterpreterExiting()) {
      worker->Stop();  // so this error releases the job instead of failing an attempt
      return absl::CancelledError("the Python interpreter is exiting");
    }
    py::gil_scoped_acquire gil;
    auto context = std::make_shared<PyJobContext>();
    context->lease = job.lease();
    context->context = &job;
    ResetOnExit<const JobContext> reset(context->context);
    return CallHandler(*callable, py::cast(context), StatusFromPython);
  };
}

void Register(PyWorker& w, const std::string& job_type, const py::object& fn) {
  if (!PyCallable_Check(fn.ptr())) {
    throw StatusError(
        absl::InvalidArgumentError(absl::StrCat("the handler of ", job_type, " is not callable")));
  }
  Check(w.worker->Register(job_type, MakeHandler(fn, w)));
  w.job_types.push_back(job_type);
}

}  // namespace

PyObject* CallWithoutUnwinding(py::handle fn, py::handle arg) {
#if defined(__GLIBCXX__)
  try {
#endif
    return PyObject_CallOneArg(fn.ptr(), arg.ptr());
#if defined(__GLIBCXX__)
  } catch (abi::__forced_unwind&) {
    // Python ended this thread as it took the GIL back during interpreter exit. Unwinding
    // the frames above would drop Python references without the GIL and crash the process;
    // the thread waits for the process to end instead.
    WaitForever();
  }
#endif
}

absl::StatusOr<std::string> CallHandler(py::handle fn, py::handle job,
                                        absl::Status (*to_status)(py::error_already_set&)) {
  try {
    py::object result = py::reinterpret_steal<py::object>(CallWithoutUnwinding(fn, job));
    if (!result) throw py::error_already_set();
    return result.is_none() ? std::string("null") : Dumps(result);
  } catch (py::error_already_set& error) {
    try {
      return to_status(error);
    } catch (...) {
      PyErr_Clear();
      return absl::InternalError(
          absl::StrCat("handler raised ", ExceptionTypeName(error.type()), " (not describable)"));
    }
  } catch (const StatusError& error) {  // its what() says nothing: a result we cannot store
    return absl::Status(error.status().code(),
                        absl::StrCat("handler result: ", error.status().message()));
  } catch (const std::exception& error) {
    return absl::InternalError(absl::StrCat("handler: ", error.what()));
  }
}

namespace {

// A run() in progress, for the exit hook. Lives on RunUntilStopped's stack; once the hook has
// seen it, that frame never returns.
struct ActiveRun {
  std::function<void()> stop;
  absl::Duration grace;
  absl::Notification finished;
};

absl::Mutex g_runs_mu;
bool g_exiting ABSL_GUARDED_BY(g_runs_mu) = false;
std::vector<ActiveRun*>& Runs() ABSL_EXCLUSIVE_LOCKS_REQUIRED(g_runs_mu) {
  static auto* runs = new std::vector<ActiveRun*>();
  return *runs;
}

}  // namespace

bool InterpreterExiting() {
#if PY_VERSION_HEX >= 0x030D0000
  return Py_IsFinalizing() != 0;
#else
  return _Py_IsFinalizing() != 0;
#endif
}

[[noreturn]] void WaitForever() {
  absl::Notification never;
  while (true) never.WaitForNotification();
}

void StopWorkersAtExit() {
  std::vector<ActiveRun*> runs;
  {
    absl::MutexLock lock(&g_runs_mu);
    g_exiting = true;
    runs = Runs();
  }
  for (ActiveRun* run : runs) run->stop();
  py::gil_scoped_release release;  // the handlers need the GIL to finish
  for (ActiveRun* run : runs) {
    run->finished.WaitForNotificationWithTimeout(run->grace + absl::Seconds(5));
  }
}

std::string ExceptionTypeName(py::handle type) {
  if (!type) return "exception";
  try {
    return py::str(type.attr("__name__")).cast<std::string>();
  } catch (...) {
    PyErr_Clear();
  }
  if (PyType_Check(type.ptr())) return reinterpret_cast<PyTypeObject*>(type.ptr())->tp_name;
  return "exception";
}

std::optional<std::string> SafeStr(py::handle value) {
  if (!value) return std::nullopt;
  try {
    return py::str(value).cast<std::string>();
  } catch (...) {
    PyErr_Clear();
    return std::nullopt;
  }
}

void RunUntilStopped(const std::function<absl::Status()>& run, const std::function<void()>& stop,
                     const std::function<void()>& stop_now, bool handle_signals,
                     absl::Duration grace) {
  py::module_ signal = py::module_::import("signal");
  py::module_ threading = py::module_::import("threading");
  const bool main_thread = threading.attr("current_thread")().is(threading.attr("main_thread")());
  // Python runs signal handlers only on the main thread, between bytecodes; ours just ask the
  // runtime to stop, and the loop below gives Python the chance to run them.
  std::vector<std::pair<py::object, py::object>> saved;
  if (handle_signals && main_thread) {
    // The first signal stops gracefully, a later one (a second Ctrl-C) without waiting. One
    // that follows the first within a second is the same Ctrl-C forwarded by a launcher.
    using Clock = std::chrono::steady_clock;
    auto first_signal = std::make_shared<std::optional<Clock::time_point>>();
    py::cpp_function on_signal([stop, stop_now, first_signal](const py::args&) {
      const Clock::time_point now = Clock::now();
      if (!first_signal->has_value()) {
        *first_signal = now;
        stop();
      } else if (now - **first_signal >= std::chrono::seconds(1)) {
        stop_now();
      }
    });
    for (const char* name : {"SIGINT", "SIGTERM"}) {
      py::object signum = signal.attr(name);
      saved.emplace_back(signum, signal.attr("getsignal")(signum));
      signal.attr("signal")(signum, on_signal);
    }
  }
  absl::Status status;
  PyObject* error_type = nullptr;
  PyObject* error_value = nullptr;
  PyObject* error_trace = nullptr;
  ActiveRun active{stop, grace, {}};
  {
    absl::MutexLock lock(&g_runs_mu);
    Runs().push_back(&active);
  }
  {
    py::gil_scoped_release release;
    std::thread runner([&] {
      status = run();
      active.finished.Notify();
    });
    // A daemon thread's run() at interpreter exit: taking the GIL would end this thread in
    // mid-frame (aborting the process), and returning needs the GIL. So the worker stops
    // (releasing its jobs) and this thread waits for the process to end.
    auto outlive_interpreter = [&] {
      stop();
      runner.join();
      WaitForever();
    };
    while (!active.finished.WaitForNotificationWithTimeout(absl::Milliseconds(50))) {
      if (InterpreterExiting()) outlive_interpreter();
#if defined(__GLIBCXX__)
      try {
#endif
        py::gil_scoped_acquire gil;
        // A handler that raises (KeyboardInterrupt without handle_signals, say) stops the
        // worker gracefully; the exception is raised once it has stopped.
        if (error_type == nullptr && PyErr_CheckSignals() != 0) {
          PyErr_Fetch(&error_type, &error_value, &error_trace);
          stop();
        }
#if defined(__GLIBCXX__)
      } catch (abi::__forced_unwind&) {
        outlive_interpreter();  // the exit began after the check above
      }
#endif
    }
    runner.join();
    {
      absl::MutexLock lock(&g_runs_mu);
      // The exit hook stopped this run and waits for it: Python is about to go away.
      if (g_exiting) WaitForever();
      std::vector<ActiveRun*>& runs = Runs();
      runs.erase(std::find(runs.begin(), runs.end(), &active));
    }
  }
  for (auto& [signum, previous] : saved) {
    signal.attr("signal")(signum, previous.is_none() ? signal.attr("SIG_DFL") : previous);
  }
  if (error_type != nullptr) {
    PyErr_Restore(error_type, error_value, error_trace);
    throw py::error_already_set();
  }
  Check(status);
}

namespace {

WorkerStats Run(PyWorker& w, bool handle_signals) {
  if (w.ran) throw StatusError(absl::FailedPreconditionError("a worker runs only once"));
  w.ran = true;
  Worker* worker = w.worker.get();
  RunUntilStopped([worker] { return worker->Run(); }, [worker] { worker->Stop(); },
                  [worker] { worker->StopNow(); }, handle_signals, w.shutdown_timeout);
  return worker->stats();
}

}  // namespace

void RegisterWorker(py::module_& m) {
  py::class_<WorkerStats>(m, "WorkerStats", "A worker's counters.")
      .def_readonly("completed", &WorkerStats::completed)
      .def_readonly("failed", &WorkerStats::failed, "Handler errors (retried or failed).")
      .def_readonly("lost", &WorkerStats::lost, "Leases lost before finishing.")
      .def_readonly("released", &WorkerStats::released, "Handed back at shutdown.")
      .def_readonly("claims", &WorkerStats::claims, "Claim round trips.")
      .def_readonly("reconnects", &WorkerStats::reconnects)
      .def("__repr__", [](const WorkerStats& s) {
        return absl::StrCat("WorkerStats(completed=", s.completed, ", failed=", s.failed,
                            ", lost=", s.lost, ", released=", s.released, ")");
      });

  py::class_<PyJobContext, JobContextPtr> context(m, "JobContext", R"doc(
The job a handler runs: id, job_type, queue, attempt, max_attempts, worker_id, payload (decoded
JSON) and payload_json. Long handlers may watch `stopping` and return early.)doc");
  AddLeaseFields(context);
  context.def_property_readonly(
      "stopping",
      [](const PyJobContext& c) {
        const JobContext* job = c.context.load();
        return job == nullptr || job->stopping();
      },
      "True once the worker is shutting down (and after the handler returned).");

  py::class_<PyWorker>(m, "Worker", CollectableThrough<PyWorker>(), R"doc(
Runs handlers for job types on a PgQueue: batched claims, LISTEN/NOTIFY wake-ups, heartbeats,
retries with backoff, graceful shutdown.

    worker = Worker(queue, name="Ingest Processor", concurrency=4)

    @worker.handler("ingest_csv")
    def ingest(job):
        return {"rows": count_rows(job.payload["file"])}

    worker.run()   # until SIGINT/SIGTERM, stop(), or exit_when_idle

A handler gets a JobContext; what it returns (JSON-serialisable) becomes the job's result. An
exception fails the attempt with "Type: message" (retried per the queue's retry policy);
raising LeaseLostError says the job is no longer ours. Handlers run on worker threads, holding
the GIL only while Python runs.)doc")
      .def(py::init([](QueueHandle& queue, const std::string& name, const std::string& queue_name,
                       int concurrency, int batch_size, int dispatchers,
                       const py::object& poll_interval, bool listen,
                       const py::object& heartbeat_interval, const py::object& shutdown_timeout,
                       const py::object& exit_when_idle, const py::object& worker_id,
                       const py::object& environment, const py::object& config, bool log_startup,
                       const py::object& transaction_budget) {
             WorkerOptions options;
             options.name = name;
             options.queue = queue_name;
             options.concurrency = concurrency;
             options.batch_size = batch_size;
             options.dispatchers = dispatchers;
             options.listen = listen;
             options.log_startup = log_startup;
             if (!config.is_none()) {
               if (!py::isinstance<Config>(config)) {
                 ThrowBadArgument("config", "a Config or None", config);
               }
               const Config& c = config.cast<const Config&>();
               options.environment = std::string(EnvironmentName(c.environment()));
               options.poll_interval = c.poll_interval();
             }
             if (auto env_name = ConvertOptional<std::string>(environment, "environment")) {
               options.environment = *env_name;
             }
             if (!poll_interval.is_none()) {
               options.poll_interval = ToDuration(poll_interval, "poll_interval");
             }
             options.heartbeat_interval = ToDuration(heartbeat_interval, "heartbeat_interval");
             options.shutdown_timeout = ToDuration(shutdown_timeout, "shutdown_timeout");
             if (!exit_when_idle.is_none()) {
               options.exit_when_idle = ToDuration(exit_when_idle, "exit_when_idle");
             }
             if (auto id = ConvertOptional<std::string>(worker_id, "worker_id")) {
               options.worker_id = *id;
             }
             if (!transaction_budget.is_none()) {
               options.transaction_budget = ToDuration(transaction_budget, "transaction_budget");
             }
             auto w = std::make_unique<PyWorker>();
             w->queue = queue.Get();
             w->shutdown_timeout = options.shutdown_timeout;
             w->worker = Value(Worker::Create(w->queue.get(), options));
             return w;
           }),
           py::arg("pg_queue"), py::pos_only(), py::kw_only(), py::arg("name") = "Job",
           py::arg("queue") = "default", py::arg("concurrency") = 1, py::arg("batch_size") = 0,
           py::arg("dispatchers") = 1, py::arg("poll_interval") = py::none(),
           py::arg("listen") = true, py::arg("heartbeat_interval") = 30.0,
           py::arg("shutdown_timeout") = 30.0, py::arg("exit_when_idle") = py::none(),
           py::arg("worker_id") = py::none(), py::arg("environment") = py::none(),
           py::arg("config") = py::none(), py::arg("log_startup") = true,
           py::arg("transaction_budget") = py::none(),
           R"doc(
name shows in the start-up line "Starting <name> Worker (env=...)". config (a Config) supplies
the environment and WORKER_POLL_INTERVAL unless environment / poll_interval are given.
Durations are seconds or timedeltas; exit_when_idle makes run() return after that long
without work. transaction_budget (at most 10 s) turns on short-job mode: a claimed batch is
held by an open transaction and each job that finishes within the budget is written once.)doc")
      .def("register", &Register, py::arg("job_type"), py::arg("handler"),
           "Registers handler(job) for job_type (before run). AlreadyExistsError for a second.")
      .def(
          "handler",
          [](py::object self, const std::string& job_type) {
            return py::cpp_function([self, job_type](py::object fn) {
              Register(self.cast<PyWorker&>(), job_type, fn);
              return fn;
            });
          },
          py::arg("job_type"), "Decorator form of register: @worker.handler(\"ingest_csv\").")
      .def("run", &Run, py::kw_only(), py::arg("handle_signals") = true, R"doc(
Processes jobs until stop(), SIGINT/SIGTERM (when handle_signals and on the main thread: the
previous handlers are restored afterwards), or exit_when_idle. Stops gracefully: running
handlers get shutdown_timeout to finish. Returns the WorkerStats. A worker runs once.)doc")
      .def(
          "stop", [](PyWorker& w, bool now) { StopWorker(*w.worker, now); }, py::kw_only(),
          py::arg("now") = false,
          "Asks run() to stop gracefully; returns at once. Safe from any thread. now=True releases "
          "running jobs at once instead of waiting out shutdown_timeout (as a second SIGINT does).")
      .def_property_readonly("stats", [](const PyWorker& w) { return w.worker->stats(); })
      .def_property_readonly("worker_id", [](const PyWorker& w) { return w.worker->worker_id(); })
      .def_property_readonly("job_types", [](const PyWorker& w) { return w.job_types; });
}

}  // namespace jobqueue::python
