/*
 * main.c - the seglake binary: dispatches subcommands. The local object
 * commands live in local.c, `serve` in serve.c (S3 daemon), `mount` in
 * mount.c (FUSE). Nothing here touches storage directly.
 */
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#if __has_include("cli/serve.h")
#include "cli/serve.h"
#define HAVE_SERVE 1
#endif
#if __has_include("cli/mount.h")
#include "cli/mount.h"
#define HAVE_MOUNT 1
#endif
#if __has_include("cli/repl.h")
#include "cli/repl.h"
#define HAVE_REPL 1
#endif
#if __has_include("cli/ops.h")
#include "cli/ops.h"
#define HAVE_OPS 1
#endif

static const char usage[] =
	"usage: seglake COMMAND [ARGS]\n"
	"\n"
	"Data dir commands (DIR from --data, $SEGLAKE_DATA, or ./data):\n"
	"  init DIR                          create an empty lake in DIR\n"
	"  serve --data DIR [--listen A:P] [--mount MNT]   run the S3 daemon (and a mount)\n"
	"  mount DIR MOUNTPOINT [--bucket B] mount the lake as a filesystem\n"
	"  rebuild-index [--data DIR]        rebuild meta.db from the segments alone\n"
	"  repl pull|push|bootstrap|status|conflicts|validate ...   replication (seglake repl "
	"help)\n"
	"\n"
	"Admin and ops commands (through the daemon's admin socket when one runs):\n"
	"  key create|list|show|enable|disable|rotate|delete|policy ...   access keys\n"
	"  status                            objects, bytes, segments, dead bytes, oplog, peers\n"
	"  fsck | scrub [--rate MB/s]        check metadata vs segments | re-hash every chunk\n"
	"  gc plan|run [--min-dead R] [--rate MB/s]   reclaim dead chunk space\n"
	"  mpu-gc [--older-than 7d]          abort abandoned multipart uploads\n"
	"  snapshot DEST | restore SNAP DEST online backup | new data dir from a snapshot\n"
	"  maintenance on|off|status         refuse writes (reads continue)\n"
	"\n"
	"Local object commands (work on a data dir no daemon holds):\n"
	"  bucket create NAME [--versioning enabled|unversioned|disabled]\n"
	"  bucket list\n"
	"  bucket delete NAME\n"
	"  put BUCKET/KEY [FILE|-] [--content-type T] [--meta NAME=VALUE]...\n"
	"  get BUCKET/KEY [FILE|-] [--version-id V]\n"
	"  stat BUCKET/KEY [--version-id V]\n"
	"  ls [BUCKET[/PREFIX]] [--recursive] [--versions]\n"
	"  rm BUCKET/KEY [--version-id V]\n"
	"  stats                             counts of buckets, objects, bytes, segments\n"
	"\n"
	"  version                           print the version\n"
	"  help                              this text\n";

int cli_fail(const char *cmd, const sl_err *err)
{
	fprintf(stderr, "seglake: %s: %s\n", cmd, err->msg[0] ? err->msg : sl_code_name(err->code));
	return 1;
}

void cli_block_signals(sigset_t *sigs)
{
	sigemptyset(sigs);
	sigaddset(sigs, SIGTERM);
	sigaddset(sigs, SIGINT);
	sigaddset(sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, sigs, NULL);
	signal(SIGPIPE, SIG_IGN);
}

const char *cli_data_dir(const char *flag)
{
	if (flag && *flag)
		return flag;
	const char *env = getenv("SEGLAKE_DATA");
	return env && *env ? env : "./data";
}

int main(int argc, char **argv)
{
	/* 4 MiB chunk buffers come and go with every request. glibc's default
	 * raises its mmap threshold after the first such free, and from then on
	 * serves them from per-thread arenas that keep the memory: with 32
	 * connection threads peak RSS grew by a third. A fixed threshold keeps
	 * large buffers in mmap, returned to the system when freed (the core
	 * keeps a few idle ones for reuse). */
#ifdef M_MMAP_THRESHOLD
	mallopt(M_MMAP_THRESHOLD, 1 << 20);
#endif
	if (argc < 2) {
		fputs(usage, stderr);
		return 2;
	}
	const char *cmd = argv[1];
	if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
		fputs(usage, stdout);
		return 0;
	}
	if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
		printf("seglake %s\n", SEGLAKE_VERSION);
		return 0;
	}
	if (!strcmp(cmd, "init")) {
		if (argc != 3) {
			fputs("usage: seglake init DIR\n", stderr);
			return 2;
		}
		sl_err err = { 0 };
		if (core_init(argv[2], &err) < 0)
			return cli_fail("init", &err);
		printf("initialised seglake data dir %s\n", argv[2]);
		return 0;
	}
#ifdef HAVE_SERVE
	if (!strcmp(cmd, "serve"))
		return cli_serve(argc - 1, argv + 1);
#endif
#ifdef HAVE_MOUNT
	if (!strcmp(cmd, "mount"))
		return cli_mount(argc - 1, argv + 1);
#endif
#ifdef HAVE_REPL
	if (!strcmp(cmd, "repl"))
		return cli_repl(argc - 1, argv + 1);
#endif
#ifdef HAVE_OPS
	static const char *ops_cmds[] = { "key",    "status",	"fsck",	   "scrub",	  "gc",
					  "mpu-gc", "snapshot", "restore", "maintenance", NULL };
	for (int i = 0; ops_cmds[i]; i++)
		if (!strcmp(cmd, ops_cmds[i]))
			return cli_ops(cmd, argc - 1, argv + 1);
#endif
	static const char *local[] = { "bucket", "put",		  "get",   "stat", "ls",
				       "rm",	 "rebuild-index", "stats", NULL };
	for (int i = 0; local[i]; i++)
		if (!strcmp(cmd, local[i]))
			return cli_local(cmd, argc - 1, argv + 1);
	fprintf(stderr, "seglake: unknown command '%s' (try 'seglake help')\n", cmd);
	return 2;
}
