/*
 * attack: the system calls of integration/tests/hostile.rs, made from inside a container.
 *
 * Built by the test with `cc -static -O2`, so this x86_64 binary runs natively in every
 * container, a foreign one included. Each attempt prints one line:
 *
 *     RESULT <what> ok
 *     RESULT <what> fail <ERRNO-NAME> <message>
 *
 * and the exit status is the number of attempts that succeeded (0: every one failed).
 * chmod, chown and setcap then print what the file is (`FILE <path> mode=... owner=...`).
 *
 * Usage:
 *   attack chmod MODE PATH          chmod(2), MODE in octal
 *   attack chown UID GID PATH       chown(2)
 *   attack setcap PATH              setxattr(2) of a VFS_CAP_REVISION_2 security.capability
 *   attack remount PATH             a read-write bind remount keeping the other mount flags;
 *                                   on a binfmt_misc mount also a plain (superblock) remount
 *   attack writable PATH            open(2) PATH for writing (nothing is written)
 *   attack rawsock                  socket(AF_INET, SOCK_RAW, ICMP), socket(AF_PACKET, SOCK_RAW)
 *   attack symlink TARGET LINK      symlink(2)
 *   attack readlink PATH...         prints `LINK <path> -> <target>` (no RESULT line)
 *   attack badexec PATH             execs of PATH (a foreign binary) that hand a tracer
 *                                   hostile arguments, each in a child: an unmapped path, an
 *                                   unmapped argv, an unmapped argv[0], a path running into
 *                                   an unmapped page, and the stack pointer moved to an
 *                                   unmapped page just before the syscall (x86_64 only)
 *   attack debug                    what a debugger does to a child of its own: PTRACE_SEIZE,
 *                                   PTRACE_INTERRUPT, a wait for the stop, PTRACE_DETACH
 *                                   (not an attack: trace mode must leave it possible)
 *   attack execsig N SH FLAGS US    N times: a child that catches SIGWINCH execs SH (a foreign
 *                                   shell) with `-c` and two arguments that the shell checks,
 *                                   while this process sends the child SIGWINCH every US
 *                                   microseconds (0: without pause); FLAGS `restart` sets
 *                                   SA_RESTART on the handler, `0` does not; ok for each exec
 *                                   that ran with spoiled
 *                                   arguments or failed (a tracer that let a handler build its
 *                                   frame over the exec's new arguments, or let the exec fail
 *                                   with EINTR, which a native exec never does)
 *   attack lease SRC DST            copies SRC to DST (mode 0755), takes a write lease on DST
 *                                   (fcntl F_SETLEASE F_WRLCK), ignores the lease-break
 *                                   signal, creates DST.ready and sleeps until killed
 *
 * Run under the name `evil` (argv[0] ending in /evil, as a binfmt_misc interpreter without
 * the P flag is), it prints HIJACKED-BY-PREPLANTED-ENTRY and its arguments, and exits 0.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>
#include <netinet/in.h>
#include <linux/if_ether.h>

#define BINFMTFS_MAGIC 0x42494e4d

static int successes;

static const char *errname(int e)
{
	switch (e) {
	case EPERM: return "EPERM";
	case EACCES: return "EACCES";
	case EROFS: return "EROFS";
	case EINVAL: return "EINVAL";
	case ENOENT: return "ENOENT";
	case EBUSY: return "EBUSY";
	case EEXIST: return "EEXIST";
	case ENOTSUP: return "ENOTSUP";
	case EAFNOSUPPORT: return "EAFNOSUPPORT";
	case EPROTONOSUPPORT: return "EPROTONOSUPPORT";
	case EAGAIN: return "EAGAIN";
	case ENAMETOOLONG: return "ENAMETOOLONG";
	case ELOOP: return "ELOOP";
	case ETXTBSY: return "ETXTBSY";
	case ENOTDIR: return "ENOTDIR";
	case EISDIR: return "EISDIR";
	case EFAULT: return "EFAULT";
	case ENOEXEC: return "ENOEXEC";
	case E2BIG: return "E2BIG";
	default: return "E?";
	}
}

static void result(const char *what, int rc)
{
	if (rc == 0) {
		successes++;
		printf("RESULT %s ok\n", what);
	} else {
		int e = errno;
		printf("RESULT %s fail %s %s\n", what, errname(e), strerror(e));
	}
	fflush(stdout);
}

/* What the file now is, after an attempt that may have changed it. */
static void report_file(const char *path)
{
	struct stat st;
	ssize_t caps = getxattr(path, "security.capability", NULL, 0);
	if (stat(path, &st) != 0) {
		printf("FILE %s (%s)\n", path, strerror(errno));
		return;
	}
	printf("FILE %s mode=%04o owner=%u:%u security.capability=%s\n", path,
	       (unsigned)(st.st_mode & 07777), (unsigned)st.st_uid, (unsigned)st.st_gid,
	       caps >= 0 ? "present" : "absent");
	fflush(stdout);
}

