/*
 * fs.h - the FUSE front end: presents a core (buckets, keys) as a filesystem.
 * It translates FUSE low-level requests into core_* calls; it holds no
 * storage logic. One fs_mount runs its own session threads, so the same
 * process can also serve S3.
 */
#ifndef SL_FS_FS_H
#define SL_FS_FS_H

#include <sys/types.h>

#include "common/err.h"
#include "core/core.h"

typedef struct fs_opts {
	const char *mountpoint;
	const char *bucket; /* NULL: root lists buckets; else mount one bucket at the root */
	int allow_other;    /* off unless asked for */
	int debug;	    /* FUSE debug output */
} fs_opts;

typedef struct fs_mount fs_mount;

/* Mounts and starts serving in background threads. */
int fs_mount_start(core *c, const fs_opts *o, fs_mount **out, sl_err *err);
/* Blocks until the filesystem is unmounted from outside (fusermount3 -u). */
void fs_mount_wait(fs_mount *m);
/* Returns 1 once the session has ended (unmounted from outside). */
int fs_mount_done(fs_mount *m);
/* Unmounts (if still mounted), stops the threads and frees m. */
void fs_mount_stop(fs_mount *m);

#endif
