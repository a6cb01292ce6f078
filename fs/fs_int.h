/*
 * fs_int.h - private types of the FUSE front end: the mount context, the
 * inode table, the shared open-file state (chunk write buffer) and the
 * helpers the request handlers in fs_ops.c use. Not a public API: only
 * the fs/ sources include it; other folders use fs/fs.h.
 */
#ifndef SL_FS_FS_INT_H
#define SL_FS_FS_INT_H

#define FUSE_USE_VERSION 312

#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/stat.h>

#include "common/dlist.h"
#include "core/core.h"
#include "fs/fs.h"

/* Entry and attribute cache seconds (negative entries too). Changes made
 * elsewhere (S3, replication) do not wait for this: the oplog follower
 * invalidates them at once. The long value needs kernels with expire-only
 * entry notifications (the follower can then expire every component of a
 * changed key's path); without them, only leaves are invalidated and the
 * short value bounds how long a new or removed directory can stay unseen. */
#define FS_TIMEOUT 10.0
#define FS_TIMEOUT_LONG 300.0
#define FS_MAX_DIRTY_PER_FILE 16	  /* dirty chunks held in memory per open file */
#define FS_BUF_MIN (16u << 10)		  /* first size of a dirty chunk buffer */
#define FS_MAX_DIRTY_TOTAL (256ull << 20) /* dirty bytes held in memory per mount */
#define FS_MAX_FILE_SIZE (1ull << 40)	  /* writes past 1 TiB get EFBIG */
#define FS_SELF_RING 1024		  /* remembered own changes (oplog echo filter) */
#define FS_SELF_MS 5000			  /* how long an own change is remembered */
#define FS_PAGE 1000			  /* readdir page (core_list max) */
#define FS_META_XATTR "x-amz-meta-xattr"  /* s3fs's xattr header */
#define FS_SPILL_PAGE 4096u		  /* granularity of spilled dirty pages */
#define FS_SPILL_DIR "fs-spill"		  /* spill files, under the data dir */

struct fs_data;

/* One kernel-visible inode: (bucket, path, is_dir). The fuse_ino_t given to
 * the kernel is the struct's address (as in libfuse's passthrough_ll), the
 * st_ino reported is a hash of the name (see fs_inode.c). Fields other than the immutable ones are
 * protected by fs_mount.ilock. */
typedef struct fs_inode {
	struct fs_inode *hnext;		/* chain in the path hash */
	struct fs_inode *anext, *aprev; /* every live inode but the root, hashed or not */
	uint64_t st_ino;
	char *bucket; /* NULL: the bucket-list root */
	char *path;   /* key path without trailing '/'; "" at a bucket's root */
	int is_dir;
	int hashed;	      /* reachable by path (0 once unlinked or replaced) */
	int moved;	      /* renamed: st_ino no longer the hash of path */
	uint64_t nlookup;     /* kernel references (lookup/create minus forget) */
	unsigned nopen;	      /* open file handles */
	uint64_t cache_hlc;   /* version whose bytes the kernel page cache may hold */
	struct fs_data *data; /* shared open-file state while nopen > 0 */
} fs_inode;

/* Snapshot of an inode's name, taken under the table lock. */
typedef struct fs_name {
	char *bucket; /* NULL at the bucket-list root */
	char *path;
	int is_dir;
	int hashed; /* still reachable by that name (not unlinked) */
} fs_name;

/* Shared state of an open regular file: the chunk list of the version being
 * edited, dirty chunks held in memory or, past the memory bound, as dirty
 * pages in a spill file over their stored chunk, and the metadata to commit
 * with it. A chunk is in one state at a time: stored (refs), buffered (bufs)
 * or spilled (ovl over refs). The spill is scratch, never committed data: it
 * is unlinked while open and folded into stored chunks on commit.
 * Invariant: bytes of a dirty buffer past the chunk's valid length (up to its
 * size, bcap) are zero. */
