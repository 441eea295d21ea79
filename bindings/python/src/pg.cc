// PgQueue, Lease, Job and friends: the Postgres queue for Python.
#include <pybind11/stl.h>
#include <unistd.h>

#include <map>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common.h"
#include "jobqueue/config.h"
#include "jobqueue/json.h"
#include "jobqueue/logging.h"
#include "jobqueue/secret.h"
#include "jobqueue/status.h"

namespace jobqueue::python {

std::shared_ptr<PgQueue> QueueHandle::Get() const {
  if (queue == nullptr) throw StatusError(absl::FailedPreconditionError("the queue is closed"));
  return queue;
}

namespace {

// A claimed job. Its lease fences complete/fail/heartbeat/release (see docs/postgres.md).
struct PyLease {
  Lease lease;
  std::shared_ptr<PgQueue> queue;
  py::object payload_cache;
  py::object result = py::none();  // what a `with lease:` block completes the job with
  bool finished = false;           // completed, failed, released or lost
};
using LeasePtr = std::shared_ptr<PyLease>;

std::string DefaultWorkerId() {
  char host[256] = {0};
  if (gethostname(host, sizeof(host) - 1) != 0) host[0] = '\0';
  std::random_device rd;
  return absl::StrFormat("%s:%d:py%08x", host, getpid(), rd());
}

// A lease that is lost or whose job is gone will never be ours again.
void MarkIfGone(PyLease& lease, const absl::Status& status) {
  if (IsLeaseLost(status) || absl::IsNotFound(status)) lease.finished = true;
}

std::string ResultJson(const py::object& result) {
  return result.is_none() ? std::string("null") : Dumps(result);
}

void Complete(PyLease& lease, const py::object& result) {
  const std::string json = ResultJson(result);
  const absl::Status status = Unlocked([&] { return lease.queue->Complete(lease.lease, json); });
  MarkIfGone(lease, status);
  Check(status);
  lease.finished = true;
}

FailOutcome Fail(PyLease& lease, const std::string& error, const py::object& retry_delay) {
  std::optional<absl::Duration> delay;
  if (!retry_delay.is_none()) delay = ToDuration(retry_delay, "retry_delay");
  absl::StatusOr<FailOutcome> outcome =
      Unlocked([&] { return lease.queue->Fail(lease.lease, error, delay); });
  MarkIfGone(lease, outcome.status());
  FailOutcome out = Value(std::move(outcome));
  lease.finished = true;
  return out;
}

void Release(PyLease& lease) {
  const absl::Status status = Unlocked([&] { return lease.queue->Release(lease.lease); });
  MarkIfGone(lease, status);
  Check(status);
  lease.finished = true;
}

void Heartbeat(PyLease& lease) {
  const absl::Status status = Unlocked([&] { return lease.queue->Heartbeat(lease.lease); });
  MarkIfGone(lease, status);
  Check(status);
}

// `with lease:` completes on a normal exit and fails with the exception's text otherwise; the
// exception still propagates. Describing it never raises (its __str__ may), as in the worker:
// an error here would replace the caller's exception and leave the job processing.
bool ExitLease(PyLease& lease, const py::object& type, const py::object& value, const py::object&) {
  if (lease.finished) return false;
  if (type.is_none()) {
    Complete(lease, lease.result);
    return false;
  }
  const std::string text = absl::StrCat(ExceptionTypeName(type), ": ",
                                        SafeStr(value).value_or("<exception str() failed>"));
  try {
    Fail(lease, text, py::none());
  } catch (const StatusError& error) {
    // The original exception matters more; the failed fail goes to the log.
    Log(LogLevel::kWarn,
        absl::StrCat("job ", lease.lease.job_id,
                     ": could not record the failure: ", error.status().ToString()));
  }
  return false;
}

EnqueueOptions MakeOptions(const std::string& queue, const py::object& delay,
                           const py::object& run_at, int priority, int max_attempts,
                           const py::object& dedupe_key) {
  EnqueueOptions options;
  options.queue = queue;
  options.delay = ToDuration(delay, "delay");
  if (!run_at.is_none()) options.run_at = ToTime(run_at, "run_at");
  options.priority = priority;
  options.max_attempts = max_attempts;
  if (auto key = ConvertOptional<std::string>(dedupe_key, "dedupe_key")) options.dedupe_key = *key;
  return options;
}

std::string PayloadJson(const py::object& payload) {
  return payload.is_none() ? std::string("{}") : Dumps(payload);
}

// The keyword arguments every enqueue takes, in order after the job.
#define JQ_ENQUEUE_KWARGS                                                 \
  py::kw_only(), py::arg("queue") = "default", py::arg("delay") = 0.0,    \
                 py::arg("run_at") = py::none(), py::arg("priority") = 0, \
                 py::arg("max_attempts") = 5, py::arg("dedupe_key") = py::none()

NewJob ToNewJob(py::handle item, const EnqueueOptions& defaults) {
  if (py::isinstance<NewJob>(item)) return item.cast<NewJob>();
  if (py::isinstance<py::str>(item)) {
    return NewJob{Convert<std::string>(item, "job type"), "{}", defaults};
  }
  if (py::isinstance<py::tuple>(item) || py::isinstance<py::list>(item)) {
    py::sequence pair = py::reinterpret_borrow<py::sequence>(item);
    if (pair.size() == 1 || pair.size() == 2) {
      py::object payload = pair.size() == 2 ? py::object(pair[1]) : py::object(py::none());
      // Not str(): (None, {...}) would become job type "None", valid and handled by no one.
      return NewJob{Convert<std::string>(py::object(pair[0]), "job type"), PayloadJson(payload),
                    defaults};
    }
  }
  throw StatusError(absl::InvalidArgumentError(
      "enqueue_many: each job must be a NewJob, a job type, or a (job_type, payload) pair"));
}

LeasePtr WrapLease(Lease lease, std::shared_ptr<PgQueue> queue) {
  auto out = std::make_shared<PyLease>();
  out->lease = std::move(lease);
  out->queue = std::move(queue);
  return out;
}

std::vector<std::string> JobTypes(const py::object& job_types) {
  if (job_types.is_none()) return {};
  if (py::isinstance<py::str>(job_types)) return {Convert<std::string>(job_types, "job_types")};
  py::detail::make_caster<std::vector<std::string>> types;
  if (!types.load(job_types, /*convert=*/true)) {
    ThrowBadArgument("job_types", "a str, a sequence of str or None", job_types);
  }
  return py::detail::cast_op<std::vector<std::string>>(std::move(types));
}

// PgQueue's `database`: a Config (which must have one), a Secret or a URL string.
Secret DatabaseUrl(const py::object& database) {
  if (py::isinstance<Config>(database)) {
    Secret url = database.cast<const Config&>().database_url();
    if (url.empty()) {
      throw StatusError(absl::FailedPreconditionError(
          "no database configured: set DATABASE_URL, or SUPABASE_MODE with "
          "SUPABASE_DB_URL_<MODE>"));
    }
    return url;
  }
  if (py::isinstance<Secret>(database)) {
    return Secret::Url(std::string(database.cast<const Secret&>().Reveal()));
  }
  if (py::isinstance<py::str>(database)) {
    return Secret::Url(Convert<std::string>(database, "database"));
  }
  ThrowBadArgument("database", "a URL str, a Secret or a Config", database);
}

}  // namespace

void RegisterPg(py::module_& m) {
  py::class_<EnqueueResult>(m, "EnqueueResult",
                            "What enqueue did: the job id, and whether a "
                            "new job was inserted (False: an existing job "
                            "with the same dedupe key).")
      .def_readonly("id", &EnqueueResult::id)
      .def_readonly("inserted", &EnqueueResult::inserted)
      .def("__int__", [](const EnqueueResult& r) { return r.id; })
      .def("__repr__", [](const EnqueueResult& r) {
        return absl::StrCat("EnqueueResult(id=", r.id, ", inserted=", r.inserted ? "True" : "False",
                            ")");
      });

  py::class_<NewJob>(m, "NewJob", "One job for PgQueue.enqueue_many, with its own options.")
      .def(py::init([](const std::string& job_type, const py::object& payload,
                       const std::string& queue, const py::object& delay, const py::object& run_at,
                       int priority, int max_attempts, const py::object& dedupe_key) {
             return NewJob{job_type, PayloadJson(payload),
                           MakeOptions(queue, delay, run_at, priority, max_attempts, dedupe_key)};
           }),
           py::arg("job_type"), py::arg("payload") = py::none(), JQ_ENQUEUE_KWARGS)
      .def_readonly("job_type", &NewJob::job_type)
      .def_readonly("payload_json", &NewJob::payload_json);

  py::class_<FailOutcome>(m, "FailOutcome", "What became of a failed attempt.")
      .def_readonly("will_retry", &FailOutcome::will_retry, "True: back to pending.")
      .def_property_readonly(
          "retry_at",
          [](const FailOutcome& o) { return o.will_retry ? FromTime(o.retry_at) : py::none(); },
          "When it runs again (UTC datetime), or None.")
      .def_readonly("attempts", &FailOutcome::attempts)
      .def("__repr__", [](const FailOutcome& o) {
        return absl::StrCat("FailOutcome(will_retry=", o.will_retry ? "True" : "False",
                            ", attempts=", o.attempts, ")");
      });

  py::class_<StatusCount>(m, "StatusCount", "Jobs of one queue, type and status.")
      .def_readonly("queue", &StatusCount::queue)
      .def_readonly("job_type", &StatusCount::job_type)
      .def_property_readonly(
          "status", [](const StatusCount& c) { return std::string(JobStatusName(c.status)); })
      .def_readonly("count", &StatusCount::count)
      .def("__repr__", [](const StatusCount& c) {
        return absl::StrCat("StatusCount(queue='", c.queue, "', job_type='", c.job_type,
                            "', status='", JobStatusName(c.status), "', count=", c.count, ")");
      });

  py::class_<StaleJob>(m, "StaleJob", "A processing job whose heartbeat is old (PgQueue.stale).")
      .def_readonly("id", &StaleJob::id)
      .def_readonly("queue", &StaleJob::queue)
      .def_readonly("job_type", &StaleJob::job_type)
      .def_readonly("locked_by", &StaleJob::locked_by)
      .def_readonly("attempts", &StaleJob::attempts)
      .def_readonly("max_attempts", &StaleJob::max_attempts)
      .def_property_readonly(
          "heartbeat_age", [](const StaleJob& j) { return absl::ToDoubleSeconds(j.heartbeat_age); },
          "Seconds since the heartbeat (else the claim, else the last update).")
      .def("__repr__", [](const StaleJob& j) {
        return absl::StrCat("StaleJob(id=", j.id, ", job_type='", j.job_type, "', locked_by='",
                            j.locked_by, "')");
      });

  py::class_<RecoveredJob>(m, "RecoveredJob", "One job the stale-lock reaper moved.")
      .def_readonly("id", &RecoveredJob::id)
      .def_readonly("job_type", &RecoveredJob::job_type)
      .def_readonly("previous_owner", &RecoveredJob::previous_owner)
      .def_property_readonly(
          "new_status",
          [](const RecoveredJob& j) { return std::string(JobStatusName(j.new_status)); },
          "\"pending\", or \"failed\" when its attempts were spent.")
      .def("__repr__", [](const RecoveredJob& j) {
        return absl::StrCat("RecoveredJob(id=", j.id, ", job_type='", j.job_type, "', new_status='",
                            JobStatusName(j.new_status), "')");
      });

  py::class_<Job>(m, "Job", "One row of job_queue, as PgQueue.get reads it.")
      .def_readonly("id", &Job::id)
      .def_readonly("queue", &Job::queue)
      .def_readonly("job_type", &Job::job_type)
      .def_property_readonly("payload", [](const Job& j) { return Loads(j.payload_json); })
      .def_readonly("payload_json", &Job::payload_json)
      .def_property_readonly(
          "status", [](const Job& j) { return std::string(JobStatusName(j.status)); },
          "\"pending\", \"processing\", \"completed\", \"failed\" or \"cancelled\".")
      .def_readonly("priority", &Job::priority)
      .def_property_readonly("run_at", [](const Job& j) { return FromTime(j.run_at); })
      .def_readonly("attempts", &Job::attempts)
      .def_readonly("max_attempts", &Job::max_attempts)
      .def_property_readonly("locked_by",
                             [](const Job& j) -> py::object {
                               if (j.locked_by.empty()) return py::none();
                               return py::str(j.locked_by);
                             })
      .def_property_readonly("locked_at", [](const Job& j) { return FromTime(j.locked_at); })
      .def_property_readonly("heartbeat_at", [](const Job& j) { return FromTime(j.heartbeat_at); })
      .def_property_readonly("last_error",
                             [](const Job& j) -> py::object {
                               if (j.last_error.empty()) return py::none();
                               return py::str(j.last_error);
                             })
      .def_property_readonly(
          "result",
          [](const Job& j) {
            return j.result_json ? Loads(*j.result_json) : py::object(py::none());
          },
          "The handler's result, decoded from JSON, or None.")
      .def_readonly("result_json", &Job::result_json)
      .def_property_readonly("dedupe_key",
                             [](const Job& j) -> py::object {
                               if (j.dedupe_key.empty()) return py::none();
                               return py::str(j.dedupe_key);
                             })
      .def_property_readonly("created_at", [](const Job& j) { return FromTime(j.created_at); })
      .def_property_readonly("updated_at", [](const Job& j) { return FromTime(j.updated_at); })
      .def_property_readonly("finished_at", [](const Job& j) { return FromTime(j.finished_at); })
      .def("__repr__", [](const Job& j) {
        return absl::StrCat("Job(id=", j.id, ", job_type='", j.job_type, "', status='",
                            JobStatusName(j.status), "', attempts=", j.attempts, "/",
                            j.max_attempts, ")");
      });

  py::class_<PyLease, LeasePtr> lease_class(m, "Lease", R"doc(
A claimed job. Only its holder may finish it: complete(), fail(), heartbeat() and release()
raise LeaseLostError once the lease was lost (recovered by the reaper, re-claimed, cancelled).

As a context manager it completes the job with `lease.result` when the block ends normally,
and fails it with the exception's text when the block raises (the exception propagates):

    for lease in queue.claim("ingest_csv", limit=10):
        with lease:
            lease.result = ingest(lease.payload))doc");
  AddLeaseFields(lease_class);
  lease_class
      .def_readwrite("result", &PyLease::result,
                     "The result a `with lease:` block completes the job with. Default None.")
      .def_property_readonly(
          "finished", [](const PyLease& l) { return l.finished; },
          "True once completed, failed, released or lost.")
      .def("complete", &Complete, py::arg("result") = py::none(),
           "Marks the job completed with a JSON-serialisable result.")
      .def("fail", &Fail, py::arg("error"), py::arg("retry_delay") = py::none(),
           "Records the error; the job is retried after the queue's backoff (or retry_delay "
           "seconds) or fails for good when its attempts are spent. Returns a FailOutcome.")
      .def("heartbeat", &Heartbeat, "Extends the lease (heartbeat_at = now).")
      .def("release", &Release, "Gives the job back to pending without using up an attempt.")
      .def("__enter__", [](const LeasePtr& l) { return l; })
      .def("__exit__", &ExitLease)
      .def("__repr__", [](const PyLease& l) {
        return absl::StrCat("Lease(id=", l.lease.job_id, ", job_type='", l.lease.job_type,
                            "', attempt=", l.lease.attempt, ")");
      });

  py::class_<QueueHandle>(m, "PgQueue", R"doc(
The durable Postgres queue, <schema>.job_queue (default ops.job_queue).

    with PgQueue(config, schema="ops") as queue:
        queue.migrate()
        queue.enqueue("ingest_csv", {"file": "upload-1.csv"})

`database` is a postgres:// URL, a libpq key=value string, a Secret or a Config. Every call
that waits on the server releases the GIL. See docs/python.md.)doc")
      .def(py::init(
               [](const py::object& database, const Loose<std::string>& schema,
                  const Loose<int>& pool_size, const py::object& connect_timeout,
                  const Loose<std::string>& application_name, const py::object& retry_base_delay,
                  const Loose<double>& retry_multiplier, const py::object& retry_max_delay,
                  const Loose<double>& retry_jitter, const Loose<int>& connections_at_open,
                  const Loose<int>& max_enqueue_statements, const py::object& migrate_lock_timeout,
                  const py::object& held_batch_idle_timeout, const Loose<bool>& delete_completed) {
                 // Every argument is checked before the URL is used (a wrong type: TypeError).
                 PgOptions options;
                 options.schema = schema.Get("schema");
                 options.pool_size = pool_size.Get("pool_size");
                 options.connections_at_open = connections_at_open.Get("connections_at_open");
                 options.max_enqueue_statements =
                     max_enqueue_statements.Get("max_enqueue_statements");
                 options.migrate_lock_timeout =
                     ToDuration(migrate_lock_timeout, "migrate_lock_timeout");
                 options.held_batch_idle_timeout =
                     ToDuration(held_batch_idle_timeout, "held_batch_idle_timeout");
                 options.delete_completed = delete_completed.Get("delete_completed");
                 options.connect_timeout = ToDuration(connect_timeout, "connect_timeout");
                 options.application_name = application_name.Get("application_name");
                 options.retry.base_delay = ToDuration(retry_base_delay, "retry_base_delay");
                 options.retry.multiplier = retry_multiplier.Get("retry_multiplier");
                 options.retry.max_delay = ToDuration(retry_max_delay, "retry_max_delay");
                 options.retry.jitter = retry_jitter.Get("retry_jitter");
                 const Secret url = DatabaseUrl(database);
                 auto handle = std::make_unique<QueueHandle>();
                 handle->queue = Value(Unlocked([&] { return PgQueue::Open(url, options); }));
                 handle->worker_id = DefaultWorkerId();
                 return handle;
               }),
           py::arg("database"), py::kw_only(), py::arg("schema") = "ops", py::arg("pool_size") = 4,
           py::arg("connect_timeout") = 10.0, py::arg("application_name") = "jobqueue",
           py::arg("retry_base_delay") = 1.0, py::arg("retry_multiplier") = 2.0,
           py::arg("retry_max_delay") = 3600.0, py::arg("retry_jitter") = 0.2,
           py::arg("connections_at_open") = 1, py::arg("max_enqueue_statements") = 2,
           py::arg("migrate_lock_timeout") = 5.0, py::arg("held_batch_idle_timeout") = 60.0,
           py::arg("delete_completed") = false)
      .def_property_readonly("schema",
                             [](const QueueHandle& h) { return h.Get()->options().schema; })
      .def_property_readonly(
          "worker_id", [](const QueueHandle& h) { return h.worker_id; },
          "The lease owner claim() uses unless given one.")
      .def_property_readonly("closed", [](const QueueHandle& h) { return h.queue == nullptr; })
      .def(
          "close", [](QueueHandle& h) { h.queue.reset(); },
          "Closes this handle; the pool closes once no lease or worker still uses it.")
      .def("__enter__", [](py::object self) { return self; })
      .def("__exit__",
           [](QueueHandle& h, const py::object&, const py::object&, const py::object&) {
             h.queue.reset();
             return false;
           })
      .def(
          "migrate",
          [](const QueueHandle& h) {
            auto queue = h.Get();
            return Value(Unlocked([&] { return queue->Migrate(); }));
          },
          "Creates or upgrades the schema (safe concurrently); returns its version.")
      .def(
          "schema_version",
          [](const QueueHandle& h) {
            auto queue = h.Get();
            return Value(Unlocked([&] { return queue->SchemaVersion(); }));
          },
          "The highest migration applied, in one round trip (a health check too). "
          "UnavailableError when Postgres cannot be reached, FailedPreconditionError before "
          "the first migrate.")
      .def(
          "enqueue",
          [](const QueueHandle& h, const std::string& job_type, const py::object& payload,
             const std::string& queue_name, const py::object& delay, const py::object& run_at,
             int priority, int max_attempts, const py::object& dedupe_key) {
            auto queue = h.Get();
            NewJob job{job_type, PayloadJson(payload),
                       MakeOptions(queue_name, delay, run_at, priority, max_attempts, dedupe_key)};
            return Value(Unlocked([&] { return queue->Enqueue(job); }));
          },
          py::arg("job_type"), py::arg("payload") = py::none(), JQ_ENQUEUE_KWARGS,
          R"doc(
Adds one job. payload is any JSON-serialisable value (None means {}). delay is seconds or a
timedelta; run_at a datetime; lower priority runs first; a dedupe_key keeps at most one live job
per queue and key (then the existing job's id comes back with inserted=False).)doc")
      .def(
          "enqueue_many",
          [](const QueueHandle& h, const py::iterable& jobs, const std::string& queue_name,
             const py::object& delay, const py::object& run_at, int priority, int max_attempts,
             const py::object& dedupe_key) {
            auto queue = h.Get();
            const EnqueueOptions defaults =
                MakeOptions(queue_name, delay, run_at, priority, max_attempts, dedupe_key);
            std::vector<NewJob> batch;
            for (py::handle item : jobs) batch.push_back(ToNewJob(item, defaults));
            if (batch.empty()) return std::vector<EnqueueResult>();
            return Value(Unlocked([&] { return queue->EnqueueMany(batch); }));
          },
          py::arg("jobs"), JQ_ENQUEUE_KWARGS, R"doc(
Adds many jobs in one statement: NewJob objects (with their own options), or job types or
(job_type, payload) pairs that take the keyword options. All are validated first; one bad job
rejects the batch. Results are in input order.)doc")
      .def(
          "claim",
          [](const QueueHandle& h, const py::object& job_types, int limit,
             const std::string& queue_name, const py::object& worker_id) {
            auto queue = h.Get();
            ClaimRequest request;
            request.worker_id =
                ConvertOptional<std::string>(worker_id, "worker_id").value_or(h.worker_id);
            request.queue = queue_name;
            request.job_types = JobTypes(job_types);
            request.limit = limit;
            std::vector<Lease> claimed = Value(Unlocked([&] { return queue->Claim(request); }));
            py::list out(claimed.size());
            for (size_t i = 0; i < claimed.size(); ++i) {
              out[i] = py::cast(WrapLease(std::move(claimed[i]), queue));
            }
            return out;
          },
          py::arg("job_types") = py::none(), py::kw_only(), py::arg("limit") = 1,
          py::arg("queue") = "default", py::arg("worker_id") = py::none(),
          "Claims up to `limit` due jobs of the given types (a str or a list; None: any) and "
          "returns their Leases, in claim order (priority, run time, id).")
      .def(
          "complete",
          [](const QueueHandle&, PyLease& lease, const py::object& result) {
            Complete(lease, result);
          },
          py::arg("lease"), py::arg("result") = py::none(), "Same as lease.complete(result).")
      .def(
          "complete_many",
          [](const QueueHandle& h, const std::vector<LeasePtr>& leases, const py::object& results) {
            auto queue = h.Get();
            if (!results.is_none() && py::len(results) != leases.size()) {
              throw StatusError(absl::InvalidArgumentError(absl::StrCat(
                  "complete_many: ", leases.size(), " leases but ", py::len(results), " results")));
            }
            // CompleteAndClaim takes one owner's leases per round trip. Every result is
            // checked first, so a bad one writes nothing at all.
            struct Group {
              std::vector<PgQueue::Completion> done;
              std::vector<PyLease*> leases;
            };
            std::map<std::string, Group> by_owner;
            for (size_t i = 0; i < leases.size(); ++i) {
              if (leases[i] == nullptr) {
                throw StatusError(absl::InvalidArgumentError("complete_many: a lease is None"));
              }
              const Lease& l = leases[i]->lease;
              py::object result = py::none();
              if (!results.is_none()) result = results[py::int_(i)];
              std::string json = ResultJson(result);
              if (absl::Status valid = jobqueue::ValidateStorableJson(json); !valid.ok()) {
                throw StatusError(absl::InvalidArgumentError(absl::StrCat(
                    "complete_many: result of job ", l.job_id, " is ", valid.message())));
              }
              Group& group = by_owner[l.worker_id];
              group.done.push_back({l, std::move(json)});
              group.leases.push_back(leases[i].get());
            }
            // A group is finished as soon as it is written, so a later group's failure (a
            // lost connection) leaves the earlier leases marked truthfully.
            std::vector<int64_t> lost;
            size_t completed = 0;
            for (const auto& [owner, group] : by_owner) {
              ClaimRequest none;
              none.worker_id = owner;
              none.queue = group.done.front().lease.queue;
              none.limit = 0;
              absl::StatusOr<PgQueue::CompleteAndClaimResult> flushed =
                  Unlocked([&] { return queue->CompleteAndClaim(group.done, none); });
              if (!flushed.ok()) {
                absl::Status status = flushed.status();
                if (completed > 0) {
                  status = Annotate(status, absl::StrCat("complete_many: leases of owner \"", owner,
                                                         "\" (", completed,
                                                         " leases of other owners were completed "
                                                         "first and are finished)"));
                }
                throw StatusError(status);
              }
              for (PyLease* l : group.leases) l->finished = true;
              completed += group.leases.size();
              lost.insert(lost.end(), flushed->lost_job_ids.begin(), flushed->lost_job_ids.end());
            }
            return lost;
          },
          py::arg("leases"), py::arg("results") = py::none(),
          "Completes many leases in one round trip per owner (results: None, or one per lease). "
          "Returns the ids of jobs whose lease was lost. Every result is checked first: a bad "
          "one raises InvalidArgumentError and writes nothing.")
      .def(
          "fail",
          [](const QueueHandle&, PyLease& lease, const std::string& error,
             const py::object& retry_delay) { return Fail(lease, error, retry_delay); },
          py::arg("lease"), py::arg("error"), py::arg("retry_delay") = py::none(),
          "Same as lease.fail(error, retry_delay).")
      .def(
          "heartbeat", [](const QueueHandle&, PyLease& lease) { Heartbeat(lease); },
          py::arg("lease"))
      .def(
          "release", [](const QueueHandle&, PyLease& lease) { Release(lease); }, py::arg("lease"))
      .def(
          "cancel",
          [](const QueueHandle& h, int64_t job_id) {
            auto queue = h.Get();
            Check(Unlocked([&] { return queue->Cancel(job_id); }));
          },
          py::arg("job_id"), "Pending -> cancelled; FailedPreconditionError otherwise.")
      .def(
          "get",
          [](const QueueHandle& h, int64_t job_id) {
            auto queue = h.Get();
            return Value(Unlocked([&] { return queue->Get(job_id); }));
          },
          py::arg("job_id"), "The job as stored; NotFoundError when there is none.")
      .def(
          "counts",
          [](const QueueHandle& h) {
            auto queue = h.Get();
            return Value(Unlocked([&] { return queue->Counts(); }));
          },
          "Job counts by queue, type and status.")
      .def(
          "count",
          [](const QueueHandle& h, const py::object& status, const py::object& job_type,
             const py::object& queue_name) {
            auto queue = h.Get();
            const std::optional<std::string> want_status =
                ConvertOptional<std::string>(status, "status");
            const std::optional<std::string> want_type =
                ConvertOptional<std::string>(job_type, "job_type");
            const std::optional<std::string> want_queue =
                ConvertOptional<std::string>(queue_name, "queue");
            const std::vector<StatusCount> rows = Value(Unlocked([&] { return queue->Counts(); }));
            int64_t total = 0;
            for (const StatusCount& row : rows) {
              if (want_status && *want_status != JobStatusName(row.status)) continue;
              if (want_type && *want_type != row.job_type) continue;
              if (want_queue && *want_queue != row.queue) continue;
              total += row.count;
            }
            return total;
          },
          py::kw_only(), py::arg("status") = py::none(), py::arg("job_type") = py::none(),
          py::arg("queue") = py::none(), "The number of jobs matching every given filter.")
      .def(
          "retry_failed",
          [](const QueueHandle& h, const std::string& job_type) {
            auto queue = h.Get();
            return Value(Unlocked([&] { return queue->RetryFailed(job_type); }));
          },
          py::arg("job_type") = "", "Failed jobs back to pending; returns how many moved.")
      .def(
          "stale",
          [](const QueueHandle& h, const py::object& older_than) {
            const absl::Duration age = ToDuration(older_than, "older_than");
            auto queue = h.Get();
            return Value(Unlocked([&] { return queue->ListStale(age); }));
          },
          py::arg("older_than") = 1800.0,
          "Processing jobs whose heartbeat is older than older_than (seconds or timedelta).")
      .def(
          "recover_stale",
          [](const QueueHandle& h, const py::object& stale_after, int batch_size, int max_batches,
             const std::optional<py::dict>& stale_after_by_type) {
            RecoverOptions options;
            options.stale_after = ToDuration(stale_after, "stale_after");
            options.batch_size = batch_size;
            options.max_batches = max_batches;
            if (stale_after_by_type) {
              for (const auto& [type, after] : *stale_after_by_type) {
                options.stale_after_by_type.emplace_back(
                    Convert<std::string>(type, "every key of stale_after_by_type"),
                    ToDuration(after, "stale_after_by_type"));
              }
            }
            auto queue = h.Get();
            return Value(Unlocked([&] { return queue->RecoverStale(options); })).jobs;
          },
          py::arg("stale_after") = 1800.0, py::kw_only(), py::arg("batch_size") = 500,
          py::arg("max_batches") = 20, py::arg("stale_after_by_type") = py::none(),
          "One stale-lock reaper sweep: processing jobs without a heartbeat for stale_after (or "
          "stale_after_by_type[job_type]) go back to pending, or to failed when their attempts "
          "are spent. Returns the jobs moved (none when another process held the sweep).")
      .def(
          "purge",
          [](const QueueHandle& h, const py::object& completed_older_than,
             const py::object& failed_older_than, int batch_size, int max_batches) {
            PurgeOptions options;
            options.completed_older_than = ToDuration(completed_older_than, "completed_older_than");
            options.failed_older_than = ToDuration(failed_older_than, "failed_older_than");
            options.batch_size = batch_size;
            options.max_batches = max_batches;
            auto queue = h.Get();
            return Value(Unlocked([&] { return queue->Purge(options); }));
          },
          py::kw_only(), py::arg("completed_older_than") = 7 * 86400.0,
          py::arg("failed_older_than") = 30 * 86400.0, py::arg("batch_size") = 1000,
          py::arg("max_batches") = 100,
          "Retention: deletes completed/cancelled and failed jobs finished longer ago than their "
          "age, in bounded batches. Returns rows deleted.");
}

#undef JQ_ENQUEUE_KWARGS

}  // namespace jobqueue::python
