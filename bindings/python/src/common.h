// Helpers shared by the parts of the _jobqueue extension module.
#ifndef JOBQUEUE_BINDINGS_PYTHON_COMMON_H_
#define JOBQUEUE_BINDINGS_PYTHON_COMMON_H_

#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "jobqueue/job.h"
#include "jobqueue/pg_queue.h"

namespace jobqueue::python {

namespace py = pybind11;

// Carries a non-OK status to the translator that raises the matching JobQueueError subclass.
class StatusError : public std::exception {
 public:
  explicit StatusError(absl::Status status) : status_(std::move(status)) {}
  const absl::Status& status() const { return status_; }
  const char* what() const noexcept override { return "jobqueue status error"; }

 private:
  absl::Status status_;
};

inline void Check(const absl::Status& status) {
  if (!status.ok()) throw StatusError(status);
}

template <typename T>
T Value(absl::StatusOr<T> result) {
  if (!result.ok()) throw StatusError(result.status());
  return *std::move(result);
}

// Runs `body` with the GIL released: every call that waits on a server goes through here.
template <typename Body>
auto Unlocked(Body&& body) {
  py::gil_scoped_release release;
  return body();
}

// The name of a value's Python type ("str", "PosixPath"): argument errors show it in place of the
// value, which may be a secret (a URL with its password, an environment).
std::string TypeName(py::handle value);

// Raises for an argument `what` that is not `expected` ("int", "str or None"): TypeError
// "<what> must be <expected>, not <type>", or InvalidArgumentError when it is of the right kind
// but does not fit (an int out of range, a str that is not valid Unicode). Never shows the value.
[[noreturn]] void ThrowBadArgument(const char* what, absl::string_view expected, py::handle value);

// How argument messages name the Python type a C++ parameter type takes.
template <typename T>
constexpr const char* ExpectedTypeName() {
  if constexpr (std::is_same_v<T, bool>) {
    return "bool";
  } else if constexpr (std::is_integral_v<T>) {
    return "int";
  } else if constexpr (std::is_floating_point_v<T>) {
    return "float";
  } else if constexpr (std::is_same_v<T, std::string>) {
    return "str";
  } else {
    static_assert(std::is_same_v<T, std::vector<std::string>>, "name this parameter type");
    return "a sequence of str";
  }
}

// `value` as T, converted as pybind11 converts an argument of type T; ThrowBadArgument otherwise.
template <typename T>
T Convert(py::handle value, const char* what) {
  py::detail::make_caster<T> caster;
  if (!value || !caster.load(value, /*convert=*/true)) {
    ThrowBadArgument(what, ExpectedTypeName<T>(), value);
  }
  return py::detail::cast_op<T>(std::move(caster));
}

// None, or `value` as T (the message says "<T> or None").
template <typename T>
std::optional<T> ConvertOptional(py::handle value, const char* what) {
  if (value.is_none()) return std::nullopt;
  py::detail::make_caster<T> caster;
  if (!caster.load(value, /*convert=*/true)) {
    ThrowBadArgument(what, std::string(ExpectedTypeName<T>()) + " or None", value);
  }
  return py::detail::cast_op<T>(std::move(caster));
}

// A parameter of type T that the overload dispatcher accepts whatever the argument's type (the
// signature and docstring still say T): Get converts it, and a wrong type raises TypeError that
// names the parameter. The calls that take a URL, a password or an environment declare their
// typed parameters this way, so a wrong type is reported precisely (see HideArgumentValues for
// the rest).
template <typename T>
class Loose {
 public:
  Loose() = default;
  explicit Loose(py::object value) : value_(std::move(value)) {}
  T Get(const char* what) const { return Convert<T>(value_, what); }
  const py::object& object() const { return value_; }

 private:
  py::object value_;
};

// Calls a job handler (with the GIL held): its return value as JSON ("null" for None), or the
// status `to_status` makes of the exception it raised. `to_status` must not throw: the real
// error would be lost (a fixed message stands in if it does).
absl::StatusOr<std::string> CallHandler(py::handle fn, py::handle job,
                                        absl::Status (*to_status)(py::error_already_set&));

// The name of an exception type, without raising (a type's __name__ can fail too).
std::string ExceptionTypeName(py::handle type);
// str(value), or nullopt when that raises or is not UTF-8 (the Python error is cleared).
std::optional<std::string> SafeStr(py::handle value);

// Clears a Python object's pointer to a handler's stack context however the call ends, so a
// context kept by the handler never points at a dead frame.
template <typename T>
class ResetOnExit {
 public:
  explicit ResetOnExit(std::atomic<T*>& pointer) : pointer_(pointer) {}
  ResetOnExit(const ResetOnExit&) = delete;
  ResetOnExit& operator=(const ResetOnExit&) = delete;
  ~ResetOnExit() { pointer_.store(nullptr); }

