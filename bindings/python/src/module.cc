// The _jobqueue extension module: errors, JSON and time conversions, configuration, secrets
// and logging. The queue, worker and BullMQ classes live in pg.cc, worker.cc and bull.cc.
#include <pybind11/stl.h>

#include <array>
#include <cmath>
#include <map>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common.h"
#include "jobqueue/config.h"
#include "jobqueue/job.h"
#include "jobqueue/logging.h"
#include "jobqueue/secret.h"
#include "jobqueue/version.h"

namespace jobqueue::python {
namespace {

struct ErrorKind {
  absl::StatusCode code;
  const char* name;
  PyObject* extra_base;  // a builtin the class also derives from, or nullptr
};

// Set once at import; the classes live as long as the interpreter.
PyObject* g_base_error = nullptr;
PyObject* g_lease_lost_error = nullptr;
std::array<PyObject*, 17> g_error_classes{};

PyObject* Cached(const char* module, const char* attribute) {
  return py::object(py::module_::import(module).attr(attribute)).release().ptr();
}

}  // namespace

void RegisterErrors(py::module_& module) {
  g_base_error = PyErr_NewExceptionWithDoc(
      "jobqueue.JobQueueError",
      "Base of every error the library reports. `code` is the canonical status code name\n"
      "(\"INVALID_ARGUMENT\", \"NOT_FOUND\", ...); str(error) is the message with context.",
      PyExc_Exception, nullptr);
  if (g_base_error == nullptr) throw py::error_already_set();
  module.add_object("JobQueueError", py::handle(g_base_error));
  const ErrorKind kinds[] = {
      {absl::StatusCode::kCancelled, "CancelledError", nullptr},
      {absl::StatusCode::kInvalidArgument, "InvalidArgumentError", PyExc_ValueError},
      {absl::StatusCode::kDeadlineExceeded, "DeadlineExceededError", PyExc_TimeoutError},
      {absl::StatusCode::kNotFound, "NotFoundError", PyExc_LookupError},
      {absl::StatusCode::kAlreadyExists, "AlreadyExistsError", nullptr},
      {absl::StatusCode::kPermissionDenied, "PermissionDeniedError", nullptr},
      {absl::StatusCode::kResourceExhausted, "ResourceExhaustedError", nullptr},
      {absl::StatusCode::kFailedPrecondition, "FailedPreconditionError", nullptr},
      {absl::StatusCode::kAborted, "AbortedError", nullptr},
      {absl::StatusCode::kOutOfRange, "OutOfRangeError", nullptr},
      {absl::StatusCode::kUnimplemented, "UnimplementedError", nullptr},
      {absl::StatusCode::kInternal, "InternalError", nullptr},
      {absl::StatusCode::kUnavailable, "UnavailableError", PyExc_ConnectionError},
      {absl::StatusCode::kDataLoss, "DataLossError", nullptr},
      {absl::StatusCode::kUnauthenticated, "UnauthenticatedError", nullptr},
  };
  g_error_classes.fill(g_base_error);
  for (const ErrorKind& kind : kinds) {
    py::object bases =
        kind.extra_base == nullptr
            ? py::reinterpret_borrow<py::object>(g_base_error)
            : py::object(py::make_tuple(py::handle(g_base_error), py::handle(kind.extra_base)));
    const std::string qualified = absl::StrCat("jobqueue.", kind.name);
    PyObject* cls = PyErr_NewException(qualified.c_str(), bases.ptr(), nullptr);
    if (cls == nullptr) throw py::error_already_set();
    g_error_classes[static_cast<size_t>(kind.code)] = cls;
    module.add_object(kind.name, py::handle(cls));
  }
  // A lost lease is an ABORTED status with a marker (job.h): its own subclass, so a handler
  // passing on some other ABORTED error (a deadlock) fails its attempt instead.
  g_lease_lost_error = PyErr_NewExceptionWithDoc(
      "jobqueue.LeaseLostError",
      "The lease was lost (recovered by the reaper, re-claimed, cancelled): nothing was written.",
      g_error_classes[static_cast<size_t>(absl::StatusCode::kAborted)], nullptr);
  if (g_lease_lost_error == nullptr) throw py::error_already_set();
  module.add_object("LeaseLostError", py::handle(g_lease_lost_error));

  py::register_exception_translator([](std::exception_ptr pending) {
    try {
      if (pending) std::rethrow_exception(pending);
    } catch (const StatusError& error) {
      py::object instance = MakeError(error.status());
      PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(instance.ptr())), instance.ptr());
    }
  });
}