static int do_chmod(const char *mode, const char *path)
{
	char what[4096];
	snprintf(what, sizeof what, "chmod-%s:%s", mode, path);
	result(what, chmod(path, (mode_t)strtoul(mode, NULL, 8)));
	report_file(path);
	return successes;
}

static int do_chown(const char *uid, const char *gid, const char *path)
{
	char what[4096];
	snprintf(what, sizeof what, "chown-%s:%s:%s", uid, gid, path);
	result(what, chown(path, (uid_t)atoi(uid), (gid_t)atoi(gid)));
	report_file(path);
	return successes;
}

static int do_setcap(const char *path)
{
	/* struct vfs_cap_data, revision 2, effective flag, CAP_NET_RAW and CAP_SYS_ADMIN
	 * permitted: what a file capability that grants privilege looks like. */
	uint32_t cap[5] = {0x02000000u | 0x1u, (1u << 13) | (1u << 21), 0, 0, 0};
	char what[4096];
	snprintf(what, sizeof what, "setxattr-security.capability:%s", path);
	result(what, setxattr(path, "security.capability", cap, sizeof cap, 0));
	report_file(path);
	return successes;
}

static unsigned long kept_flags(const char *path)
{
	struct statvfs sv;
	unsigned long f = 0;
	if (statvfs(path, &sv) != 0)
		return 0;
	if (sv.f_flag & ST_NOSUID) f |= MS_NOSUID;
	if (sv.f_flag & ST_NODEV) f |= MS_NODEV;
	if (sv.f_flag & ST_NOEXEC) f |= MS_NOEXEC;
	if (sv.f_flag & ST_NOATIME) f |= MS_NOATIME;
	if (sv.f_flag & ST_NODIRATIME) f |= MS_NODIRATIME;
	if (sv.f_flag & ST_RELATIME) f |= MS_RELATIME;
	return f;
}

static void report_rw(const char *path)
{
	struct statvfs sv;
	if (statvfs(path, &sv) == 0)
		printf("STATE %s %s\n", path, (sv.f_flag & ST_RDONLY) ? "ro" : "rw");
	else
		printf("STATE %s unknown %s\n", path, strerror(errno));
	fflush(stdout);
}

static int do_remount(const char *path)
{
	char what[4096];
	unsigned long kept = kept_flags(path);
	struct statfs sf;
	report_rw(path);
	snprintf(what, sizeof what, "remount-bind-rw:%s", path);
	result(what, mount(NULL, path, NULL, MS_REMOUNT | MS_BIND | kept, NULL));
	/* A plain remount reconfigures the superblock too: only ever tried on binfmt_misc, never
	 * on a filesystem that holds host files. */
	if (statfs(path, &sf) == 0 && (unsigned long)sf.f_type == BINFMTFS_MAGIC) {
		snprintf(what, sizeof what, "remount-rw:%s", path);
		result(what, mount("binfmt_misc", path, "binfmt_misc", MS_REMOUNT | kept, NULL));
	}
	report_rw(path);
	return successes;
}

static int do_writable(const char *path)
{
	char what[4096];
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	snprintf(what, sizeof what, "open-for-writing:%s", path);
	result(what, fd < 0 ? -1 : 0);
	if (fd >= 0)
		close(fd);
	return successes;
}

