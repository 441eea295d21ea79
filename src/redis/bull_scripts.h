// Our Lua scripts (src/redis/lua/*.lua), compiled in at build time.
#ifndef JOBQUEUE_SRC_REDIS_BULL_SCRIPTS_H_
#define JOBQUEUE_SRC_REDIS_BULL_SCRIPTS_H_

#include <cstddef>

namespace jobqueue::internal {

struct LuaScript {
  const char* name;
  const char* text;
};

extern const LuaScript k_add_job;
extern const LuaScript k_worker_step;
extern const LuaScript k_adopt_claims;
extern const LuaScript k_extend_locks;
extern const LuaScript k_stalled_check;
extern const LuaScript k_pause;
extern const LuaScript k_clean;
extern const LuaScript k_drain;
extern const LuaScript k_remove_job;
extern const LuaScript k_retry_jobs;
extern const LuaScript k_promote;
extern const LuaScript k_progress;
extern const LuaScript k_add_log;
// Every script above, for loading them all at once.
extern const LuaScript* const kAllScripts[];
extern const size_t kAllScriptCount;

}  // namespace jobqueue::internal

#endif  // JOBQUEUE_SRC_REDIS_BULL_SCRIPTS_H_
