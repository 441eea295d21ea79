// BullQueue: the BullMQ-compatible producer on Redis. The BullMQ worker is not in the C++
// library yet (docs/bullmq-compat.md); a BullWorker class belongs here once it is.
#include <pybind11/stl.h>

#include "absl/strings/str_cat.h"
#include "common.h"
#include "jobqueue/bull_queue.h"
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
  return out;
}

// Python's BullQueue; close() drops the pool once no call still uses it.
struct BullHandle {
  std::shared_ptr<BullQueue> queue;

  std::shared_ptr<BullQueue> Get() const {
    if (queue == nullptr) throw StatusError(absl::FailedPreconditionError("the queue is closed"));
    return queue;
  }
};

}  // namespace

void RegisterBull(py::module_& m) {
  py::class_<BullHandle>(m, "BullQueue", R"doc(
A BullMQ-compatible queue on Redis (producer side): jobs are written exactly as BullMQ's
Queue.add writes them, so Node workers (and dashboards) process them.

    bull = BullQueue(config, "emails")
    bull.add("welcome", {"to": "a@example.com"}, {"attempts": 3, "delay": 5000})

`redis` is a redis://, rediss:// or unix:// URL, a Secret, or a Config (its REDIS_URL).)doc")
      .def(py::init([](const py::object& redis, const std::string& name, const std::string& prefix,
                       int pool_size, const py::object& connect_timeout,
                       const py::object& io_timeout, const py::object& tls_ca_file,
                       bool tls_verify) {
             Secret url;
             if (py::isinstance<Config>(redis)) {
               url = redis.cast<const Config&>().redis_url();
               if (url.empty()) {
                 throw StatusError(
                     absl::FailedPreconditionError("no Redis configured: set REDIS_URL"));
               }
             } else if (py::isinstance<Secret>(redis)) {
               url = Secret::Url(std::string(redis.cast<const Secret&>().Reveal()));
             } else {
               url = Secret::Url(redis.cast<std::string>());
             }
             BullQueueOptions options;
             options.prefix = prefix;
             options.pool_size = pool_size;
             options.redis.connect_timeout = ToDuration(connect_timeout, "connect_timeout");
             options.redis.io_timeout = ToDuration(io_timeout, "io_timeout");
             if (!tls_ca_file.is_none())
               options.redis.tls_ca_file = tls_ca_file.cast<std::string>();
             options.redis.tls_verify = tls_verify;
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
      .def("__enter__", [](py::object self) { return self; })
      .def("__exit__", [](BullHandle& h, const py::object&, const py::object&, const py::object&) {
        h.queue.reset();
        return false;
      });
}

}  // namespace jobqueue::python