 private:
  std::atomic<T*>& pointer_;
};

// True once the interpreter is exiting. Python ends any thread that takes the GIL then
// (pthread_exit), so runtime threads check this first and keep out of Python.
bool InterpreterExiting();
// Blocks the calling thread until the process ends.
[[noreturn]] void WaitForever();
// Calls fn(arg) (a new reference, or nullptr with the Python error set). A thread Python ends
// during the call, at interpreter exit, waits for the process to end instead of unwinding.
PyObject* CallWithoutUnwinding(py::handle fn, py::handle arg);
// Registered with atexit at import (before Python ends daemon threads): stops every run() in
// progress and gives each its shutdown timeout (+5 s) to finish, with the GIL released.
void StopWorkersAtExit();

// Calls `run` on a helper thread with the GIL released and waits for it, running Python's
// signal handlers meanwhile. With handle_signals (on the main thread) SIGINT/SIGTERM call
// `stop`, and the previous handlers are restored afterwards; an exception a signal handler
// raises calls `stop` and is re-raised once `run` returned. A non-OK status is raised.
void RunUntilStopped(const std::function<absl::Status()>& run, const std::function<void()>& stop,
                     const std::function<void()>& stop_now, bool handle_signals,
                     absl::Duration grace);

// Makes a bound class visible to Python's cycle collector through the Python objects `visit`
// passes on (T::VisitPython(fn), fn(py::handle)) and that `T::ClearPython()` drops. Workers
// hold their handlers in C++; a handler that refers back to its worker (a bound method of
// the object holding it, a closure calling stop()) was a cycle nothing could collect.
template <typename T>
py::custom_type_setup CollectableThrough() {
  return py::custom_type_setup([](PyHeapTypeObject* heap_type) {
    PyTypeObject* type = &heap_type->ht_type;
    type->tp_flags |= Py_TPFLAGS_HAVE_GC;
    type->tp_traverse = [](PyObject* self, visitproc visit, void* arg) -> int {
#if PY_VERSION_HEX >= 0x03090000
      Py_VISIT(Py_TYPE(self));
#endif
      int result = 0;
      try {
        py::cast<T&>(py::handle(self)).VisitPython([&](py::handle object) {
          if (result == 0 && object) result = visit(object.ptr(), arg);
        });
      } catch (...) {  // not constructed (yet): holds nothing
      }
      return result;
    };
    type->tp_clear = [](PyObject* self) -> int {
      try {
        py::cast<T&>(py::handle(self)).ClearPython();
      } catch (...) {
      }
      return 0;
    };
  });
}

// A worker's stop(now=...): Stop(), or StopNow() to hand back running jobs at once.
template <typename W>
void StopWorker(W& worker, bool now) {
  if (now) {
    worker.StopNow();
  } else {
    worker.Stop();
  }
}

// Creates the exception hierarchy on `module` and registers the translator.
void RegisterErrors(py::module_& module);
// The class raised for `code` (a borrowed reference).
py::handle ErrorClass(absl::StatusCode code);
// jobqueue.LeaseLostError, a subclass of AbortedError for IsLeaseLost() statuses.
py::handle LeaseLostErrorClass();
// Builds the exception instance for `status` (with .code set), without raising it.
py::object MakeError(const absl::Status& status);

// JSON through Python's json module (compact separators, UTF-8, no NaN).
std::string Dumps(py::handle value);
py::object Loads(absl::string_view json);

// float seconds or datetime.timedelta.
absl::Duration ToDuration(py::handle value, const char* what);
// An aware datetime (naive ones are taken as local time, as datetime.timestamp() does).
absl::Time ToTime(py::handle value, const char* what);
// An aware UTC datetime.
py::object FromTime(absl::Time time);
py::object FromTime(const std::optional<absl::Time>& time);

// Python's PgQueue. Leases and workers share the C++ queue, so close() frees the pool only once
// none of them needs it any more.
struct QueueHandle {
  std::shared_ptr<PgQueue> queue;  // null once closed
  std::string worker_id;           // the default lease owner of claim()

  // The queue, or FailedPreconditionError when closed.
  std::shared_ptr<PgQueue> Get() const;
};

// The read-only job fields Lease and JobContext share; `Holder` has `lease` and
// `payload_cache` members. payload is parsed once, on first use.
template <typename Holder>
void AddLeaseFields(py::class_<Holder, std::shared_ptr<Holder>>& cls) {
  cls.def_property_readonly(
         "id", [](const Holder& h) { return h.lease.job_id; }, "The job id.")
      .def_property_readonly("job_type", [](const Holder& h) { return h.lease.job_type; })
      .def_property_readonly("queue", [](const Holder& h) { return h.lease.queue; })
      .def_property_readonly(
          "attempt", [](const Holder& h) { return h.lease.attempt; }, "1 on the first claim.")
      .def_property_readonly("max_attempts", [](const Holder& h) { return h.lease.max_attempts; })
      .def_property_readonly("worker_id", [](const Holder& h) { return h.lease.worker_id; })
      .def_property_readonly("payload_json", [](const Holder& h) { return h.lease.payload_json; })
      .def_property_readonly(
          "payload",
          [](Holder& h) {
            if (!h.payload_cache) h.payload_cache = Loads(h.lease.payload_json);
            return h.payload_cache;
          },
          "The payload, decoded from JSON (dict, list, ...).");
}

void RegisterConfig(py::module_& module);
void RegisterPg(py::module_& module);
void RegisterWorker(py::module_& module);
void RegisterBull(py::module_& module);
// Makes every function of `module` and its classes raise TypeError without the arguments'
// values when no overload takes them (pybind11 shows their repr). Called after the Register*.
void HideArgumentValues(py::module_& module);

}  // namespace jobqueue::python

namespace pybind11::detail {

template <typename T>
struct type_caster<jobqueue::python::Loose<T>> {
  PYBIND11_TYPE_CASTER(jobqueue::python::Loose<T>, make_caster<T>::name);

  bool load(handle src, bool) {
    value = jobqueue::python::Loose<T>(reinterpret_borrow<object>(src));
    return true;
  }
  static handle cast(const jobqueue::python::Loose<T>& src, return_value_policy, handle) {
    return src.object().inc_ref();
  }
};

}  // namespace pybind11::detail

#endif  // JOBQUEUE_BINDINGS_PYTHON_COMMON_H_