py::handle ErrorClass(absl::StatusCode code) {
  const auto index = static_cast<size_t>(code);
  return index < g_error_classes.size() ? g_error_classes[index] : g_base_error;
}

py::handle LeaseLostErrorClass() { return g_lease_lost_error; }

py::object MakeError(const absl::Status& status) {
  py::handle cls = IsLeaseLost(status) ? LeaseLostErrorClass() : ErrorClass(status.code());
  py::object instance = cls(std::string(status.message().data(), status.message().size()));
  instance.attr("code") = absl::StatusCodeToString(status.code());
  return instance;
}

std::string Dumps(py::handle value) {
  static PyObject* encode = [] {
    py::object encoder = py::module_::import("json").attr("JSONEncoder")(
        py::arg("separators") = py::make_tuple(",", ":"), py::arg("ensure_ascii") = false,
        py::arg("allow_nan") = false);
    return py::object(encoder.attr("encode")).release().ptr();
  }();
  // A lone surrogate passes the encoder (ensure_ascii=False) but not UTF-8.
  return Convert<std::string>(py::handle(encode)(value), "a str in the value");
}

py::object Loads(absl::string_view json) {
  static PyObject* loads = Cached("json", "loads");
  return py::handle(loads)(py::str(json.data(), json.size()));
}

absl::Duration ToDuration(py::handle value, const char* what) {
  const auto not_seconds = [what] {
    return StatusError(absl::InvalidArgumentError(
        absl::StrCat(what, " must be seconds (a number) or a datetime.timedelta")));
  };
  py::object number;
  if (py::hasattr(value, "total_seconds")) {
    number = value.attr("total_seconds")();
  } else if (PyFloat_Check(value.ptr()) || PyLong_Check(value.ptr())) {
    number = py::reinterpret_borrow<py::object>(value);
  } else {
    throw not_seconds();
  }
  double seconds = PyFloat_AsDouble(number.ptr());
  if (seconds == -1.0 && PyErr_Occurred()) {
    // An int too large for a double is not finite either; anything else is not a number.
    const bool overflow = PyErr_ExceptionMatches(PyExc_OverflowError) != 0;
    PyErr_Clear();
    if (!overflow) throw not_seconds();
    seconds = HUGE_VAL;
  }
  if (!std::isfinite(seconds)) {
    throw StatusError(absl::InvalidArgumentError(absl::StrCat(what, " must be finite")));
  }
  return absl::Seconds(seconds);
}

absl::Time ToTime(py::handle value, const char* what) {
  if (!py::hasattr(value, "timestamp")) {
    throw StatusError(
        absl::InvalidArgumentError(absl::StrCat(what, " must be a datetime.datetime")));
  }
  return absl::FromUnixMicros(
      static_cast<int64_t>(std::llround(value.attr("timestamp")().cast<double>() * 1e6)));
}

py::object FromTime(absl::Time time) {
  static PyObject* epoch = [] {
    py::module_ datetime = py::module_::import("datetime");
    return datetime
        .attr("datetime")(1970, 1, 1, py::arg("tzinfo") = datetime.attr("timezone").attr("utc"))
        .release()
        .ptr();
  }();
  static PyObject* timedelta = Cached("datetime", "timedelta");
  return py::handle(epoch) +
         py::handle(timedelta)(py::arg("microseconds") = absl::ToUnixMicros(time));
}

py::object FromTime(const std::optional<absl::Time>& time) {
  return time ? FromTime(*time) : py::none();
}

