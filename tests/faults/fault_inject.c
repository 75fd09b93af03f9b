/* An LD_PRELOAD library that injects faults into one process, for the
 * fault-tolerance tests (tests/e2e/fault_test.sh, rl_fault_test.sh).
 * Configured by environment variables:
 *   MUSE_FAULT_PATH    writes to files whose path contains this string are
 *                      affected (without it no write is)
 *   MUSE_FAULT_ACTION  "enospc": such writes fail with ENOSPC (a full disk);
 *                      "kill": the process is killed with SIGKILL
 *   MUSE_FAULT_AFTER   bytes of affected writes that succeed first (default 0)
 *   MUSE_FAULT_PHASE   the process is killed with SIGKILL when it reaches the
 *                      named point (rl/fault_point.h: "rollout", "update")...
 *   MUSE_FAULT_STEP    ...of this step (required with MUSE_FAULT_PHASE)
 *   MUSE_FAULT_RANK    only the MPI rank with this OMPI_COMM_WORLD_RANK
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

static long long written; /* bytes of affected writes so far */

/* Whether MUSE_FAULT_RANK, when set, names this process's rank. */
static int chosen_rank(void) {
  const char* rank = getenv("MUSE_FAULT_RANK");
  const char* mine = getenv("OMPI_COMM_WORLD_RANK");
  return !rank || !*rank || (mine && strcmp(rank, mine) == 0);
}

/* Whether a write of n bytes to fd must fail (sets errno) or kill. */
static int fault(int fd, size_t n) {
  const char* pattern = getenv("MUSE_FAULT_PATH");
  if (!pattern || !*pattern) return 0;
  if (!chosen_rank()) return 0;
  char link[64], path[4096];
  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  const ssize_t len = readlink(link, path, sizeof path - 1);
  if (len <= 0) return 0;
  path[len] = '\0';
  if (!strstr(path, pattern)) return 0;
  const char* after = getenv("MUSE_FAULT_AFTER");
  if (written + (long long)n <= (after ? atoll(after) : 0)) {
    written += (long long)n;
    return 0;
  }
  const char* action = getenv("MUSE_FAULT_ACTION");
  if (action && strcmp(action, "kill") == 0) kill(getpid(), SIGKILL);
  errno = ENOSPC;
  return 1;
}

ssize_t write(int fd, const void* buf, size_t n) {
  static ssize_t (*real)(int, const void*, size_t);
  if (!real) real = (ssize_t(*)(int, const void*, size_t))dlsym(RTLD_NEXT, "write");
  if (fault(fd, n)) return -1;
  return real(fd, buf, n);
}

ssize_t pwrite(int fd, const void* buf, size_t n, off_t offset) {
  static ssize_t (*real)(int, const void*, size_t, off_t);
  if (!real) real = (ssize_t(*)(int, const void*, size_t, off_t))dlsym(RTLD_NEXT, "pwrite");
  if (fault(fd, n)) return -1;
  return real(fd, buf, n, offset);
}

ssize_t pwrite64(int fd, const void* buf, size_t n, off_t offset) {
  static ssize_t (*real)(int, const void*, size_t, off_t);
  if (!real) real = (ssize_t(*)(int, const void*, size_t, off_t))dlsym(RTLD_NEXT, "pwrite64");
  if (fault(fd, n)) return -1;
  return real(fd, buf, n, offset);
}

/* muse-train calls this at the named points of a step (rl/fault_point.h). */
void muse_fault_point(const char* phase, int64_t step) {
  const char* chosen = getenv("MUSE_FAULT_PHASE");
  const char* at_step = getenv("MUSE_FAULT_STEP");
  if (!chosen || !at_step || strcmp(chosen, phase) != 0 || atoll(at_step) != step) return;
  if (chosen_rank()) kill(getpid(), SIGKILL);
}