static int do_rawsock(void)
{
	int s = socket(AF_INET, SOCK_RAW, IPPROTO_ICMP);
	result("socket-AF_INET-SOCK_RAW-IPPROTO_ICMP", s < 0 ? -1 : 0);
	if (s >= 0)
		close(s);
	s = socket(AF_PACKET, SOCK_RAW, 0);
	result("socket-AF_PACKET-SOCK_RAW", s < 0 ? -1 : 0);
	if (s >= 0)
		close(s);
	return successes;
}

static int do_symlink(const char *target, const char *link)
{
	char what[8192];
	snprintf(what, sizeof what, "symlink:%s->%s", link, target);
	result(what, symlink(target, link));
	return successes;
}

static int do_readlink(int n, char **paths)
{
	char target[4096];
	for (int i = 0; i < n; i++) {
		ssize_t len = readlink(paths[i], target, sizeof target - 1);
		if (len < 0)
			printf("LINK %s -> (%s)\n", paths[i], strerror(errno));
		else
			printf("LINK %s -> %.*s\n", paths[i], (int)len, target);
	}
	return 0;
}

static int copy(const char *src, const char *dst)
{
	char buf[65536];
	ssize_t n;
	int in = open(src, O_RDONLY | O_CLOEXEC);
	int out = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755);
	if (in < 0 || out < 0)
		return -1;
	while ((n = read(in, buf, sizeof buf)) > 0)
		if (write(out, buf, (size_t)n) != n)
			return -1;
	close(in);
	return close(out) == 0 && n == 0 ? 0 : -1;
}

static int do_lease(const char *src, const char *dst)
{
	char what[4096], ready[4096];
	int fd;
	snprintf(what, sizeof what, "copy:%s", dst);
	if (copy(src, dst) != 0) {
		result(what, -1);
		return 0;
	}
	/* The holder never answers the lease break: the opener waits for the kernel's
	 * lease-break-time. */
	signal(SIGIO, SIG_IGN);
	fd = open(dst, O_RDONLY | O_CLOEXEC);
	snprintf(what, sizeof what, "fcntl-F_SETLEASE-F_WRLCK:%s", dst);
	result(what, fd < 0 ? -1 : fcntl(fd, F_SETLEASE, F_WRLCK));
	if (successes == 0)
		return 0;
	snprintf(ready, sizeof ready, "%s.ready", dst);
	close(open(ready, O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
	for (;;)
		pause();
}

/* execve with the stack pointer on an unmapped page: a tracer that writes below it must
 * fail cleanly. The real stack pointer is restored after the syscall returns. */
static long execve_low_stack(const char *path, char *const argv[], char *const envp[])
{
#if defined(__x86_64__)
	long ret;
	__asm__ volatile("mov %%rsp, %%r12\n\t"
			 "mov $0x10000, %%rsp\n\t"
			 "syscall\n\t"
			 "mov %%r12, %%rsp\n\t"
			 : "=a"(ret)
			 : "a"((long)SYS_execve), "D"(path), "S"(argv), "d"(envp)
			 : "rcx", "r11", "r12", "memory");
	if (ret < 0) {
		errno = (int)-ret;
		return -1;
	}
	return ret;
#else
	return syscall(SYS_execve, path, argv, envp);
#endif
}

/* One hostile exec in a child; its RESULT is the child's: ok only if the exec happened. */
static void bad_exec(const char *what, const char *path, char *const argv[], int low_stack)
{
	char *envp[] = {NULL};
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		long rc = low_stack ? execve_low_stack(path, argv, envp)
				    : syscall(SYS_execve, path, argv, envp);
		result(what, (int)rc);
		_exit(0);
	}
	int status;
	waitpid(pid, &status, 0);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		/* The exec happened (or the child died): the program ran, or crashed. */
		successes++;
		printf("RESULT %s ok (child status %d)\n", what, status);
	}
}