std::string TypeName(py::handle value) {
  if (!value) return "nothing";
  return ExceptionTypeName(py::handle(reinterpret_cast<PyObject*>(Py_TYPE(value.ptr()))));
}

void ThrowBadArgument(const char* what, absl::string_view expected, py::handle value) {
  // The right kind of value that does not fit the C++ type.
  if (value && (absl::StartsWith(expected, "int") || absl::StartsWith(expected, "float")) &&
      PyLong_Check(value.ptr())) {
    throw StatusError(absl::InvalidArgumentError(absl::StrCat(what, " is out of range")));
  }
  if (value && absl::StartsWith(expected, "str") && PyUnicode_Check(value.ptr())) {
    throw StatusError(absl::InvalidArgumentError(absl::StrCat(what, " is not valid Unicode text")));
  }
  throw py::type_error(absl::StrCat(what, " must be ", expected, ", not ", TypeName(value)));
}

namespace {

// collections.abc.Mapping, imported at import time.
PyObject* g_mapping_class = nullptr;

// environ= of Config.load: any mapping of str to str (os.environ, a dict). A wrong type names
// neither the variable nor its value: either may be a secret.
std::map<std::string, std::string> Environment(const py::object& environ) {
  const int is_mapping = PyObject_IsInstance(environ.ptr(), g_mapping_class);
  if (is_mapping < 0) throw py::error_already_set();
  if (is_mapping == 0) ThrowBadArgument("environ", "a mapping of str to str or None", environ);
  std::map<std::string, std::string> out;
  for (py::handle item : environ.attr("items")()) {
    py::tuple pair = py::reinterpret_borrow<py::tuple>(item);
    out[Convert<std::string>(pair[0], "every key of environ")] =
        Convert<std::string>(pair[1], "every value of environ");
  }
  return out;
}

Config LoadConfig(const Loose<std::string>& service, const Loose<std::string>& env_dir,
                  const Loose<bool>& load_env_files, const py::object& scopes_path,
                  const Loose<std::vector<std::string>>& required,
                  const Loose<bool>& allow_prod_database_in_dev, const Loose<bool>& report_only,
                  const py::object& environ) {
  ConfigOptions options;
  options.service = service.Get("service");
  options.env_dir = env_dir.Get("env_dir");
  options.load_env_files = load_env_files.Get("load_env_files");
  options.scopes_path = ConvertOptional<std::string>(scopes_path, "scopes_path").value_or("");
  options.required = required.Get("required");
  options.allow_prod_database_in_dev = allow_prod_database_in_dev.Get("allow_prod_database_in_dev");
  options.report_only = report_only.Get("report_only");
  // Explicit in Python: config.configure_logging() and config.warnings.
  options.configure_logging = false;
  std::map<std::string, std::string> environment;
  if (!environ.is_none()) {
    environment = Environment(environ);
    options.environment = &environment;
  }
  return Value(Unlocked([&] { return Config::Load(options); }));
}

}  // namespace

