// Our Lua scripts (src/redis/lua/*.lua), compiled in at build time.
#ifndef JOBQUEUE_SRC_REDIS_BULL_SCRIPTS_H_
#define JOBQUEUE_SRC_REDIS_BULL_SCRIPTS_H_

namespace jobqueue::internal {

extern const char kAddJobLua[];

}  // namespace jobqueue::internal

#endif  // JOBQUEUE_SRC_REDIS_BULL_SCRIPTS_H_
