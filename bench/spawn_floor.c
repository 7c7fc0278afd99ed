/* The spawn floor: N runs of a program with P in flight, by posix_spawn and
 * waitpid, nothing else. What any orchestrator of subprocess jobs pays at
 * least; bench/compare's baseline.
 *   spawn_floor N P PROGRAM [ARG...]   prints the wall time in seconds */
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>

extern char** environ;

int main(int argc, char** argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: spawn_floor N P PROGRAM [ARG...]\n");
    return 2;
  }
  long n = atol(argv[1]), p = atol(argv[2]);
  if (n < 1 || p < 1) {
    fprintf(stderr, "spawn_floor: N and P must be at least 1\n");
    return 2;
  }
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  long started = 0, done = 0, failed = 0;
  while (done < n) {
    while (started < n && started - done < p) {
      pid_t pid;
      if (posix_spawn(&pid, argv[3], NULL, NULL, argv + 3, environ) != 0) {
        perror("spawn_floor: posix_spawn");
        return 1;
      }
      ++started;
    }
    int status;
    if (waitpid(-1, &status, 0) > 0) {
      ++done;
      if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        ++failed;
    }
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  printf("%.6f\n", (double) (t1.tv_sec - t0.tv_sec) + (double) (t1.tv_nsec - t0.tv_nsec) / 1e9);
  return failed == 0 ? 0 : 1;
}