void RegisterConfig(py::module_& m) {
  g_mapping_class = Cached("collections.abc", "Mapping");
  py::class_<Secret>(m, "Secret", R"doc(
A value that never prints: repr() and str() show it redacted. reveal() returns the plain value
for the one place it must go (a connection, an HTTP header).)doc")
      .def(py::init([](const Loose<std::string>& value) { return Secret(value.Get("value")); }),
           py::arg("value"))
      .def(
          "reveal", [](const Secret& s) { return std::string(s.Reveal()); },
          "The plain value. Never log it.")
      .def("__str__", &Secret::Redacted)
      .def("__repr__", [](const Secret& s) { return absl::StrCat("Secret('", s.Redacted(), "')"); })
      .def("__bool__", [](const Secret& s) { return !s.empty(); })
      // An operator: `secret == None` is False (NotImplemented underneath), not a TypeError.
      .def(
          "__eq__", [](const Secret& a, const Secret& b) { return a == b; }, py::is_operator());

  py::class_<Config>(m, "Config", R"doc(
A service's configuration from the environment and .env files, with secret scopes.

Load it with Config.load("worker"); see docs/configuration.md for the variables, their
precedence and the guard rails. Secrets are only ever shown masked.)doc")
      .def_static("load", &LoadConfig, py::arg("service"), py::kw_only(), py::arg("env_dir") = ".",
                  py::arg("load_env_files") = true, py::arg("scopes_path") = py::none(),
                  py::arg("required") = py::tuple(), py::arg("allow_prod_database_in_dev") = false,
                  py::arg("report_only") = false, py::arg("environ") = py::none(),
                  R"doc(
Loads the configuration of `service` ("api", "worker", "ingest", ...).

environ replaces os.environ (a mapping of str to str, such as a dict) when given. Loading neither logs nor changes
the logging setup: call config.configure_logging() and read config.warnings. Raises
InvalidArgumentError
listing every problem found, or PermissionDeniedError for a secret outside the service's scope
in prod; exit_code_for(error) gives the process exit code (78 or 77).)doc")
      .def_property_readonly("service", &Config::service)
      .def_property_readonly(
          "environment",
          [](const Config& c) { return std::string(EnvironmentName(c.environment())); },
          "\"dev\", \"staging\" or \"prod\".")
      .def_property_readonly(
          "supabase_mode",
          [](const Config& c) { return std::string(SupabaseModeName(c.supabase_mode())); },
          "\"unset\", \"dev\" or \"prod\".")
      .def_property_readonly(
          "database_url", [](const Config& c) { return c.database_url(); },
          "The database URL as a Secret (empty when none is configured).")
      .def_property_readonly("database_url_source", &Config::database_url_source)
      .def_property_readonly("redis_url", [](const Config& c) { return c.redis_url(); })
      .def_property_readonly("supabase_url", &Config::supabase_url)
      .def_property_readonly(
          "log_level", [](const Config& c) { return std::string(LogLevelName(c.log_level())); })
      .def_property_readonly(
          "log_format", [](const Config& c) { return std::string(LogFormatName(c.log_format())); })
      .def_property_readonly(
          "poll_interval", [](const Config& c) { return absl::ToDoubleSeconds(c.poll_interval()); },
          "WORKER_POLL_INTERVAL in seconds.")
      .def_property_readonly("warnings", &Config::warnings)
      .def_property_readonly("scope_violations", &Config::scope_violations)
      .def(
          "get", [](const Config& c, const std::string& name) { return c.Get(name); },
          py::arg("name"), "A plain (non-secret) variable from any source, or None.")
      .def(
          "get_secret",
          [](const Config& c, const std::string& name) { return Value(c.GetSecret(name)); },
          py::arg("name"),
          "A secret the scope allows. NotFoundError when unset, PermissionDeniedError when out "
          "of scope.")
      .def(
          "configure_logging", [](const Config& c) { ConfigureLogging(c.logging_options()); },
          "Applies LOG_LEVEL and LOG_FORMAT to the library's log, tagged with the service.")
      .def("__repr__", &Config::DebugString);

  m.def(
      "exit_code_for",
      [](py::handle error) {
        if (!py::isinstance(error, py::handle(g_base_error))) return kExitConfigError;
        const py::object code = py::getattr(error, "code", py::none());
        if (!py::isinstance<py::str>(code)) return kExitConfigError;
        return SafeStr(code) == "PERMISSION_DENIED" ? kExitScopeViolation : kExitConfigError;
      },
      py::arg("error"),
      "The process exit code for a failed Config.load: 77 for a secret outside the scope, 78 "
      "for any other configuration error.");
  m.attr("EXIT_USAGE") = kExitUsage;
  m.attr("EXIT_SCOPE_VIOLATION") = kExitScopeViolation;
  m.attr("EXIT_CONFIG_ERROR") = kExitConfigError;

  m.def(
      "configure_logging",
      [](const py::object& level, const py::object& format, const py::object& service) {
        LoggingOptions options = CurrentLoggingOptions();
        if (auto name = ConvertOptional<std::string>(level, "level")) {
          options.level = Value(ParseLogLevel(*name));
        }
        if (auto name = ConvertOptional<std::string>(format, "format")) {
          options.format = Value(ParseLogFormat(*name));
        }
        if (auto name = ConvertOptional<std::string>(service, "service")) options.service = *name;
        ConfigureLogging(options);
      },
      py::kw_only(), py::arg("level") = py::none(), py::arg("format") = py::none(),
      py::arg("service") = py::none(),
      "Sets the library's log level (trace..off), format (text|json) and service tag; None "
      "keeps the current value. Lines go to stderr.");
}

