/**
 * kstate: a static C program for test/integration/checkpoint-kstate.test.ts. It sets per-thread kernel state that
 * CRIU's images do not all hold, on its main thread and on a second thread with other values:
 * - CPU affinity (sched_setaffinity): the second thread on the one CPU argv[1] names, the main thread on all;
 * - timer slack (PR_SET_TIMERSLACK): 123457 ns and 777777 ns;
 * - I/O priority (ioprio_set, IOPRIO_WHO_PROCESS on the tid): best-effort 3 and 6;
 * - nice (setpriority on the tid): 3 and 7; scheduler policy: SCHED_OTHER and SCHED_BATCH;
 * and, for the process, a personality (ADDR_NO_RANDOMIZE), SysV semaphores children raised with SEM_UNDO, and a UDP
 * socket with an unread datagram queued. On each SIGUSR1 every thread appends a line of what it reads back with the
 * same calls to /tmp/kstate.out ("round N tK ..."), the main thread first, then a line "round N done". Two children
 * each raised one semaphore of a set (semaphore K by child K) with SEM_UNDO; the Kth SIGUSR2 (K from 0) kills child K,
 * waits for it and appends "undo K semval=V": 0 when the kernel undid the child's SEM_UNDO at its exit.
 */
export const KSTATE_C = String.raw`
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/sem.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define IOPRIO_WHO_PROCESS 1
#define IOPRIO_PRIO_VALUE(c, d) (((c) << 13) | (d))
#define IOPRIO_CLASS_BE 2

static volatile sig_atomic_t want = 0, undo = 0, undone = 0;
static volatile int round_no = 0, answered = 0;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static int semid, udp;
static pid_t children[2];

static void on_usr1(int s) { (void)s; want++; }
static void on_usr2(int s) { (void)s; undo++; }

static void append(const char *line) {
  FILE *f = fopen("/tmp/kstate.out", "a");
  if (!f) return;
  fputs(line, f);
  fclose(f);
}

static void report(int k) {
  char line[512], cpus[128] = "";
  cpu_set_t set;
  CPU_ZERO(&set);
  sched_getaffinity(0, sizeof set, &set);
  for (int c = 0; c < CPU_SETSIZE; c++)
    if (CPU_ISSET(c, &set)) snprintf(cpus + strlen(cpus), sizeof cpus - strlen(cpus), "%s%d", cpus[0] ? "," : "", c);
  pid_t tid = (pid_t)syscall(SYS_gettid);
  errno = 0;
  int nice = getpriority(PRIO_PROCESS, (id_t)tid);
  long ioprio = syscall(SYS_ioprio_get, IOPRIO_WHO_PROCESS, tid);
  char buf[16];
  long udpq = recv(udp, buf, sizeof buf, MSG_PEEK | MSG_DONTWAIT);
  snprintf(line, sizeof line, "round %d t%d tid=%d cpus=%s slack=%d ioprio=%ld nice=%d policy=%d personality=0x%x semvals=%d,%d udp=%ld\n", round_no, k, tid, cpus, prctl(PR_GET_TIMERSLACK), ioprio, nice, sched_getscheduler(0), personality(0xffffffff), semctl(semid, 0, GETVAL), semctl(semid, 1, GETVAL), udpq < 0 ? -errno : udpq);
  pthread_mutex_lock(&mu);
  append(line);
  answered++;
  pthread_mutex_unlock(&mu);
}

static void set_mine(long slack, int ioprio_level, int nice) {
  pid_t tid = (pid_t)syscall(SYS_gettid);
  if (prctl(PR_SET_TIMERSLACK, slack) != 0) perror("timerslack");
  if (syscall(SYS_ioprio_set, IOPRIO_WHO_PROCESS, tid, IOPRIO_PRIO_VALUE(IOPRIO_CLASS_BE, ioprio_level)) != 0) perror("ioprio_set");
  if (setpriority(PRIO_PROCESS, (id_t)tid, nice) != 0) perror("setpriority");
}

static volatile int second_ready = 0;
static int cpu;

static void *second(void *arg) {
  (void)arg;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (sched_setaffinity(0, sizeof set, &set) != 0) perror("sched_setaffinity");
  set_mine(777777, 6, 7);
  struct sched_param p = {0};
  if (sched_setscheduler(0, SCHED_BATCH, &p) != 0) perror("SCHED_BATCH");
  second_ready = 1;
  int seen = 0;
  for (;;) {
    if (round_no != seen && answered == 1) {
      seen = round_no;
      report(1);
    }
    usleep(5000);
  }
  return NULL;
}

int main(int argc, char **argv) {
  cpu = argc > 1 ? atoi(argv[1]) : 0;
  unlink("/tmp/kstate.out");
  semid = semget(IPC_PRIVATE, 2, 0600);
  if (semid < 0) { perror("semget"); return 1; }
  int go[2];
  if (pipe(go) != 0) return 1;
  for (int i = 0; i < 2; i++) {
    children[i] = fork();
    if (children[i] == 0) {
      struct sembuf up = {(unsigned short)i, 1, SEM_UNDO};
      if (semop(semid, &up, 1) != 0) perror("semop");
      if (write(go[1], "x", 1) != 1) return 1;
      for (;;) pause();
    }
    char c;
    if (read(go[0], &c, 1) != 1) return 1;
  }
  udp = socket(AF_INET, SOCK_DGRAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t alen = sizeof a;
  if (bind(udp, (struct sockaddr *)&a, sizeof a) != 0 || getsockname(udp, (struct sockaddr *)&a, &alen) != 0) { perror("udp"); return 1; }
  if (sendto(udp, "queued", 6, 0, (struct sockaddr *)&a, sizeof a) != 6) { perror("sendto"); return 1; }
  if (personality(ADDR_NO_RANDOMIZE) < 0) perror("personality");
  set_mine(123457, 3, 3);
  signal(SIGUSR1, on_usr1);
  signal(SIGUSR2, on_usr2);
  pthread_t t;
  if (pthread_create(&t, NULL, second, NULL) != 0) return 1;
  while (!second_ready) usleep(1000);
  append("ready\n");
  int seen = 0;
  for (;;) {
    if (want != seen) {
      seen = want;
      answered = 0;
      round_no = seen;
      report(0);
      while (answered < 2) usleep(1000);
      char done[64];
      snprintf(done, sizeof done, "round %d done\n", seen);
      append(done);
    }
    if (undo != undone && undone < 2) {
      int k = undone++;
      kill(children[k], SIGKILL);
      waitpid(children[k], NULL, 0);
      char line[64];
      snprintf(line, sizeof line, "undo %d semval=%d\n", k, semctl(semid, k, GETVAL));
      append(line);
    }
    usleep(5000);
  }
}
`;