typedef struct fs_data {
	pthread_rwlock_t lock; /* read: reads; write: anything that changes state */
	core_chunkref *refs;   /* stored content of chunks without a buffer */
	uint8_t **bufs;	       /* dirty chunk buffers or NULL */
	uint32_t *bcap;	       /* their sizes: from FS_BUF_MIN, doubling to CORE_CHUNK_SIZE,
				* never below the chunk's valid length */
	uint64_t *ticks;       /* last write tick per dirty buffer (LRU) */
	core_chunk_job **jobs; /* a buffer being stored in the background, or NULL */
	uint64_t **ovl;	       /* pages of the chunk held in the spill file (bitmap), or NULL */
	size_t nchunks, cap;
	unsigned novl; /* chunks with an ovl bitmap */
	int spill_fd;  /* the file's spill (unlinked scratch file), -1 until needed */
	uint64_t wend; /* end of the last write (a write starting there streams) */
	uint64_t size;
	unsigned ndirty;
	uint64_t tick;
	char *meta;		/* JSON metadata of the version (malloc'd) */
	int dirty;		/* content or metadata changed since last commit */
	int mtime_set;		/* utimens after the last write: keep that mtime */
	uint64_t base_hlc;	/* HLC of the version last loaded or committed */
	char base_etag[72];	/* its etag */
	struct timespec wmtime; /* time of the last write (mtime until committed) */
	void *md5;		/* EVP_MD_CTX of bytes written sequentially from 0 */
	uint64_t md5_off;	/* bytes written sequentially so far */
	uint64_t md5_sub;	/* of those, handed to the digest thread (buffers it reads
				 * stay unchanged until digested) */
	uint64_t md5_done;	/* of those, digested (under fs_mount.mdlock) */
	int seq;		/* content so far written sequentially from empty */
	char etag_hint[72];	/* etag of a whole-file chunk share, valid while unmodified */
	_Atomic int pending;	/* created through this mount and not stored yet: no
				 * object has the name (see fs_pendingStore) */
} fs_data;

/* Directory handle: one page of a listing, addressed by entry index. */
typedef struct fs_dirent {
	char *name;
	int is_dir;	/* 0 file, 1 dir, 2 symlink, 3 unknown */
	int has_attr;	/* an object: st holds its attributes */
	struct stat st; /* from the listing's metadata (for readdirplus) */
} fs_dirent;

typedef struct fs_dirh {
	pthread_mutex_t lock;
	fs_name name;
	fs_dirent *ents;
	size_t n;
	uint64_t base; /* index of ents[0] among the directory's entries */
	int truncated; /* more pages after this one */
	char *marker;  /* core_list start_after for the next page */
	int loaded;
	struct fs_dirh *prev, *next; /* open directory handles of the mount (freed at
				      * stop if the session ends before the kernel
				      * releases them) */
} fs_dirh;

/* A change this mount made, so the oplog follower skips its echo. It
 * matches oplog entries in (seq0, until]: seq0 is the oplog head when noted,
 * until the head once the handler finished (fs_self_seal; until then the
 * note lives FS_SELF_MS). A single-key note skips one entry only. */
typedef struct fs_selfop {
	char *bucket;
	char *key;     /* "" for bucket-level changes */
	int is_prefix; /* every key under it (directory rename) */
	int64_t ms;    /* CLOCK_MONOTONIC ms when noted */
	int64_t seq0, until;
	pthread_t thr; /* the handler thread that noted it */
	int open;      /* not sealed yet */
} fs_selfop;

/* Open file handle (fi->fh). */
typedef struct fs_fh {
	fs_inode *ino;
	int flags;
	struct fs_fh *prev, *next; /* open handles of the mount (freed at stop if the
				    * session ends before the kernel releases them) */
} fs_fh;

struct fs_mount {
	core *c;
	struct fuse_session *se;
	char *mountpoint;
	char *bucket; /* single-bucket mount, or NULL */
	uid_t uid;    /* mount owner: defaults for objects without attributes */
	gid_t gid;
	struct stat rootst; /* the data dir: the mount root shows its owner and mode */
	char node[17];

	pthread_mutex_t ilock; /* inode table */
	fs_inode **htab;
	size_t hsize, hcount;
	fs_inode *all; /* list of live inodes (anext/aprev): freed at unmount */
	uint64_t next_ino;
	fs_inode root;
	fs_inode **moved; /* renamed inodes still alive (st_ino collision check) */
	size_t nmoved, capmoved;