static int do_badexec(const char *path)
{
	char *argv[] = {(char *)path, NULL};
	char *bad_argv0[] = {(char *)8, NULL};
	long page = sysconf(_SC_PAGESIZE);
	char *two = mmap(NULL, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (two == MAP_FAILED)
		return 100;
	munmap(two + page, page);
	memset(two, 'a', page);
	bad_exec("execve-unmapped-path", (const char *)8, argv, 0);
	char *const *volatile unmapped = (char *const *)8;
	bad_exec("execve-unmapped-argv", path, unmapped, 0);
	bad_exec("execve-unmapped-argv0", path, bad_argv0, 0);
	bad_exec("execve-path-into-unmapped-page", two, argv, 0);
	bad_exec("execve-stack-pointer-unmapped", path, argv, 1);
	return successes;
}

static int do_debug(void)
{
	pid_t pid = fork();
	if (pid == 0) {
		pause();
		_exit(0);
	}
	int status = 0;
	result("ptrace-seize", (int)ptrace(PTRACE_SEIZE, pid, 0, 0));
	result("ptrace-interrupt", (int)ptrace(PTRACE_INTERRUPT, pid, 0, 0));
	result("ptrace-stop", waitpid(pid, &status, __WALL) == pid && WIFSTOPPED(status) ? 0 : -1);
	result("ptrace-detach", (int)ptrace(PTRACE_DETACH, pid, 0, 0));
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	return successes;
}

static void caught(int sig)
{
	(void)sig;
}

static int do_execsig(int n, const char *sh, const char *flags, long us)
{
	struct timespec pause = {.tv_sec = us / 1000000, .tv_nsec = (us % 1000000) * 1000};
	int sa_flags = strcmp(flags, "restart") == 0 ? SA_RESTART : 0;
	char *argv[] = {(char *)sh, "-c", "[ \"$0\" = zero ] && [ \"$1\" = 'two words' ]", "zero",
			"two words", NULL};
	char *envp[] = {NULL};
	long sent = 0;
	for (int i = 0; i < n; i++) {
		pid_t pid = fork();
		if (pid == 0) {
			struct sigaction sa = {.sa_handler = caught, .sa_flags = sa_flags};
			sigaction(SIGWINCH, &sa, NULL);
			execve(sh, argv, envp);
			_exit(120);
		}
		int status = 0;
		while (waitpid(pid, &status, WNOHANG) == 0) {
			kill(pid, SIGWINCH);
			sent++;
			if (us > 0)
				nanosleep(&pause, NULL);
		}
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
			successes++;
			printf("RESULT execsig-%s-%ld-%d ok (child status %d)\n", flags, us, i, status);
		}
	}
	printf("SENT %ld\n", sent);
	return successes;
}

int main(int argc, char **argv)
{
	const char *name = strrchr(argv[0], '/');
	name = name ? name + 1 : argv[0];
	if (strcmp(name, "evil") == 0) {
		printf("HIJACKED-BY-PREPLANTED-ENTRY");
		for (int i = 1; i < argc; i++)
			printf(" %s", argv[i]);
		printf("\n");
		return 0;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc == 4 && strcmp(argv[1], "chmod") == 0)
		return do_chmod(argv[2], argv[3]);
	if (argc == 5 && strcmp(argv[1], "chown") == 0)
		return do_chown(argv[2], argv[3], argv[4]);
	if (argc == 3 && strcmp(argv[1], "setcap") == 0)
		return do_setcap(argv[2]);
	if (argc == 3 && strcmp(argv[1], "remount") == 0)
		return do_remount(argv[2]);
	if (argc == 3 && strcmp(argv[1], "writable") == 0)
		return do_writable(argv[2]);
	if (argc == 2 && strcmp(argv[1], "rawsock") == 0)
		return do_rawsock();
	if (argc == 4 && strcmp(argv[1], "symlink") == 0)
		return do_symlink(argv[2], argv[3]);
	if (argc >= 3 && strcmp(argv[1], "readlink") == 0)
		return do_readlink(argc - 2, argv + 2);
	if (argc == 3 && strcmp(argv[1], "badexec") == 0)
		return do_badexec(argv[2]);
	if (argc == 2 && strcmp(argv[1], "debug") == 0)
		return do_debug();
	if (argc == 6 && strcmp(argv[1], "execsig") == 0)
		return do_execsig(atoi(argv[2]), argv[3], argv[4], atol(argv[5]));
	if (argc == 4 && strcmp(argv[1], "lease") == 0)
		return do_lease(argv[2], argv[3]);
	fprintf(stderr, "attack: bad arguments (see the comment at the top of attack.c)\n");
	return 100;
}
