/* Uses the installed C API without servers: a status name, the version, and a clear error for
 * a bad BullMQ queue name. */
#include <stdio.h>
#include <string.h>

#include "jobqueue/c.h"

int main(void) {
  jq_bull_consumer_t* consumer = NULL;
  char* err = NULL;
  jq_status_t st =
      jq_bull_consumer_open("redis://127.0.0.1:1", "bad:name", NULL, NULL, &consumer, &err);
  int ok = st == JQ_INVALID_ARGUMENT && consumer == NULL && err != NULL &&
           strstr(err, "queue name") != NULL;
  printf("jobqueue %s: %s\n", jq_version(), jq_status_name(st));
  jq_free(err);
  return ok ? 0 : 1;
}