	_Atomic uint64_t dirty_bytes; /* dirty buffers across open files */
	_Atomic unsigned npending;    /* open files with fs_data.pending set */
	char *spill_dir;	      /* DATA/fs-spill, NULL if unusable (no spilling) */

	/* the digest thread: MD5 (ETag) of sequentially written chunks, off the
	 * request threads; tasks run in order, so per file in stream order */
	pthread_mutex_t mdlock;
	pthread_cond_t mdcond;
	struct fs_md5task *mdhead, *mdtail;
	pthread_t md5_thr;
	int md5_init, md5_started, mdstop;

	pthread_mutex_t fhlock; /* the lists of open file and directory handles */
	struct fs_fh *fhs;
	struct fs_dirh *dhs;

	pthread_mutex_t slock; /* ring of keys this mount changed recently */
	fs_selfop self[FS_SELF_RING];
	unsigned self_pos;

	pthread_t loop_thr, notify_thr;
	int loop_started, notify_started;
	pthread_mutex_t dlock;
	pthread_cond_t dcond;
	int done; /* session loop ended */
	int debug;
	int expire_only;  /* kernel supports FUSE_EXPIRE_ONLY entry notifications */
	double timeout;	  /* entry/attr cache seconds: FS_TIMEOUT or FS_TIMEOUT_LONG */
	unsigned conn_id; /* /sys/fs/fuse/connections/N, 0 if unknown */
	_Atomic int stopping;
	int64_t oplog_seen;
};
typedef struct fs_mount fs_ctx;

/* ---- fs_inode.c ---- */
int fs_inode_table_init(fs_ctx *m);
void fs_inode_table_free(fs_ctx *m);
fs_inode *fs_inode_from(fs_ctx *m, fuse_ino_t ino);
fuse_ino_t fs_inode_id(fs_ctx *m, fs_inode *in);
/* Finds or creates (bucket, path, is_dir) and adds one lookup reference. */
fs_inode *fs_inode_ref(fs_ctx *m, const char *bucket, const char *path, int is_dir);
/* Finds a hashed inode without taking a reference; caller holds ilock. */
fs_inode *fs_inode_find_locked(fs_ctx *m, const char *bucket, const char *path, int is_dir);
void fs_inode_forget(fs_ctx *m, fs_inode *in, uint64_t n);
/* Copies the inode's name; 0 or -ENOMEM. */
int fs_inode_name(fs_ctx *m, fs_inode *in, fs_name *out);
void fs_name_clear(fs_name *n);
/* Drops (bucket, path, is_dir) from the path index (unlinked or replaced). */
void fs_inode_unhash(fs_ctx *m, const char *bucket, const char *path, int is_dir);
/* After a rename: moves inode(s) from src to dst, renaming a subtree for dirs. */
void fs_inode_rename(fs_ctx *m, const char *bucket, const char *src, const char *dst, int is_dir);
/* Counts an open and returns the inode's shared data: the existing one, or
 * fresh (then *took = 1: the inode now owns it). */
fs_data *fs_inode_open_data(fs_ctx *m, fs_inode *in, fs_data *fresh, int *took);
/* Counts a close; returns the data to free when it was the last (else NULL).
 * May free the inode. */
fs_data *fs_inode_close_data(fs_ctx *m, fs_inode *in);
/* Collects the hashed inodes whose open data is pending (created, not
 * stored): the one at path exactly (under 0), or every one below the
 * directory path (under 1; "" is the whole bucket). Each is returned with
 * its data held (release with fs_inode_close_data); *out is malloc'd.
 * Returns the count or -ENOMEM. */
long fs_inode_pending(fs_ctx *m, const char *bucket, const char *path, int under, fs_inode ***out);
/* Calls fn for every hashed inode with open data (shutdown flush). */
void fs_inode_each_data(fs_ctx *m, void (*fn)(fs_ctx *, fs_inode *, void *), void *arg);