namespace {

// pybind11's dispatcher, which every function of the module goes through.
PyCFunctionWithKeywords g_dispatcher = nullptr;

// When no overload takes the arguments, pybind11's dispatcher raises TypeError ending in
// "Invoked with: <the repr of every argument>": a URL with its password, an environ mapping.
// This keeps the message up to there (the signatures) and lists the arguments' types instead,
// plus any keyword no signature has.
void HideValuesOfDispatchError(PyObject* args, PyObject* kwargs) {
  py::error_already_set error;  // fetches the pending TypeError
  const std::optional<std::string> text = SafeStr(error.value());
  static constexpr char kInvoked[] = "\nInvoked with: ";
  const size_t invoked = text ? text->find(kInvoked) : std::string::npos;
  if (invoked == std::string::npos || text->find("): incompatible ") == std::string::npos) {
    error.restore();  // not the dispatcher's message
    return;
  }
  const absl::string_view signatures = absl::string_view(*text).substr(0, invoked);
  const bool constructor = absl::StrContains(signatures, "incompatible constructor arguments");
  std::vector<std::string> positional;
  const Py_ssize_t count = args == nullptr ? 0 : PyTuple_GET_SIZE(args);
  for (Py_ssize_t i = constructor ? 1 : 0; i < count; ++i) {
    positional.push_back(TypeName(PyTuple_GET_ITEM(args, i)));
  }
  std::vector<std::string> keywords;
  std::vector<std::string> unknown;
  if (kwargs != nullptr) {
    for (auto [key, value] : py::reinterpret_borrow<py::dict>(kwargs)) {
      const std::string name = SafeStr(key).value_or("?");
      keywords.push_back(absl::StrCat(name, ": ", TypeName(value)));
      if (!absl::StrContains(signatures, absl::StrCat("(", name, ": ")) &&
          !absl::StrContains(signatures, absl::StrCat(", ", name, ": "))) {
        unknown.push_back(absl::StrCat("'", name, "'"));
      }
    }
  }
  std::string message(signatures);
  absl::StrAppend(&message, "\nInvoked with arguments of types (values not shown): (",
                  absl::StrJoin(positional, ", "));
  if (!keywords.empty()) {
    absl::StrAppend(&message, positional.empty() ? "" : ", ", absl::StrJoin(keywords, ", "));
  }
  absl::StrAppend(&message, ")");
  if (!unknown.empty()) {
    absl::StrAppend(&message, "\nunexpected keyword argument ", absl::StrJoin(unknown, ", "));
  }
  PyErr_SetString(PyExc_TypeError, message.c_str());
}

// A str argument that UTF-8 cannot encode (a lone surrogate): no str parameter takes it.
bool HasNonUnicodeStr(PyObject* args, PyObject* kwargs) {
  auto bad = [](PyObject* value) {
    if (!PyUnicode_Check(value)) return false;
    if (PyUnicode_AsUTF8AndSize(value, nullptr) != nullptr) return false;
    PyErr_Clear();
    return true;
  };
  for (Py_ssize_t i = 0; args != nullptr && i < PyTuple_GET_SIZE(args); ++i) {
    if (bad(PyTuple_GET_ITEM(args, i))) return true;
  }
  PyObject* key;
  PyObject* value;
  for (Py_ssize_t pos = 0; kwargs != nullptr && PyDict_Next(kwargs, &pos, &key, &value);) {
    if (bad(value)) return true;
  }
  return false;
}

PyObject* DispatchHidingValues(PyObject* self, PyObject* args, PyObject* kwargs) {
  PyObject* result = g_dispatcher(self, args, kwargs);
  if (result == nullptr && PyErr_ExceptionMatches(PyExc_TypeError)) {
    PyObject *type, *value, *trace;
    PyErr_Fetch(&type, &value, &trace);
    if (HasNonUnicodeStr(args, kwargs)) {
      Py_XDECREF(type);
      Py_XDECREF(value);
      Py_XDECREF(trace);
      const py::object error =
          MakeError(absl::InvalidArgumentError("a str argument is not valid Unicode text"));
      PyErr_SetObject(error.get_type().ptr(), error.ptr());
      return nullptr;
    }
    PyErr_Restore(type, value, trace);
    try {
      HideValuesOfDispatchError(args, kwargs);
    } catch (...) {
      // Whatever failed, the original message must not get out.
      PyErr_Clear();
      PyErr_SetString(PyExc_TypeError, "incompatible function arguments");
    }
  }
  return result;
}

PyCFunctionWithKeywords AsDispatcher(PyCFunction function) {
  return reinterpret_cast<PyCFunctionWithKeywords>(reinterpret_cast<void (*)()>(function));
}

// Routes `object` (a function, method, static method or property of the module) through
// DispatchHidingValues when it is a pybind11 function.
void HideArgumentValuesOf(py::handle object) {
  PyObject* function = object.ptr();
  if (PyInstanceMethod_Check(function)) {
    function = PyInstanceMethod_GET_FUNCTION(function);
  } else if (PyObject_TypeCheck(function, &PyStaticMethod_Type)) {
    HideArgumentValuesOf(object.attr("__func__"));
    return;
  } else if (PyObject_TypeCheck(function, &PyProperty_Type)) {
    HideArgumentValuesOf(object.attr("fget"));
    HideArgumentValuesOf(object.attr("fset"));
    return;
  }
  if (!PyCFunction_Check(function)) return;
  PyMethodDef* def = reinterpret_cast<PyCFunctionObject*>(function)->m_ml;
  if (AsDispatcher(def->ml_meth) != g_dispatcher) return;
  def->ml_meth = reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&DispatchHidingValues));
}

}  // namespace

