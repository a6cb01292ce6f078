/*
 * mount.c - `seglake mount DATA_DIR MOUNTPOINT [--bucket NAME] [--allow-other]
 * [--foreground] [--debug]`: opens the data dir (creating an empty lake if
 * the directory does not exist), mounts it through fs/, and runs until
 * unmounted (fusermount3 -u, umount) or signalled (SIGTERM/SIGINT/SIGHUP:
 * unmount, close the core, exit 0). Without --foreground it detaches once the
 * mount is ready. Not here: FUSE request handling (fs/).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli/mount.h"
#include "cli/cli.h"
#include "common/err.h"
#include "core/core.h"
#include "fs/fs.h"

static void mount_usage(FILE *f)
{
	fprintf(f, "usage: seglake mount DATA_DIR MOUNTPOINT [--bucket NAME] [--allow-other]\n"
		   "                     [--foreground] [--debug]\n"
		   "  --bucket NAME   mount one bucket at MOUNTPOINT (default: one directory per "
		   "bucket)\n"
		   "  --allow-other   let other users use the mount (needs user_allow_other for "
		   "non-root)\n"
		   "  --foreground    stay attached to the terminal (default: detach when "
		   "mounted)\n"
		   "  --debug         FUSE request log on stderr (implies --foreground)\n");
}

/* Refuses a data dir inside the mountpoint or a mountpoint inside the data dir. */
static int mount_checkPaths(const char *data, const char *mnt)
{
	char rd[PATH_MAX], rm[PATH_MAX];
	struct stat st;
	if (!realpath(mnt, rm) || stat(rm, &st) < 0 || !S_ISDIR(st.st_mode)) {
		fprintf(stderr, "seglake mount: mountpoint %s is not a directory\n", mnt);
		return -1;
	}
	if (!realpath(data, rd))
		return 0; /* created below, outside any existing mount path check */
	size_t ld = strlen(rd), lm = strlen(rm);
	int data_in_mnt = strncmp(rd, rm, lm) == 0 && (rd[lm] == '/' || rd[lm] == '\0' || lm == 1);
	int mnt_in_data = strncmp(rm, rd, ld) == 0 && (rm[ld] == '/' || rm[ld] == '\0');
	if (data_in_mnt || mnt_in_data) {
		fprintf(stderr,
			"seglake mount: the data dir %s and the mountpoint %s must not contain "
			"each other\n",
			rd, rm);
		return -1;
	}
	return 0;
}

int cli_mount(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "bucket", required_argument, NULL, 'b' },
		{ "allow-other", no_argument, NULL, 'a' },
		{ "foreground", no_argument, NULL, 'f' },
		{ "debug", no_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	fs_opts fo = { 0 };
	int foreground = 0;
	optind = 1;
	int ch;
	while ((ch = getopt_long(argc, argv, "b:afdh", longopts, NULL)) != -1) {
		switch (ch) {
		case 'b':
			fo.bucket = optarg;
			break;
		case 'a':
			fo.allow_other = 1;
			break;
		case 'f':
			foreground = 1;
			break;
		case 'd':
			fo.debug = 1;
			foreground = 1;
			break;
		case 'h':
			mount_usage(stdout);
			return 0;
		default:
			mount_usage(stderr);
			return 2;
		}
	}
	if (argc - optind != 2) {
		mount_usage(stderr);
		return 2;
	}
	const char *data = argv[optind], *mnt = argv[optind + 1];
	if (fo.bucket && !core_bucket_name_valid(fo.bucket)) {
		fprintf(stderr, "seglake mount: invalid bucket name '%s'\n", fo.bucket);
		return 2;
	}
	if (mount_checkPaths(data, mnt) < 0)
		return 1;
	fo.mountpoint = mnt;

	/* Detach: the parent waits for the child's "mounted" (or error) byte. */
	int ready[2] = { -1, -1 };
	if (!foreground) {
		if (pipe(ready) < 0) {
			fprintf(stderr, "seglake mount: pipe: %s\n", strerror(errno));
			return 1;
		}
		fflush(NULL);
		pid_t pid = fork();
		if (pid < 0) {
			fprintf(stderr, "seglake mount: fork: %s\n", strerror(errno));
			return 1;
		}
		if (pid > 0) {
			close(ready[1]);
			char b = 1;
			ssize_t n;
			while ((n = read(ready[0], &b, 1)) < 0 && errno == EINTR)
				;
			close(ready[0]);
			if (n == 1 && b == 0) {
				printf("seglake: mounted %s at %s (pid %d)\n", data, mnt, (int)pid);
				return 0;
			}
			return 1; /* the child printed why */
		}
		close(ready[0]);
		setsid();
	}

	sigset_t sigs;
	cli_block_signals(&sigs);

	sl_err err = { 0 };
	struct stat st;
	if (stat(data, &st) < 0 && errno == ENOENT) {
		if (core_init(data, &err) < 0) {
			fprintf(stderr, "seglake mount: cannot create %s: %s\n", data, err.msg);
			return 1;
		}
		fprintf(stderr, "seglake mount: created an empty lake in %s\n", data);
	}
	core *c = NULL;
	if (core_open(data, NULL, &c, &err) < 0) {
		fprintf(stderr, "seglake mount: cannot open %s: %s\n", data, err.msg);
		return 1;
	}
	fs_mount *m = NULL;
	if (fs_mount_start(c, &fo, &m, &err) < 0) {
		fprintf(stderr, "seglake mount: cannot mount %s: %s\n", mnt, err.msg);
		core_close(c);
		return 1;
	}
	if (!foreground) {
		char ok = 0;
		if (write(ready[1], &ok, 1) < 0)
			fprintf(stderr, "seglake mount: cannot report readiness: %s\n",
				strerror(errno));
		close(ready[1]);
		int nul = open("/dev/null", O_RDWR);
		if (nul >= 0) {
			dup2(nul, 0);
			dup2(nul, 1);
			dup2(nul, 2);
			if (nul > 2)
				close(nul);
		}
	} else {
		printf("seglake: mounted %s at %s (pid %d)\n", data, mnt, (int)getpid());
		fflush(stdout);
	}

	for (unsigned n = 1;; n++) {
		struct timespec ts = { 0, 250 * 1000 * 1000 };
		int sig = sigtimedwait(&sigs, NULL, &ts);
		if (sig > 0)
			break;
		if (fs_mount_done(m))
			break;
		if (n % 4 == 0)
			core_tick(c); /* about once a second */
	}
	fs_mount_stop(m);
	core_close(c);
	return 0;
}