/* ---- fs_attr.c ---- */
/* Fills st from object info (meta, size, mtime) or defaults. kind: 0 file, 1 dir. */
void fs_attr_from_info(fs_ctx *m, const core_objinfo *oi, int is_dir, struct stat *st);
void fs_attr_from_meta(fs_ctx *m, const char *meta, uint64_t size, int64_t mtime_ms, int is_dir,
		       struct stat *st);
void fs_attr_dir_default(fs_ctx *m, int64_t mtime_ms, struct stat *st);
/* Returns a new JSON text: meta with name set to value (value NULL removes). */
char *fs_meta_set(const char *meta, const char *name, const char *value);
/* New JSON text of POSIX attributes for a new object. */
char *fs_meta_new(mode_t mode, uid_t uid, gid_t gid);
/* Sets x-amz-meta-mtime/ctime (and atime) in meta; returns new text. */
char *fs_meta_set_time(const char *meta, const char *name, const struct timespec *ts);
/* xattrs in meta (s3fs format: urlencoded JSON name -> base64 value). */
int fs_xattr_get(const char *meta, const char *name, void *buf, size_t size, size_t *len);
int fs_xattr_list(const char *meta, char *buf, size_t size, size_t *len);
/* Returns 0 and *out (new meta text) or -errno. value NULL removes. */
int fs_xattr_set(const char *meta, const char *name, const void *value, size_t size, int flags,
		 char **out);

/* ---- fs_data.c ---- */
/* Per mount: creates the spill directory and removes files a crash left in
 * it (m->spill_dir stays NULL on failure: files then keep no spill), starts
 * the digest thread (without it, digests run on the request thread). */
void fs_data_init(fs_ctx *m);
/* After every fs_data of the mount is freed. Safe if init never ran. */
void fs_data_fini(fs_ctx *m);
int fs_data_new(fs_data **out);
void fs_data_free(fs_ctx *m, fs_data *d);
/* Loads the latest version's chunk list; -errno. hlc gets the version's HLC. */
int fs_data_load(fs_ctx *m, fs_data *d, const char *bucket, const char *key);
ssize_t fs_data_read(fs_ctx *m, fs_data *d, void *buf, size_t len, uint64_t off);
/* Caller holds the write lock for these. */
int fs_data_write(fs_ctx *m, fs_data *d, const void *buf, size_t len, uint64_t off);
int fs_data_truncate(fs_ctx *m, fs_data *d, uint64_t size);
/* Marks d created-but-not-stored (counted in m->npending) / clears that. */
void fs_data_pend(fs_ctx *m, fs_data *d);
void fs_data_unpend(fs_ctx *m, fs_data *d);
/* Commits a new version if dirty (or force); -errno. */
int fs_data_commit(fs_ctx *m, fs_data *d, const char *bucket, const char *key, int force);
/* copy_file_range: shares chunks where aligned; returns bytes copied or -errno.
 * Caller holds dst's write lock and src's read lock (or src == dst). */
ssize_t fs_data_copy(fs_ctx *m, fs_data *src, uint64_t off_in, fs_data *dst, uint64_t off_out,
		     size_t len);

/* ---- fs_ops.c ---- */
extern const struct fuse_lowlevel_ops fs_ops;
int fs_errno(int code);
/* Notes a change before making it; the follower skips matching entries. */
void fs_self_note(fs_ctx *m, const char *bucket, const char *key, int is_prefix);
/* Ends the notes this thread made in the current request: they then match
 * only entries committed so far. Call when a handler's core calls are done. */
void fs_self_seal(fs_ctx *m);
/* 1 if the entry (seq, bucket, key) of this node is the echo of a note. */
int fs_self_match(fs_ctx *m, int64_t seq, const char *bucket, const char *key);
void fs_self_free(fs_ctx *m);
/* Frees the directory handles the kernel never released (the session ended
 * first: a RELEASEDIR still queued when the mount stops). */
void fs_dirs_free(fs_ctx *m);

/* ---- fs_notify.c ---- */
void *fs_notify_main(void *arg);
/* Expires the kernel's dentries along bucket/key and invalidates the inode
 * it names (what the follower does for a change made elsewhere). */
void fs_notify_key(fs_ctx *m, const char *bucket, const char *key);

#endif