// No TypeError of a call with mismatched arguments shows their values: every pybind11 function
// of the module and its classes (the calls that take a URL, a Secret or an environ among them)
// dispatches through DispatchHidingValues. Called once every class is registered.
void HideArgumentValues(py::module_& module) {
  py::cpp_function probe([] {});
  g_dispatcher = AsDispatcher(PyCFunction_GET_FUNCTION(probe.ptr()));
  const py::str name = module.attr("__name__");
  for (auto [key, value] : py::reinterpret_borrow<py::dict>(module.attr("__dict__"))) {
    HideArgumentValuesOf(value);
    if (!PyType_Check(value.ptr()) || !py::getattr(value, "__module__", py::none()).equal(name)) {
      continue;
    }
    // A class's __dict__ is a mappingproxy.
    for (py::handle member : value.attr("__dict__").attr("values")()) HideArgumentValuesOf(member);
  }
}

}  // namespace jobqueue::python

PYBIND11_MODULE(_jobqueue, m) {
  namespace jp = jobqueue::python;
  m.doc() = "libjobqueue's native module; import it as `jobqueue`.";
  m.attr("__version__") = JOBQUEUE_VERSION_STRING;
  jp::RegisterErrors(m);
  jp::RegisterConfig(m);
  jp::RegisterPg(m);
  jp::RegisterWorker(m);
  jp::RegisterBull(m);
  jp::HideArgumentValues(m);
  // Sets up the function-local statics that import modules now: first reached from two handler
  // threads at once, one would wait on the static's guard holding the GIL while the other waits
  // for the GIL inside the import (a deadlock).
  jp::Dumps(pybind11::none());
  jp::Loads("null");
  jp::FromTime(absl::UnixEpoch());
  // Runs before Python ends daemon threads, so a worker running in one stops cleanly.
  pybind11::module_::import("atexit").attr("register")(
      pybind11::cpp_function(&jp::StopWorkersAtExit));
}
