/*
 * fs_ops.c - the FUSE low-level request handlers. Each handler snapshots the
 * inode's name, makes the core calls the request needs and replies; object
 * data of open files goes through fs_data.c, attribute encoding through
 * fs_attr.c. Not here: session setup (fs.c), oplog following (fs_notify.c).
 *
 * Namespace rules (see fs/README.md): a name that is both an object and a
 * prefix is shown as the directory; keys with empty, "." or ".." components
 * or components over 255 bytes are not shown; directories are prefixes or
 * "dir/" marker objects; a directory emptied through the mount keeps a marker.
 */
#include "fs/fs_int.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#define EMPTY_MD5 "d41d8cd98f00b204e9800998ecf8427e"
#define ROOT_CONFIG "fs-root" /* bucket config holding a bucket root's attributes */

int fs_errno(int code)
{
	return code < 0 ? sl_code_errno(code) : 0;
}

static int64_t fs_nowMs(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void fs_self_note(fs_ctx *m, const char *bucket, const char *key, int is_prefix)
{
	char *b = strdup(bucket ? bucket : ""), *k = strdup(key ? key : "");
	if (!b || !k) {
		free(b);
		free(k);
		return; /* worst case: one needless invalidation */
	}
	int64_t head = core_oplog_head(m->c);
	pthread_mutex_lock(&m->slock);
	fs_selfop *o = &m->self[m->self_pos++ % FS_SELF_RING];
	free(o->bucket);
	free(o->key);
	o->bucket = b;
	o->key = k;
	o->is_prefix = is_prefix;
	o->ms = fs_nowMs();
	o->seq0 = head;
	o->until = INT64_MAX;
	o->thr = pthread_self();
	o->open = 1;
	pthread_mutex_unlock(&m->slock);
}

void fs_self_seal(fs_ctx *m)
{
	int64_t head = core_oplog_head(m->c);
	pthread_t me = pthread_self();
	pthread_mutex_lock(&m->slock);
	for (unsigned i = 0; i < FS_SELF_RING; i++) {
		fs_selfop *o = &m->self[i];
		if (o->key && o->open && pthread_equal(o->thr, me)) {
			o->open = 0;
			o->until = head;
		}
	}
	pthread_mutex_unlock(&m->slock);
}

int fs_self_match(fs_ctx *m, int64_t seq, const char *bucket, const char *key)
{
	int found = 0;
	int64_t now = fs_nowMs();
	if (!key)
		key = "";
	pthread_mutex_lock(&m->slock);
	for (unsigned i = 0; i < FS_SELF_RING && !found; i++) {
		fs_selfop *o = &m->self[i];
		if (!o->key || seq <= o->seq0 || seq > o->until ||
		    (o->open && now - o->ms > FS_SELF_MS) || strcmp(o->bucket, bucket) != 0)
			continue;
		found = o->is_prefix ? strncmp(key, o->key, strlen(o->key)) == 0
				     : strcmp(key, o->key) == 0;
		/* a single-key note stands for one change: once its echo is
		 * skipped, a later change of the key (through S3 in the same
		 * process) must invalidate */
		if (found && !o->is_prefix)
			o->until = INT64_MIN;
	}
	pthread_mutex_unlock(&m->slock);
	return found;
}

void fs_self_free(fs_ctx *m)
{
	for (unsigned i = 0; i < FS_SELF_RING; i++) {
		free(m->self[i].bucket);
		free(m->self[i].key);
		m->self[i].bucket = m->self[i].key = NULL;
	}
}

static fs_ctx *fs_ctxOf(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

/* "dir/name", or "name" at a bucket root. NULL on ENOMEM. */
static char *fs_child(const char *dir, const char *name)
{
	size_t dl = strlen(dir), nl = strlen(name);
	char *p = malloc(dl + nl + 2);
	if (!p)
		return NULL;
	if (dl) {
		memcpy(p, dir, dl);
		p[dl++] = '/';
	}
	memcpy(p + dl, name, nl + 1);
	return p;
}

/* "path/" (the marker key / listing prefix of a directory; "" at a bucket root). */
static char *fs_dirKey(const char *path)
{
	if (!*path)
		return strdup("");
	size_t l = strlen(path);
	char *p = malloc(l + 2);
	if (p) {
		memcpy(p, path, l);
		p[l] = '/';
		p[l + 1] = '\0';
	}
	return p;
}

/* A name component that a key may map to. */
static int fs_nameShowable(const char *s, size_t len)
{
	if (len == 0 || len > 255)
		return 0;
	if ((len == 1 && s[0] == '.') || (len == 2 && s[0] == '.' && s[1] == '.'))
		return 0;
	return memchr(s, '/', len) == NULL;
}

/* Names longer than NAME_MAX: the kernel lets FUSE names reach 1024 bytes. */
static int fs_nameTooLong(const char *name)
{
	return strlen(name) > 255;
}

/* Directory existence: 1 with *marker filled if a "path/" object exists,
 * 1 for a prefix without marker, 0 if neither, or -errno. */
static int fs_dirProbe(fs_ctx *m, const char *bucket, const char *path, core_objinfo *marker,
		       int *has_marker)
{
	*has_marker = 0;
	core_name_info ni;
	sl_err err;
	int r = core_name_stat(m->c, bucket, path, CORE_NAME_DIR, &ni, &err);
	if (r < 0)
		return -fs_errno(r);
	if (ni.has_marker && marker) {
		core_objinfo_clear(marker);
		*marker = ni.marker; /* moved out of ni */
		memset(&ni.marker, 0, sizeof(ni.marker));
		*has_marker = 1;
	}
	int found = ni.is_dir;
	core_name_info_clear(&ni);
	return found;
}

/* Attributes of a directory inode. */
static int fs_dirStat(fs_ctx *m, const char *bucket, const char *path, struct stat *st)
{
	if (!bucket) {
		fs_attr_dir_default(m, 0, st);
		st->st_mode = S_IFDIR | (m->rootst.st_mode & 07777);
		st->st_uid = m->rootst.st_uid;
		st->st_gid = m->rootst.st_gid;
		st->st_mtim = m->rootst.st_mtim;
		st->st_ctim = m->rootst.st_ctim;
		st->st_atim = m->rootst.st_atim;
		return 0;
	}
	sl_err err;
	if (!*path) {
		if (m->bucket && strcmp(bucket, m->bucket) == 0) {
			/* single-bucket mount: the root shows the data dir's owner/mode */
			fs_dirStat(m, NULL, "", st);
		} else {
			core_bucket b;
			int r = core_bucket_get(m->c, bucket, &b, &err);
			if (r < 0)
				return -fs_errno(r);
			fs_attr_dir_default(m, b.created_ms, st);
		}
		char *cfg = NULL;
		if (!m->bucket &&
		    core_bucket_config_get(m->c, bucket, ROOT_CONFIG, &cfg, &err) == 0) {
			int64_t ms = st->st_mtim.tv_sec * 1000 + st->st_mtim.tv_nsec / 1000000;
			fs_attr_from_meta(m, cfg, 0, ms, 1, st);
		}
		free(cfg);
		return 0;
	}
	core_objinfo mk = { 0 };
	int has;
	int r = fs_dirProbe(m, bucket, path, &mk, &has);
	if (r <= 0) {
		core_objinfo_clear(&mk);
		return r < 0 ? r : -ENOENT;
	}
	if (has)
		fs_attr_from_info(m, &mk, 1, st);
	else
		fs_attr_dir_default(m, (int64_t)m->rootst.st_mtim.tv_sec * 1000, st);
	core_objinfo_clear(&mk);
	return 0;
}

static void fs_dataStat(fs_ctx *m, fs_data *d, struct stat *st)
{
	pthread_rwlock_rdlock(&d->lock);
	fs_attr_from_meta(m, d->meta, d->size, 0, 0, st);
	if (d->dirty && !d->mtime_set)
		st->st_mtim = st->st_ctim = d->wmtime;
	pthread_rwlock_unlock(&d->lock);
}

/* Attributes of an inode; 0 or -errno. */
static int fs_stat(fs_ctx *m, fs_inode *in, struct stat *st)
{
	fs_name n;
	if (fs_inode_name(m, in, &n) < 0)
		return -ENOMEM;
	int r = 0;
	if (n.is_dir) {
		r = fs_dirStat(m, n.bucket, n.path, st);
	} else {
		fs_data *d = NULL;
		pthread_mutex_lock(&m->ilock);
		d = in->data;
		if (d)
			in->nopen++; /* hold the data while reading it */
		pthread_mutex_unlock(&m->ilock);
		if (d) {
			fs_dataStat(m, d, st);
			fs_data *gone = fs_inode_close_data(m, in);
			fs_data_free(m, gone); /* NULL unless the last open closed meanwhile */
		} else {
			core_objinfo oi = { 0 };
			sl_err err;
			r = core_head(m->c, n.bucket, n.path, NULL, &oi, &err);
			if (r == 0)
				fs_attr_from_info(m, &oi, 0, st);
			else
				r = -fs_errno(r);
			core_objinfo_clear(&oi);
		}
	}
	fs_name_clear(&n);
	if (r == 0)
		st->st_ino = (ino_t)in->st_ino;
	return r;
}

static void fs_replyEntry(fuse_req_t req, fs_ctx *m, fs_inode *in, struct stat *st)
{
	struct fuse_entry_param e;
	memset(&e, 0, sizeof(e));
	e.ino = fs_inode_id(m, in);
	e.attr = *st;
	e.attr.st_ino = (ino_t)in->st_ino;
	e.attr_timeout = m->timeout;
	e.entry_timeout = m->timeout;
	if (fuse_reply_entry(req, &e) != 0)
		fs_inode_forget(m, in, 1);
}

static void fs_replyNegative(fuse_req_t req, fs_ctx *m)
{
	struct fuse_entry_param e;
	memset(&e, 0, sizeof(e));
	e.entry_timeout = m->timeout;
	fuse_reply_entry(req, &e);
}

/* Resolves parent+name: 1 dir, 0 file (st filled), -errno. Directory wins. */
static int fs_resolve(fs_ctx *m, const fs_name *pn, const char *name, char **path_out,
		      struct stat *st)
{
	*path_out = NULL;
	if (fs_nameTooLong(name))
		return -ENAMETOOLONG;
	if (!fs_nameShowable(name, strlen(name)))
		return -ENOENT;
	if (!pn->bucket) {
		if (m->bucket)
			return -ENOENT;
		core_bucket b;
		sl_err err;
		if (!core_bucket_name_valid(name) || core_bucket_get(m->c, name, &b, &err) < 0)
			return -ENOENT;
		*path_out = strdup(name);
		if (!*path_out)
			return -ENOMEM;
		return fs_dirStat(m, name, "", st) == 0 ? 1 : -ENOENT;
	}
	char *path = fs_child(pn->path, name);
	if (!path)
		return -ENOMEM;
	if (strlen(path) + 1 >= CORE_MAX_KEY) {
		free(path);
		return -ENAMETOOLONG;
	}
	*path_out = path;
	core_name_info ni;
	sl_err err;
	int r = core_name_stat(m->c, pn->bucket, path, CORE_NAME_FILE | CORE_NAME_DIR, &ni, &err);
	if (r < 0) {
		r = r == SL_ENOBUCKET ? -ENOENT : -fs_errno(r);
	} else if (ni.is_dir) {
		if (ni.has_marker)
			fs_attr_from_info(m, &ni.marker, 1, st);
		else
			fs_attr_dir_default(m,
					    ni.is_file ? ni.file.mtime_ms
						       : (int64_t)m->rootst.st_mtim.tv_sec * 1000,
					    st);
		r = 1;
	} else if (ni.is_file) {
		fs_attr_from_info(m, &ni.file, 0, st);
		r = 0;
	} else {
		r = -ENOENT;
	}
	core_name_info_clear(&ni);
	return r;
}

/* ---- lookup / forget / getattr ------------------------------------------- */

/* The name of directory inode `parent`; on failure replies ENOMEM to req. */
static int fs_parentName(fuse_req_t req, fs_ctx *m, fuse_ino_t parent, fs_name *pn)
{
	if (fs_inode_name(m, fs_inode_from(m, parent), pn) < 0) {
		fuse_reply_err(req, ENOMEM);
		return -1;
	}
	return 0;
}

/* An open file this mount created and has not stored yet, at bucket/path:
 * returned with one lookup reference, or NULL. */
static fs_inode *fs_pendingRef(fs_ctx *m, const char *bucket, const char *path)
{
	if (!bucket || !atomic_load(&m->npending))
		return NULL;
	fs_inode **ins;
	long n = fs_inode_pending(m, bucket, path, 0, &ins);
	fs_inode *in = NULL;
	if (n > 0)
		in = fs_inode_ref(m, bucket, path, 0); /* the same, hashed inode */
	for (long i = 0; i < n; i++)
		fs_data_free(m, fs_inode_close_data(m, ins[i]));
	if (n > 0)
		free(ins);
	return in;
}

static void fs_opLookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	fs_ctx *m = fs_ctxOf(req);
	fs_name pn;
	if (fs_parentName(req, m, parent, &pn) < 0)
		return;
	char *path;
	struct stat st;
	int r = fs_resolve(m, &pn, name, &path, &st);
	fs_inode *pin = r == -ENOENT && path ? fs_pendingRef(m, pn.bucket, path) : NULL;
	if (pin) {
		if ((r = fs_stat(m, pin, &st)) < 0) {
			fs_inode_forget(m, pin, 1);
			fuse_reply_err(req, -r);
		} else {
			fs_replyEntry(req, m, pin, &st);
		}
	} else if (r == -ENOENT) {
		fs_replyNegative(req, m);
	} else if (r < 0) {
		fuse_reply_err(req, -r);
	} else {
		const char *b = pn.bucket ? pn.bucket : path;
		const char *p = pn.bucket ? path : "";
		fs_inode *in = fs_inode_ref(m, b, p, r);
		if (!in) {
			fuse_reply_err(req, ENOMEM);
		} else {
			if (r == 0 && in->data)
				fs_stat(m, in, &st); /* open file: buffered size and times */
			fs_replyEntry(req, m, in, &st);
		}
	}
	free(path);
	fs_name_clear(&pn);
}

static void fs_opForget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	fs_ctx *m = fs_ctxOf(req);
	fs_inode_forget(m, fs_inode_from(m, ino), nlookup);
	fuse_reply_none(req);
}

static void fs_opForgetMulti(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	fs_ctx *m = fs_ctxOf(req);
	for (size_t i = 0; i < count; i++)
		fs_inode_forget(m, fs_inode_from(m, forgets[i].ino), forgets[i].nlookup);
	fuse_reply_none(req);
}

static void fs_opGetattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)fi;
	fs_ctx *m = fs_ctxOf(req);
	struct stat st;
	int r = fs_stat(m, fs_inode_from(m, ino), &st);
	if (r < 0)
		fuse_reply_err(req, -r);
	else
		fuse_reply_attr(req, &st, m->timeout);
}

/* ---- metadata updates ------------------------------------------------------ */

typedef int (*fs_metaFn)(const char *meta, void *arg, char **out);

/* Applies fn to the stored metadata of inode in (file, marker, or bucket root). */
static int fs_metaUpdate(fs_ctx *m, fs_inode *in, fs_metaFn fn, void *arg, int explicit_mtime)
{
	fs_name n;
	if (fs_inode_name(m, in, &n) < 0)
		return -ENOMEM;
	sl_err err;
	int r;
	char *nm = NULL;
	if (!n.bucket || (!*n.path && m->bucket)) {
		r = -EPERM; /* the mount root shows the data dir; change that instead */
	} else if (!*n.path) {
		char *cfg = NULL;
		r = core_bucket_config_get(m->c, n.bucket, ROOT_CONFIG, &cfg, &err);
		if (r == 0 || r == SL_ENOKEY) {
			r = fn(cfg ? cfg : "{}", arg, &nm);
			if (r == 0) {
				fs_self_note(m, n.bucket, NULL, 0);
				r = -fs_errno(core_bucket_config_set(m->c, n.bucket, ROOT_CONFIG,
								     nm, &err));
			}
		} else {
			r = -fs_errno(r);
		}
		free(cfg);
	} else if (n.is_dir) {
		char *dk = fs_dirKey(n.path);
		core_objinfo oi = { 0 };
		r = dk ? core_head(m->c, n.bucket, dk, NULL, &oi, &err) : SL_ENOMEM;
		if (r == 0) {
			r = fn(oi.meta ? oi.meta : "{}", arg, &nm);
			core_objinfo_clear(&oi);
			if (r == 0) {
				fs_self_note(m, n.bucket, dk, 0);
				r = -fs_errno(
					core_set_meta(m->c, n.bucket, dk, nm, NULL, &oi, &err));
			}
		} else if (r == SL_ENOKEY) {
			/* implicit directory: write a marker carrying the attributes */
			char *def = fs_meta_new(S_IFDIR | 0755, m->uid, m->gid);
			r = def ? fn(def, arg, &nm) : -ENOMEM;
			free(def);
			if (r == 0) {
				core_put_opts po = { 0 };
				po.meta = nm;
				po.kind = "mkdir";
				fs_self_note(m, n.bucket, dk, 0);
				r = -fs_errno(core_put_chunks(m->c, n.bucket, dk, NULL, 0,
							      EMPTY_MD5, &po, &oi, &err));
			}
		} else {
			r = -fs_errno(r);
		}
		core_objinfo_clear(&oi);
		free(dk);
	} else {
		fs_data *d = NULL;
		pthread_mutex_lock(&m->ilock);
		d = in->data;
		if (d)
			in->nopen++;
		pthread_mutex_unlock(&m->ilock);
		if (d) {
			pthread_rwlock_wrlock(&d->lock);
			r = fn(d->meta, arg, &nm);
			if (r == 0) {
				free(d->meta);
				d->meta = nm;
				nm = NULL;
				if (explicit_mtime)
					d->mtime_set = 1;
				if (!n.hashed) {
					r = 0; /* unlinked: nothing stored to change */
				} else if (d->dirty) {
					r = 0; /* committed with the content (flush/fsync/close):
						* tar's futimens+fchown+fchmod before close cost
						* no commit of their own */
				} else {
					core_objinfo oi = { 0 };
					fs_self_note(m, n.bucket, n.path, 0);
					r = -fs_errno(core_set_meta(m->c, n.bucket, n.path, d->meta,
								    NULL, &oi, &err));
					if (r == 0) {
						d->base_hlc = oi.hlc;
						in->cache_hlc = oi.hlc;
					}
					core_objinfo_clear(&oi);
				}
			}
			pthread_rwlock_unlock(&d->lock);
			fs_data_free(m, fs_inode_close_data(m, in));
		} else {
			core_objinfo oi = { 0 };
			r = core_head(m->c, n.bucket, n.path, NULL, &oi, &err);
			if (r == 0) {
				r = fn(oi.meta ? oi.meta : "{}", arg, &nm);
				core_objinfo_clear(&oi);
				if (r == 0) {
					fs_self_note(m, n.bucket, n.path, 0);
					r = -fs_errno(core_set_meta(m->c, n.bucket, n.path, nm,
								    NULL, &oi, &err));
				}
			} else {
				r = -fs_errno(r);
			}
			core_objinfo_clear(&oi);
		}
	}
	free(nm);
	fs_name_clear(&n);
	fs_self_seal(m);
	return r;
}

typedef struct fs_attrChange {
	int to_set;
	struct stat want;
	mode_t type; /* current S_IFMT of the inode */
} fs_attrChange;

static int fs_metaAttrFn(const char *meta, void *arg, char **out)
{
	fs_attrChange *ch = arg;
	char buf[32];
	char *cur = strdup(meta), *next;
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	if (cur && (ch->to_set & FUSE_SET_ATTR_MODE)) {
		snprintf(buf, sizeof(buf), "%u", (unsigned)(ch->type | (ch->want.st_mode & 07777)));
		next = fs_meta_set(cur, "x-amz-meta-mode", buf);
		free(cur);
		cur = next;
	}
	if (cur && (ch->to_set & FUSE_SET_ATTR_UID)) {
		snprintf(buf, sizeof(buf), "%u", (unsigned)ch->want.st_uid);
		next = fs_meta_set(cur, "x-amz-meta-uid", buf);
		free(cur);
		cur = next;
	}
	if (cur && (ch->to_set & FUSE_SET_ATTR_GID)) {
		snprintf(buf, sizeof(buf), "%u", (unsigned)ch->want.st_gid);
		next = fs_meta_set(cur, "x-amz-meta-gid", buf);
		free(cur);
		cur = next;
	}
	if (cur && (ch->to_set & (FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_MTIME_NOW))) {
		struct timespec t = (ch->to_set & FUSE_SET_ATTR_MTIME_NOW) ? now : ch->want.st_mtim;
		next = fs_meta_set_time(cur, "x-amz-meta-mtime", &t);
		free(cur);
		cur = next;
	}
	if (cur && (ch->to_set & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_ATIME_NOW))) {
		struct timespec t = (ch->to_set & FUSE_SET_ATTR_ATIME_NOW) ? now : ch->want.st_atim;
		next = fs_meta_set_time(cur, "x-amz-meta-atime", &t);
		free(cur);
		cur = next;
	}
	if (cur) {
		next = fs_meta_set_time(cur, "x-amz-meta-ctime", &now);
		free(cur);
		cur = next;
	}
	*out = cur;
	return cur ? 0 : -ENOMEM;
}

/* Opens the shared data of a file inode for a path operation (truncate). */
static int fs_dataAcquire(fs_ctx *m, fs_inode *in, const fs_name *n, fs_data **out)
{
	fs_data *fresh = NULL;
	int took;
	fs_data *d = fs_inode_open_data(m, in, NULL, &took);
	if (d) {
		*out = d;
		return 0;
	}
	int r = fs_data_new(&fresh);
	if (r < 0)
		return r;
	r = fs_data_load(m, fresh, n->bucket, n->path);
	if (r < 0) {
		fs_data_free(m, fresh);
		return r;
	}
	d = fs_inode_open_data(m, in, fresh, &took);
	if (!took)
		fs_data_free(m, fresh);
	else
		in->cache_hlc = 0;
	*out = d;
	return 0;
}

static void fs_dataRelease(fs_ctx *m, fs_inode *in)
{
	fs_data_free(m, fs_inode_close_data(m, in));
}

/* ---- files created and not stored yet ---------------------------------------
 * create(2) stores nothing: the new file is committed once, with its content,
 * on flush/fsync/close. Until then the mount alone knows the name (lookup
 * finds it through the inode table). Operations that need the name in the
 * core first store it as an empty object, as create did before: a listing of
 * its directory, rmdir of a directory holding it, rename of it or of a
 * directory holding it (and over it). An unlink of it stores nothing. */

/* Stores one pending file (its data held by the caller) as an empty object. */
static int fs_pendingStoreOne(fs_ctx *m, fs_inode *in)
{
	fs_data *d = in->data;
	fs_name n;
	if (fs_inode_name(m, in, &n) < 0)
		return -ENOMEM;
	int r = 0;
	pthread_rwlock_wrlock(&d->lock);
	if (atomic_load(&d->pending) && n.hashed) {
		core_put_opts po = { 0 };
		po.meta = d->meta;
		po.cond.if_none_match = "*";
		core_objinfo oi = { 0 };
		sl_err err;
		fs_self_note(m, n.bucket, n.path, 0);
		r = core_put_chunks(m->c, n.bucket, n.path, NULL, 0, EMPTY_MD5, &po, &oi, &err);
		core_objinfo_clear(&oi);
		if (r == 0 || r == SL_EPRECOND || r == SL_EEXIST) {
			fs_data_unpend(m, d); /* the name is in the core now */
			r = 0;
		} else {
			r = -fs_errno(r);
		}
	}
	pthread_rwlock_unlock(&d->lock);
	fs_name_clear(&n);
	return r;
}

/* Stores the pending file at bucket/path (under 0) or every one below the
 * directory path (under 1). 0 or the first -errno. */
static int fs_pendingStore(fs_ctx *m, const char *bucket, const char *path, int under)
{
	if (!bucket || !atomic_load(&m->npending))
		return 0;
	fs_inode **ins;
	long n = fs_inode_pending(m, bucket, path, under, &ins);
	if (n < 0)
		return (int)n;
	int r = 0;
	for (long i = 0; i < n; i++) {
		int ri = fs_pendingStoreOne(m, ins[i]);
		if (ri < 0 && r == 0)
			r = ri;
		fs_dataRelease(m, ins[i]);
	}
	if (n > 0) {
		free(ins);
		fs_self_seal(m);
	}
	return r;
}

/* unlink of a pending file: forgets it (nothing stored to delete). Returns
 * how many there were (0: none). */
static long fs_pendingDrop(fs_ctx *m, const char *bucket, const char *path)
{
	if (!atomic_load(&m->npending))
		return 0;
	fs_inode **ins;
	long n = fs_inode_pending(m, bucket, path, 0, &ins);
	for (long i = 0; i < n; i++) {
		fs_data_unpend(m, ins[i]->data);
		fs_dataRelease(m, ins[i]);
	}
	if (n > 0)
		free(ins);
	return n < 0 ? 0 : n;
}

static void fs_opSetattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
			 struct fuse_file_info *fi)
{
	fs_ctx *m = fs_ctxOf(req);
	fs_inode *in = fs_inode_from(m, ino);
	struct stat st;
	int r = fs_stat(m, in, &st);
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	if (to_set & FUSE_SET_ATTR_SIZE) {
		if (in->is_dir) {
			fuse_reply_err(req, EISDIR);
			return;
		}
		if (S_ISLNK(st.st_mode)) {
			fuse_reply_err(req, EINVAL);
			return;
		}
		fs_name n;
		if (fs_inode_name(m, in, &n) < 0) {
			fuse_reply_err(req, ENOMEM);
			return;
		}
		fs_data *d;
		r = fs_dataAcquire(m, in, &n, &d);
		if (r == 0) {
			pthread_rwlock_wrlock(&d->lock);
			r = fs_data_truncate(m, d, (uint64_t)attr->st_size);
			/* truncate(2) by path is visible at once; ftruncate at close */
			if (r == 0 && !fi && n.hashed)
				r = fs_data_commit(m, d, n.bucket, n.path, 0);
			pthread_rwlock_unlock(&d->lock);
			fs_dataRelease(m, in);
		}
		fs_name_clear(&n);
		if (r < 0) {
			fuse_reply_err(req, -r);
			return;
		}
	}
	int meta_bits = FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID |
			FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME_NOW |
			FUSE_SET_ATTR_ATIME_NOW;
	if (to_set & meta_bits) {
		fs_attrChange ch = { .to_set = to_set, .want = *attr, .type = st.st_mode & S_IFMT };
		if ((to_set & FUSE_SET_ATTR_UID) && attr->st_uid == (uid_t)-1)
			ch.to_set &= ~FUSE_SET_ATTR_UID;
		if ((to_set & FUSE_SET_ATTR_GID) && attr->st_gid == (gid_t)-1)
			ch.to_set &= ~FUSE_SET_ATTR_GID;
		r = fs_metaUpdate(m, in, fs_metaAttrFn, &ch,
				  (to_set & (FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_MTIME_NOW)) != 0);
		if (r < 0) {
			fuse_reply_err(req, -r);
			return;
		}
	}
	fs_self_seal(m);
	r = fs_stat(m, in, &st);
	if (r < 0)
		fuse_reply_err(req, -r);
	else
		fuse_reply_attr(req, &st, m->timeout);
}

/* ---- directories ----------------------------------------------------------- */

/* After a removal from dir path: keep the directory if nothing else holds it. */
static void fs_keepDir(fs_ctx *m, const char *bucket, const char *path)
{
	if (!bucket || !*path)
		return;
	int has;
	int r = fs_dirProbe(m, bucket, path, NULL, &has);
	if (r != 0)
		return;
	char *dk = fs_dirKey(path);
	char *meta = fs_meta_new(S_IFDIR | 0755, m->uid, m->gid);
	if (dk && meta) {
		core_put_opts po = { 0 };
		po.meta = meta;
		po.kind = "mkdir";
		po.cond.if_none_match = "*";
		core_objinfo oi = { 0 };
		sl_err err;
		fs_self_note(m, bucket, dk, 0);
		core_put_chunks(m->c, bucket, dk, NULL, 0, EMPTY_MD5, &po, &oi, &err);
		core_objinfo_clear(&oi);
	}
	free(dk);
	free(meta);
	fs_self_seal(m);
}

static void fs_opMkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	fs_ctx *m = fs_ctxOf(req);
	const struct fuse_ctx *fc = fuse_req_ctx(req);
	fs_name pn;
	if (fs_parentName(req, m, parent, &pn) < 0)
		return;
	sl_err err;
	int r;
	char *meta = fs_meta_new(S_IFDIR | (mode & 07777), fc->uid, fc->gid);
	struct stat st;
	fs_inode *in = NULL;
	if (!meta) {
		r = -ENOMEM;
	} else if (fs_nameTooLong(name)) {
		r = -ENAMETOOLONG;
	} else if (!pn.bucket) {
		if (!core_bucket_name_valid(name)) {
			r = -EINVAL;
		} else {
			fs_self_note(m, name, NULL, 0);
			r = -fs_errno(core_bucket_create(m->c, name, CORE_VERS_UNVERSIONED, &err));
			if (r == 0)
				core_bucket_config_set(m->c, name, ROOT_CONFIG, meta, &err);
			if (r == 0 && (r = fs_dirStat(m, name, "", &st)) == 0)
				in = fs_inode_ref(m, name, "", 1);
		}
	} else {
		char *path = fs_child(pn.path, name);
		char *dk = path ? fs_dirKey(path) : NULL;
		if (!dk) {
			r = -ENOMEM;
		} else if (strlen(dk) >= CORE_MAX_KEY) {
			r = -ENAMETOOLONG;
		} else {
			core_objinfo oi = { 0 };
			sl_err e2;
			if (core_head(m->c, pn.bucket, path, NULL, &oi, &e2) == 0) {
				r = -EEXIST;
			} else {
				core_put_opts po = { 0 };
				po.meta = meta;
				po.kind = "mkdir";
				po.cond.if_none_match = "*";
				fs_self_note(m, pn.bucket, dk, 0);
				r = core_put_chunks(m->c, pn.bucket, dk, NULL, 0, EMPTY_MD5, &po,
						    &oi, &err);
				if (r == SL_EPRECOND || r == SL_EEXIST)
					r = -EEXIST;
				else
					r = -fs_errno(r);
				if (r == 0) {
					fs_attr_from_info(m, &oi, 1, &st);
					in = fs_inode_ref(m, pn.bucket, path, 1);
				}
			}
			core_objinfo_clear(&oi);
		}
		free(path);
		free(dk);
	}
	if (r == 0 && !in)
		r = -ENOMEM;
	fs_self_seal(m);
	if (r < 0)
		fuse_reply_err(req, -r);
	else
		fs_replyEntry(req, m, in, &st);
	free(meta);
	fs_name_clear(&pn);
}

static void fs_opRmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	fs_ctx *m = fs_ctxOf(req);
	fs_name pn;
	if (fs_parentName(req, m, parent, &pn) < 0)
		return;
	sl_err err;
	int r;
	if (!pn.bucket) {
		r = fs_pendingStore(m, name, "", 1); /* so the bucket is not empty */
		fs_self_note(m, name, NULL, 0);
		if (r == 0)
			r = core_bucket_delete(m->c, name, &err);
		r = r == SL_ENOTEMPTY ? -ENOTEMPTY : -fs_errno(r);
		if (r == 0)
			fs_inode_unhash(m, name, "", 1);
	} else {
		char *path = fs_child(pn.path, name);
		char *dk = path ? fs_dirKey(path) : NULL;
		if (!dk) {
			r = -ENOMEM;
		} else if ((r = fs_pendingStore(m, pn.bucket, path, 1)) < 0) {
			/* a file open below could not be stored */
		} else {
			core_list_opts lo = { 0 };
			lo.prefix = dk;
			lo.max_keys = 2;
			core_list_result res = { 0 };
			r = core_list(m->c, pn.bucket, &lo, &res, &err);
			if (r < 0) {
				r = -fs_errno(r);
			} else if (res.nobjs == 0 && res.nprefixes == 0) {
				r = -ENOENT;
			} else {
				int other = 0;
				for (size_t i = 0; i < res.nobjs; i++)
					if (strcmp(res.objs[i].key, dk) != 0)
						other = 1;
				if (other || res.nprefixes) {
					r = -ENOTEMPTY;
				} else {
					core_del_result dr;
					fs_self_note(m, pn.bucket, dk, 0);
					r = -fs_errno(
						core_delete(m->c, pn.bucket, dk, NULL, &dr, &err));
				}
			}
			core_list_result_clear(&res);
			if (r == 0) {
				fs_inode_unhash(m, pn.bucket, path, 1);
				fs_keepDir(m, pn.bucket, pn.path);
			}
		}
		free(path);
		free(dk);
	}
	fs_self_seal(m);
	fuse_reply_err(req, r < 0 ? -r : 0);
	fs_name_clear(&pn);
}

static void fs_opOpendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	fs_ctx *m = fs_ctxOf(req);
	fs_dirh *dh = calloc(1, sizeof(*dh));
	if (!dh || fs_inode_name(m, fs_inode_from(m, ino), &dh->name) < 0) {
		free(dh);
		fuse_reply_err(req, ENOMEM);
		return;
	}
	pthread_mutex_init(&dh->lock, NULL);
	pthread_mutex_lock(&m->fhlock);
	SL_DLIST_PUSH(m->dhs, dh, prev, next);
	pthread_mutex_unlock(&m->fhlock);
	fi->fh = (uint64_t)(uintptr_t)dh;
	fuse_reply_open(req, fi);
}

static void fs_dirClearPage(fs_dirh *dh)
{
	for (size_t i = 0; i < dh->n; i++)
		free(dh->ents[i].name);
	free(dh->ents);
	dh->ents = NULL;
	dh->n = 0;
}

static int fs_cmpStr(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int fs_dirAdd(fs_dirh *dh, size_t *cap, const char *name, size_t len, int is_dir)
{
	if (dh->n == *cap) {
		size_t nc = *cap ? *cap * 2 : 64;
		fs_dirent *ne = realloc(dh->ents, nc * sizeof(*ne));
		if (!ne)
			return -ENOMEM;
		dh->ents = ne;
		*cap = nc;
	}
	char *s = strndup(name, len);
	if (!s)
		return -ENOMEM;
	memset(&dh->ents[dh->n], 0, sizeof(dh->ents[0]));
	dh->ents[dh->n].name = s;
	dh->ents[dh->n].is_dir = is_dir;
	dh->n++;
	return 0;
}

/* Loads the page after dh->marker (NULL marker: the first page). */
static int fs_dirLoad(fs_ctx *m, fs_dirh *dh)
{
	fs_dirClearPage(dh);
	size_t cap = 0;
	sl_err err;
	dh->loaded = 1;
	if (!dh->name.bucket) {
		core_bucket *bs = NULL;
		size_t nb = 0;
		int r = core_bucket_list(m->c, &bs, &nb, &err);
		if (r < 0)
			return -fs_errno(r);
		for (size_t i = 0; i < nb && r == 0; i++)
			r = fs_dirAdd(dh, &cap, bs[i].name, strlen(bs[i].name), 1);
		free(bs);
		dh->truncated = 0;
		return r;
	}
	if (!dh->marker) /* the listing shows files open below it */
		fs_pendingStore(m, dh->name.bucket, dh->name.path, 1);
	char *prefix = fs_dirKey(dh->name.path);
	if (!prefix)
		return -ENOMEM;
	size_t plen = strlen(prefix);
	int r = 0;
	do {
		core_list_opts lo = { 0 };
		lo.prefix = prefix;
		lo.delimiter = "/";
		lo.start_after = dh->marker;
		lo.max_keys = FS_PAGE;
		core_list_result res = { 0 };
		r = core_list(m->c, dh->name.bucket, &lo, &res, &err);
		if (r < 0) {
			r = -fs_errno(r);
			break;
		}
		for (size_t i = 0; i < res.nobjs && r == 0; i++) {
			const char *key = res.objs[i].key;
			if (strlen(key) <= plen)
				continue; /* the directory's own marker */
			const char *nm = key + plen;
			size_t nl = strlen(nm);
			if (!fs_nameShowable(nm, nl))
				continue;
			/* both an object and a prefix: the directory is shown */
			char *asdir = fs_dirKey(key);
			if (!asdir) {
				r = -ENOMEM;
				break;
			}
			int hidden = res.nprefixes && bsearch(&asdir, res.prefixes, res.nprefixes,
							      sizeof(char *), fs_cmpStr) != NULL;
			if (!hidden && res.truncated && res.next_marker &&
			    strcmp(asdir, res.next_marker) > 0) {
				int has;
				hidden = fs_dirProbe(m, dh->name.bucket, key, NULL, &has) > 0;
			}
			free(asdir);
			if (hidden)
				continue;
			/* d_type: from the attributes the listing's metadata gives
			 * (parsed once here, kept for readdirplus); unknown (the
			 * kernel asks) when the listing carries no metadata */
			const char *meta = res.objs[i].meta;
			struct stat st;
			if (meta)
				fs_attr_from_meta(m, strstr(meta, "\"x-amz-meta-") ? meta : NULL,
						  res.objs[i].size, res.objs[i].mtime_ms, 0, &st);
			int is_dir = !meta ? 3 : S_ISLNK(st.st_mode) ? 2 : 0;
			r = fs_dirAdd(dh, &cap, nm, nl, is_dir);
			if (r == 0 && meta) {
				fs_dirent *de = &dh->ents[dh->n - 1];
				de->has_attr = 1;
				de->st = st;
			}
		}
		for (size_t i = 0; i < res.nprefixes && r == 0; i++) {
			const char *nm = res.prefixes[i] + plen;
			size_t nl = strlen(nm);
			if (nl && nm[nl - 1] == '/')
				nl--;
			if (!fs_nameShowable(nm, nl))
				continue;
			r = fs_dirAdd(dh, &cap, nm, nl, 1);
		}
		dh->truncated = res.truncated && res.next_marker;
		if (dh->truncated) {
			free(dh->marker);
			dh->marker = strdup(res.next_marker);
			if (!dh->marker)
				r = -ENOMEM;
		}
		core_list_result_clear(&res);
	} while (r == 0 && dh->n == 0 && dh->truncated);
	free(prefix);
	return r;
}

static uint64_t fs_nameIno(const char *s)
{
	uint64_t h = 1469598103934665603ull;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h | 1;
}

/* readdirplus: the entry for a file of the listing with its attributes and
 * one lookup reference; 0 with e->ino = 0 for names sent without attributes
 * (directories: their attributes need a lookup). */
static int fs_dirPlusEntry(fs_ctx *m, fs_dirh *dh, const fs_dirent *de, struct fuse_entry_param *e,
			   fs_inode **ref)
{
	*ref = NULL;
	if (!de->has_attr || de->is_dir == 1 || !dh->name.bucket)
		return 0;
	char *path = fs_child(dh->name.path, de->name);
	if (!path)
		return -ENOMEM;
	fs_inode *in = fs_inode_ref(m, dh->name.bucket, path, 0);
	free(path);
	if (!in)
		return -ENOMEM;
	struct stat st = de->st;
	if (in->data)
		fs_stat(m, in, &st); /* open file: buffered size and times */
	e->ino = fs_inode_id(m, in);
	e->attr = st;
	e->attr.st_ino = (ino_t)in->st_ino;
	e->attr_timeout = m->timeout;
	e->entry_timeout = m->timeout;
	*ref = in;
	return 0;
}

static void fs_dirRead(fuse_req_t req, size_t size, off_t off, struct fuse_file_info *fi, int plus)
{
	fs_ctx *m = fs_ctxOf(req);
	fs_dirh *dh = (fs_dirh *)(uintptr_t)fi->fh;
	char *buf = malloc(size);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	size_t used = 0;
	int r = 0;
	pthread_mutex_lock(&dh->lock);
	uint64_t idx = (uint64_t)off;
	struct stat st;
	memset(&st, 0, sizeof(st));
	for (;;) {
		const char *name;
		if (idx < 2) {
			name = idx == 0 ? "." : "..";
			st.st_ino = idx == 0 ? 1 : 2;
			st.st_mode = S_IFDIR;
		} else {
			uint64_t k = idx - 2;
			if (!dh->loaded || k < dh->base || k > dh->base + dh->n) {
				/* rewind or seek: list again from the start */
				free(dh->marker);
				dh->marker = NULL;
				dh->base = 0;
				r = fs_dirLoad(m, dh);
				while (r == 0 && k > dh->base + dh->n && dh->truncated) {
					dh->base += dh->n;
					r = fs_dirLoad(m, dh);
				}
				if (r < 0)
					break;
			}
			if (k == dh->base + dh->n) {
				if (!dh->truncated)
					break;
				dh->base += dh->n;
				r = fs_dirLoad(m, dh);
				if (r < 0)
					break;
				if (dh->n == 0)
					break;
			}
			if (k >= dh->base + dh->n)
				break;
			fs_dirent *e = &dh->ents[k - dh->base];
			name = e->name;
			st.st_ino = fs_nameIno(name);
			st.st_mode = e->is_dir == 1   ? S_IFDIR
				     : e->is_dir == 2 ? S_IFLNK
				     : e->is_dir == 3 ? 0
						      : S_IFREG;
		}
		size_t need;
		if (plus) {
			struct fuse_entry_param e;
			memset(&e, 0, sizeof(e));
			fs_inode *ref = NULL;
			if (idx >= 2) {
				int pr = fs_dirPlusEntry(m, dh, &dh->ents[idx - 2 - dh->base], &e,
							 &ref);
				if (pr < 0) {
					r = pr;
					break;
				}
			}
			if (!ref) {
				e.attr.st_ino = st.st_ino;
				e.attr.st_mode = st.st_mode;
			}
			need = fuse_add_direntry_plus(req, buf + used, size - used, name, &e,
						      (off_t)(idx + 1));
			if (need > size - used) {
				if (ref)
					fs_inode_forget(m, ref, 1); /* not sent */
				break;
			}
		} else {
			need = fuse_add_direntry(req, buf + used, size - used, name, &st,
						 (off_t)(idx + 1));
			if (need > size - used)
				break;
		}
		used += need;
		idx++;
	}
	pthread_mutex_unlock(&dh->lock);
	if (r < 0 && used == 0)
		fuse_reply_err(req, -r);
	else
		fuse_reply_buf(req, buf, used);
	free(buf);
}

static void fs_opReaddir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			 struct fuse_file_info *fi)
{
	(void)ino;
	fs_dirRead(req, size, off, fi, 0);
}

static void fs_opReaddirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			     struct fuse_file_info *fi)
{
	(void)ino;
	fs_dirRead(req, size, off, fi, 1);
}

static void fs_dirhFree(fs_dirh *dh)
{
	fs_dirClearPage(dh);
	free(dh->marker);
	fs_name_clear(&dh->name);
	pthread_mutex_destroy(&dh->lock);
	free(dh);
}

static void fs_opReleasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	fs_ctx *m = fs_ctxOf(req);
	fs_dirh *dh = (fs_dirh *)(uintptr_t)fi->fh;
	pthread_mutex_lock(&m->fhlock);
	SL_DLIST_UNLINK(m->dhs, dh, prev, next);
	pthread_mutex_unlock(&m->fhlock);
	fs_dirhFree(dh);
	fuse_reply_err(req, 0);
}

void fs_dirs_free(fs_ctx *m)
{
	while (m->dhs) {
		fs_dirh *dh = m->dhs;
		m->dhs = dh->next;
		fs_dirhFree(dh);
	}
}

static void fs_opFsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	(void)datasync;
	(void)fi;
	/* Directory changes are committed (durably) when made; files created
	 * below and still open are stored now, so their names are durable too. */
	fs_ctx *m = fs_ctxOf(req);
	fs_name n;
	int r = fs_inode_name(m, fs_inode_from(m, ino), &n);
	if (r == 0) {
		r = fs_pendingStore(m, n.bucket, n.bucket ? n.path : "", 1);
		fs_name_clear(&n);
	}
	fuse_reply_err(req, r < 0 ? -r : 0);
}

/* ---- files: create, open, read, write, close --------------------------------- */

static void fs_fhFree(fs_ctx *m, fs_fh *fh)
{
	pthread_mutex_lock(&m->fhlock);
	SL_DLIST_UNLINK(m->fhs, fh, prev, next);
	pthread_mutex_unlock(&m->fhlock);
	free(fh);
}

/* Opens in and replies (create when st_create). pending_meta (taken over):
 * a file create just made, not stored yet: it starts empty and dirty. */
static int fs_openReply(fuse_req_t req, fs_ctx *m, fs_inode *in, struct fuse_file_info *fi,
			const struct stat *st_create, char *pending_meta)
{
	fs_name n;
	if (fs_inode_name(m, in, &n) < 0) {
		free(pending_meta);
		return -ENOMEM;
	}
	fs_data *fresh = NULL;
	int took = 0, r = 0, keep = 1;
	fs_data *d = fs_inode_open_data(m, in, NULL, &took);
	if (!d) {
		r = fs_data_new(&fresh);
		if (r == 0 && pending_meta) {
			fresh->meta = pending_meta;
			pending_meta = NULL;
			fresh->dirty = 1;
			fs_data_pend(m, fresh);
		} else if (r == 0) {
			r = fs_data_load(m, fresh, n.bucket, n.path);
		}
		if (r < 0) {
			free(pending_meta);
			fs_data_free(m, fresh);
			fs_name_clear(&n);
			return r;
		}
		d = fs_inode_open_data(m, in, fresh, &took);
		if (!took) {
			fs_data_free(m, fresh);
		} else {
			pthread_mutex_lock(&m->ilock);
			keep = in->cache_hlc == d->base_hlc && d->base_hlc != 0;
			in->cache_hlc = d->base_hlc;
			pthread_mutex_unlock(&m->ilock);
		}
	}
	fs_name_clear(&n);
	free(pending_meta); /* unused: the file was open already */
	if ((fi->flags & O_TRUNC) && (fi->flags & O_ACCMODE) != O_RDONLY) {
		pthread_rwlock_wrlock(&d->lock);
		r = fs_data_truncate(m, d, 0);
		pthread_rwlock_unlock(&d->lock);
		keep = 0;
		if (r < 0) {
			fs_dataRelease(m, in);
			return r;
		}
	}
	fs_fh *fh = malloc(sizeof(*fh));
	if (!fh) {
		fs_dataRelease(m, in);
		return -ENOMEM;
	}
	fh->ino = in;
	fh->flags = fi->flags;
	pthread_mutex_lock(&m->fhlock);
	SL_DLIST_PUSH(m->fhs, fh, prev, next);
	pthread_mutex_unlock(&m->fhlock);
	fi->fh = (uint64_t)(uintptr_t)fh;
	fi->keep_cache = keep;
	int rep;
	if (st_create) {
		struct fuse_entry_param e;
		memset(&e, 0, sizeof(e));
		e.ino = fs_inode_id(m, in);
		e.attr = *st_create;
		e.attr.st_ino = (ino_t)in->st_ino;
		e.attr_timeout = e.entry_timeout = m->timeout;
		rep = fuse_reply_create(req, &e, fi);
	} else {
		rep = fuse_reply_open(req, fi);
	}
	if (rep != 0) {
		/* the kernel did not get the handle: undo */
		fs_fhFree(m, fh);
		fs_dataRelease(m, in);
		if (st_create)
			fs_inode_forget(m, in, 1);
	}
	return 0;
}

static void fs_opOpen(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	fs_ctx *m = fs_ctxOf(req);
	fs_inode *in = fs_inode_from(m, ino);
	if (in->is_dir) {
		fuse_reply_err(req, EISDIR);
		return;
	}
	int r = fs_openReply(req, m, in, fi, NULL, NULL);
	if (r < 0)
		fuse_reply_err(req, -r);
}

/*
 * Creates parent/name; fills *in_out (one lookup reference) and st.
 * Returns 0 when created, 1 when the name exists and (without excl) the
 * existing file is to be opened, or -errno. With pending_meta (create(2)),
 * nothing is stored yet: *pending_meta gets the new file's metadata and the
 * open file is committed once, on flush/fsync/close (or earlier, as an empty
 * object, by the operations that need the name in the core: see
 * fs_pendingStore). Without it (mknod), the empty object is committed now.
 */
static int fs_createObject(fuse_req_t req, fs_ctx *m, fuse_ino_t parent, const char *name,
			   mode_t mode, int excl, fs_inode **in_out, struct stat *st,
			   char **pending_meta)
{
	const struct fuse_ctx *fc = fuse_req_ctx(req);
	fs_name pn;
	if (fs_inode_name(m, fs_inode_from(m, parent), &pn) < 0)
		return -ENOMEM;
	int r;
	if (!pn.bucket) {
		fs_name_clear(&pn);
		return -EPERM; /* objects live in buckets */
	}
	char *path = fs_child(pn.path, name);
	char *meta = fs_meta_new(S_IFREG | (mode & 07777), fc->uid, fc->gid);
	fs_inode *pin = NULL;
	if (!path || !meta) {
		r = -ENOMEM;
	} else if (fs_nameTooLong(name) || strlen(path) + 1 >= CORE_MAX_KEY) {
		r = -ENAMETOOLONG;
	} else if ((pin = fs_pendingRef(m, pn.bucket, path)) != NULL) {
		r = excl ? -EEXIST : 1; /* created here, still open */
		if (r == 1)
			*in_out = pin;
		else
			fs_inode_forget(m, pin, 1);
	} else if (pending_meta) {
		core_name_info ni;
		sl_err err;
		r = core_name_stat(m->c, pn.bucket, path, CORE_NAME_FILE | CORE_NAME_DIR, &ni,
				   &err);
		if (r < 0)
			r = r == SL_ENOBUCKET ? -ENOENT : -fs_errno(r);
		else if (ni.is_dir)
			r = excl ? -EEXIST : -EISDIR;
		else if (ni.is_file)
			r = excl ? -EEXIST : 1; /* exists: open it instead */
		core_name_info_clear(&ni);
		if (r == 0) {
			struct timespec now;
			clock_gettime(CLOCK_REALTIME, &now);
			fs_attr_from_meta(m, meta, 0,
					  (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000, 0,
					  st);
		}
		if (r == 0) {
			*pending_meta = meta;
			meta = NULL;
		}
	} else {
		core_put_opts po = { 0 };
		po.meta = meta;
		po.cond.if_none_match = "*";
		core_objinfo oi = { 0 };
		sl_err err;
		fs_self_note(m, pn.bucket, path, 0);
		r = core_put_chunks(m->c, pn.bucket, path, NULL, 0, EMPTY_MD5, &po, &oi, &err);
		if (r == SL_EPRECOND || r == SL_EEXIST) {
			r = excl ? -EEXIST : 1; /* exists: open it instead */
		} else if (r < 0) {
			r = -fs_errno(r);
		} else {
			fs_attr_from_info(m, &oi, 0, st);
		}
		core_objinfo_clear(&oi);
	}
	if (r >= 0 && !pin) {
		*in_out = fs_inode_ref(m, pn.bucket, path, 0);
		if (!*in_out)
			r = -ENOMEM;
	}
	if (r == 1 && (r = fs_stat(m, *in_out, st)) < 0)
		fs_inode_forget(m, *in_out, 1);
	if (r < 0 && pending_meta) {
		free(*pending_meta);
		*pending_meta = NULL;
	}
	free(path);
	free(meta);
	fs_name_clear(&pn);
	fs_self_seal(m);
	return r;
}

static void fs_opCreate(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
			struct fuse_file_info *fi)
{
	fs_ctx *m = fs_ctxOf(req);
	fs_inode *in = NULL;
	struct stat st;
	char *pmeta = NULL;
	int r = fs_createObject(req, m, parent, name, mode, (fi->flags & O_EXCL) != 0, &in, &st,
				&pmeta);
	if (r >= 0) {
		r = fs_openReply(req, m, in, fi, &st, pmeta);
		if (r < 0)
			fs_inode_forget(m, in, 1);
	}
	if (r < 0)
		fuse_reply_err(req, -r);
}

static void fs_opMknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
	(void)rdev;
	fs_ctx *m = fs_ctxOf(req);
	if (!S_ISREG(mode)) {
		fuse_reply_err(req, EPERM); /* no FIFOs, sockets or devices */
		return;
	}
	fs_inode *in = NULL;
	struct stat st;
	int r = fs_createObject(req, m, parent, name, mode, 1, &in, &st, NULL);
	if (r < 0)
		fuse_reply_err(req, -r);
	else
		fs_replyEntry(req, m, in, &st);
}

static fs_fh *fs_fhOf(struct fuse_file_info *fi)
{
	return (fs_fh *)(uintptr_t)fi->fh;
}

static void fs_opRead(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		      struct fuse_file_info *fi)
{
	(void)ino;
	fs_ctx *m = fs_ctxOf(req);
	fs_data *d = fs_fhOf(fi)->ino->data;
	char *buf = malloc(size ? size : 1);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	pthread_rwlock_rdlock(&d->lock);
	ssize_t r = fs_data_read(m, d, buf, size, (uint64_t)off);
	pthread_rwlock_unlock(&d->lock);
	if (r < 0)
		fuse_reply_err(req, (int)-r);
	else
		fuse_reply_buf(req, buf, (size_t)r);
	free(buf);
}

static void fs_opWrite(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	(void)ino;
	fs_ctx *m = fs_ctxOf(req);
	fs_fh *fh = fs_fhOf(fi);
	fs_data *d = fh->ino->data;
	pthread_rwlock_wrlock(&d->lock);
	uint64_t pos = (fh->flags & O_APPEND) ? d->size : (uint64_t)off;
	int r = fs_data_write(m, d, buf, size, pos);
	pthread_rwlock_unlock(&d->lock);
	if (r < 0)
		fuse_reply_err(req, -r);
	else
		fuse_reply_write(req, size);
}

static int fs_commitInode(fs_ctx *m, fs_inode *in)
{
	fs_data *d = in->data;
	fs_name n;
	if (fs_inode_name(m, in, &n) < 0)
		return -ENOMEM;
	int r = 0;
	pthread_rwlock_wrlock(&d->lock);
	if (n.hashed) {
		r = fs_data_commit(m, d, n.bucket, n.path, 0);
		if (r == 0) {
			pthread_mutex_lock(&m->ilock);
			in->cache_hlc = d->base_hlc;
			pthread_mutex_unlock(&m->ilock);
		}
	}
	pthread_rwlock_unlock(&d->lock);
	fs_name_clear(&n);
	fs_self_seal(m);
	return r;
}

/* The commit of a created file failed on its last open handle (close):
 * nothing was stored, so the name goes before close returns; the kernel
 * must not keep a dentry for it. */
static void fs_pendingLost(fs_ctx *m, fs_inode *in)
{
	fs_name n;
	pthread_mutex_lock(&m->ilock);
	int last = in->nopen == 1 && in->data && atomic_load(&in->data->pending);
	pthread_mutex_unlock(&m->ilock);
	if (!last || fs_inode_name(m, in, &n) < 0)
		return;
	if (n.hashed) {
		fs_data_unpend(m, in->data);
		fs_inode_unhash(m, n.bucket, n.path, 0);
		fs_notify_key(m, n.bucket, n.path);
	}
	fs_name_clear(&n);
}

static void fs_opFlush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	fs_ctx *m = fs_ctxOf(req);
	int r = fs_commitInode(m, fs_fhOf(fi)->ino);
	if (r < 0)
		fs_pendingLost(m, fs_fhOf(fi)->ino);
	fuse_reply_err(req, r < 0 ? -r : 0);
}

static void fs_opFsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	(void)ino;
	(void)datasync;
	fs_ctx *m = fs_ctxOf(req);
	/* A commit returns after the chunk data and the metadata are durable. */
	int r = fs_commitInode(m, fs_fhOf(fi)->ino);
	fuse_reply_err(req, r < 0 ? -r : 0);
}

static void fs_opRelease(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	fs_ctx *m = fs_ctxOf(req);
	fs_fh *fh = fs_fhOf(fi);
	fs_inode *in = fh->ino;
	int r = fs_commitInode(m, in);
	if (r < 0)
		fprintf(stderr, "seglake mount: commit on close failed: %s\n", strerror(-r));
	if (r < 0)
		fs_pendingLost(m, in);
	fs_dataRelease(m, in);
	fs_fhFree(m, fh);
	fuse_reply_err(req, 0);
}

static void fs_opFallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off, off_t len,
			   struct fuse_file_info *fi)
{
	(void)ino;
	fs_ctx *m = fs_ctxOf(req);
	if (mode & ~FALLOC_FL_KEEP_SIZE) {
		fuse_reply_err(req, EOPNOTSUPP);
		return;
	}
	if (off < 0 || len <= 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	fs_data *d = fs_fhOf(fi)->ino->data;
	int r = 0;
	pthread_rwlock_wrlock(&d->lock);
	uint64_t end = (uint64_t)off + (uint64_t)len;
	if (!(mode & FALLOC_FL_KEEP_SIZE) && end > d->size)
		r = fs_data_truncate(m, d, end); /* holes: reads give zeros, nothing stored */
	pthread_rwlock_unlock(&d->lock);
	fuse_reply_err(req, r < 0 ? -r : 0);
}

static void fs_opCopyFileRange(fuse_req_t req, fuse_ino_t ino_in, off_t off_in,
			       struct fuse_file_info *fi_in, fuse_ino_t ino_out, off_t off_out,
			       struct fuse_file_info *fi_out, size_t len, int flags)
{
	(void)ino_in;
	(void)ino_out;
	fs_ctx *m = fs_ctxOf(req);
	if (flags) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	fs_data *src = fs_fhOf(fi_in)->ino->data, *dst = fs_fhOf(fi_out)->ino->data;
	if (src == dst) {
		pthread_rwlock_wrlock(&dst->lock);
	} else if ((uintptr_t)src < (uintptr_t)dst) {
		pthread_rwlock_rdlock(&src->lock);
		pthread_rwlock_wrlock(&dst->lock);
	} else {
		pthread_rwlock_wrlock(&dst->lock);
		pthread_rwlock_rdlock(&src->lock);
	}
	ssize_t r = fs_data_copy(m, src, (uint64_t)off_in, dst, (uint64_t)off_out, len);
	pthread_rwlock_unlock(&dst->lock);
	if (src != dst)
		pthread_rwlock_unlock(&src->lock);
	if (r < 0)
		fuse_reply_err(req, (int)-r);
	else
		fuse_reply_write(req, (size_t)r);
}

/* ---- unlink, rename, links ---------------------------------------------------- */

static void fs_opUnlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	fs_ctx *m = fs_ctxOf(req);
	fs_name pn;
	if (fs_parentName(req, m, parent, &pn) < 0)
		return;
	int r;
	char *path = NULL;
	if (!pn.bucket) {
		r = -EPERM;
	} else if (!(path = fs_child(pn.path, name))) {
		r = -ENOMEM;
	} else {
		core_objinfo oi = { 0 };
		sl_err err;
		r = core_head(m->c, pn.bucket, path, NULL, &oi, &err);
		core_objinfo_clear(&oi);
		if (r == 0) {
			core_del_result dr;
			fs_self_note(m, pn.bucket, path, 0);
			r = -fs_errno(core_delete(m->c, pn.bucket, path, NULL, &dr, &err));
		} else if (r == SL_ENOKEY && fs_pendingDrop(m, pn.bucket, path) > 0) {
			r = 0; /* created here and never stored: nothing to delete */
		} else {
			r = -fs_errno(r);
		}
		if (r == 0) {
			fs_inode_unhash(m, pn.bucket, path, 0);
			fs_keepDir(m, pn.bucket, pn.path);
		}
	}
	fs_self_seal(m);
	fuse_reply_err(req, r < 0 ? -r : 0);
	free(path);
	fs_name_clear(&pn);
}

/* 1 dir, 0 file, -ENOENT / -errno. */
static int fs_kindOf(fs_ctx *m, const char *bucket, const char *path)
{
	int has;
	int r = fs_dirProbe(m, bucket, path, NULL, &has);
	if (r != 0)
		return r < 0 ? r : 1;
	core_objinfo oi = { 0 };
	sl_err err;
	r = core_head(m->c, bucket, path, NULL, &oi, &err);
	core_objinfo_clear(&oi);
	return r == 0 ? 0 : -fs_errno(r);
}

static int fs_renameDir(fs_ctx *m, const char *bucket, const char *src, const char *dst, int dkind,
			unsigned flags)
{
	sl_err err;
	char *sk = fs_dirKey(src), *dk = fs_dirKey(dst);
	int r = 0;
	if (!sk || !dk) {
		r = -ENOMEM;
		goto out;
	}
	if (dkind == 0) {
		r = -ENOTDIR;
		goto out;
	}
	if (dkind == 1) {
		if (flags & RENAME_NOREPLACE) {
			r = -EEXIST;
			goto out;
		}
		core_list_opts lo = { 0 };
		lo.prefix = dk;
		lo.max_keys = 2;
		core_list_result res = { 0 };
		r = core_list(m->c, bucket, &lo, &res, &err);
		if (r < 0) {
			r = -fs_errno(r);
			goto out;
		}
		int other = res.nprefixes > 0;
		for (size_t i = 0; i < res.nobjs; i++)
			if (strcmp(res.objs[i].key, dk) != 0)
				other = 1;
		core_list_result_clear(&res);
		if (other) {
			r = -ENOTEMPTY;
			goto out;
		}
		core_del_result dr;
		fs_self_note(m, bucket, dk, 0);
		r = -fs_errno(core_delete(m->c, bucket, dk, NULL, &dr, &err));
		if (r < 0)
			goto out;
	}
	fs_self_note(m, bucket, sk, 1);
	fs_self_note(m, bucket, dk, 1);
	long n = core_rename_prefix(m->c, bucket, sk, dk, &err);
	if (n < 0)
		r = -fs_errno((int)n);
out:
	free(sk);
	free(dk);
	fs_self_seal(m);
	return r;
}

static void fs_opRename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
			const char *newname, unsigned int flags)
{
	fs_ctx *m = fs_ctxOf(req);
	fs_name pn, npn;
	if (fs_parentName(req, m, parent, &pn) < 0)
		return;
	if (fs_inode_name(m, fs_inode_from(m, newparent), &npn) < 0) {
		fs_name_clear(&pn);
		fuse_reply_err(req, ENOMEM);
		return;
	}
	int r = 0;
	char *src = NULL, *dst = NULL;
	if (flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE)) {
		r = -EINVAL;
	} else if (!pn.bucket || !npn.bucket) {
		r = -EPERM; /* buckets cannot be renamed */
	} else if (strcmp(pn.bucket, npn.bucket) != 0) {
		r = -EXDEV; /* across buckets: mv copies */
	} else if (!(src = fs_child(pn.path, name)) || !(dst = fs_child(npn.path, newname))) {
		r = -ENOMEM;
	} else if (fs_nameTooLong(newname) || strlen(dst) + 1 >= CORE_MAX_KEY) {
		r = -ENAMETOOLONG;
	}
	/* the core decides what exists: store pending files involved first */
	if (r == 0)
		r = fs_pendingStore(m, pn.bucket, src, 0);
	if (r == 0)
		r = fs_pendingStore(m, pn.bucket, dst, 0);
	if (r == 0)
		r = fs_pendingStore(m, pn.bucket, src, 1);
	if (r == 0)
		r = fs_pendingStore(m, pn.bucket, dst, 1);
	if (r == 0) {
		int skind = fs_kindOf(m, pn.bucket, src);
		int dkind = fs_kindOf(m, pn.bucket, dst);
		sl_err err;
		if (skind < 0) {
			r = skind;
		} else if (dkind < 0 && dkind != -ENOENT) {
			r = dkind;
		} else if (flags & RENAME_EXCHANGE) {
			if (dkind < 0)
				r = -ENOENT;
			else if (skind == 1 || dkind == 1)
				r = -EINVAL; /* exchanging directories is not supported */
			else {
				fs_self_note(m, pn.bucket, src, 0);
				fs_self_note(m, pn.bucket, dst, 0);
				r = -fs_errno(core_rename(m->c, pn.bucket, src, dst,
							  CORE_RENAME_EXCHANGE, &err));
			}
			if (r == 0) {
				/* swap the two inodes' names via a temporary */
				fs_inode_rename(m, pn.bucket, src, "\x01swap", 0);
				fs_inode_rename(m, pn.bucket, dst, src, 0);
				fs_inode_rename(m, pn.bucket, "\x01swap", dst, 0);
			}
		} else if (skind == 1) {
			r = fs_renameDir(m, pn.bucket, src, dst, dkind, flags);
			if (r == 0)
				fs_inode_rename(m, pn.bucket, src, dst, 1);
		} else if (dkind == 1) {
			r = -EISDIR;
		} else {
			fs_self_note(m, pn.bucket, src, 0);
			fs_self_note(m, pn.bucket, dst, 0);
			r = core_rename(m->c, pn.bucket, src, dst,
					(flags & RENAME_NOREPLACE) ? CORE_RENAME_NOREPLACE : 0,
					&err);
			r = r == SL_EEXIST || r == SL_EPRECOND ? -EEXIST : -fs_errno(r);
			if (r == 0)
				fs_inode_rename(m, pn.bucket, src, dst, 0);
		}
		if (r == 0 && strcmp(pn.path, npn.path) != 0)
			fs_keepDir(m, pn.bucket, pn.path);
	}
	fs_self_seal(m);
	fuse_reply_err(req, r < 0 ? -r : 0);
	free(src);
	free(dst);
	fs_name_clear(&pn);
	fs_name_clear(&npn);
}

static void fs_opLink(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	(void)ino;
	(void)newparent;
	(void)newname;
	fuse_reply_err(req, EPERM); /* objects have one name: no hard links */
}

static void fs_opSymlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	fs_ctx *m = fs_ctxOf(req);
	const struct fuse_ctx *fc = fuse_req_ctx(req);
	fs_name pn;
	if (fs_parentName(req, m, parent, &pn) < 0)
		return;
	int r;
	char *path = NULL;
	char *meta = fs_meta_new(S_IFLNK | 0777, fc->uid, fc->gid);
	struct stat st;
	if (!pn.bucket) {
		r = -EPERM;
	} else if (!meta || !(path = fs_child(pn.path, name))) {
		r = -ENOMEM;
	} else if (fs_nameTooLong(name) || strlen(path) + 1 >= CORE_MAX_KEY) {
		r = -ENAMETOOLONG;
	} else {
		core_writer *w = NULL;
		sl_err err;
		fs_self_note(m, pn.bucket, path, 0);
		r = core_put_begin(m->c, pn.bucket, path, &w, &err);
		if (r == 0)
			r = core_put_write(w, link, strlen(link), &err);
		if (r == 0) {
			core_put_opts po = { 0 };
			po.meta = meta;
			po.cond.if_none_match = "*";
			core_objinfo oi = { 0 };
			r = core_put_commit(w, &po, &oi, &err);
			w = NULL;
			if (r == 0) {
				fs_attr_from_info(m, &oi, 0, &st);
			}
			core_objinfo_clear(&oi);
		}
		if (w)
			core_put_abort(w);
		r = r == SL_EPRECOND ? -EEXIST : -fs_errno(r);
	}
	fs_inode *in = NULL;
	if (r == 0 && !(in = fs_inode_ref(m, pn.bucket, path, 0)))
		r = -ENOMEM;
	fs_self_seal(m);
	if (r < 0)
		fuse_reply_err(req, -r);
	else
		fs_replyEntry(req, m, in, &st);
	free(meta);
	free(path);
	fs_name_clear(&pn);
}

static void fs_opReadlink(fuse_req_t req, fuse_ino_t ino)
{
	fs_ctx *m = fs_ctxOf(req);
	fs_name n;
	if (fs_inode_name(m, fs_inode_from(m, ino), &n) < 0) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	core_reader *rd = NULL;
	core_objinfo oi = { 0 };
	sl_err err;
	char buf[PATH_MAX + 1];
	int r = n.bucket ? core_get_open(m->c, n.bucket, n.path, NULL, &oi, &rd, &err) : SL_EINVAL;
	if (r == 0 && oi.size > PATH_MAX)
		r = SL_EINVAL;
	ssize_t got = 0;
	if (r == 0) {
		got = core_read_at(rd, buf, (size_t)oi.size, 0, &err);
		if (got < 0)
			r = (int)got;
	}
	if (rd)
		core_reader_free(rd);
	core_objinfo_clear(&oi);
	fs_name_clear(&n);
	if (r < 0) {
		fuse_reply_err(req, fs_errno(r));
		return;
	}
	buf[got] = '\0';
	fuse_reply_readlink(req, buf);
}

/* ---- statfs, xattrs --------------------------------------------------------- */

static void fs_opStatfs(fuse_req_t req, fuse_ino_t ino)
{
	(void)ino;
	fs_ctx *m = fs_ctxOf(req);
	struct statvfs sv;
	if (statvfs(core_dir(m->c), &sv) < 0) {
		fuse_reply_err(req, errno);
		return;
	}
	sv.f_namemax = 255;
	fuse_reply_statfs(req, &sv);
}

static int fs_metaOf(fs_ctx *m, fs_inode *in, char **out)
{
	*out = NULL;
	fs_name n;
	if (fs_inode_name(m, in, &n) < 0)
		return -ENOMEM;
	sl_err err;
	int r = 0;
	if (!n.bucket || (!*n.path && m->bucket)) {
		*out = strdup("{}");
	} else if (!*n.path) {
		r = core_bucket_config_get(m->c, n.bucket, ROOT_CONFIG, out, &err);
		if (r == SL_ENOKEY) {
			r = 0;
			*out = strdup("{}");
		}
		r = -fs_errno(r);
	} else {
		pthread_mutex_lock(&m->ilock);
		fs_data *d = in->data;
		if (d)
			in->nopen++;
		pthread_mutex_unlock(&m->ilock);
		if (d) {
			pthread_rwlock_rdlock(&d->lock);
			*out = strdup(d->meta ? d->meta : "{}");
			pthread_rwlock_unlock(&d->lock);
			fs_dataRelease(m, in);
		} else {
			char *key = n.is_dir ? fs_dirKey(n.path) : strdup(n.path);
			core_objinfo oi = { 0 };
			r = key ? core_head(m->c, n.bucket, key, NULL, &oi, &err) : SL_ENOMEM;
			if (r == SL_ENOKEY && n.is_dir)
				r = 0; /* implicit directory: no attributes stored */
			if (r == 0)
				*out = strdup(oi.meta ? oi.meta : "{}");
			r = -fs_errno(r);
			core_objinfo_clear(&oi);
			free(key);
		}
	}
	fs_name_clear(&n);
	if (r == 0 && !*out)
		r = -ENOMEM;
	return r;
}

static int fs_userXattr(const char *name)
{
	return strncmp(name, "user.", 5) == 0 && name[5] != '\0';
}

static void fs_opGetxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	fs_ctx *m = fs_ctxOf(req);
	if (!fs_userXattr(name)) {
		fuse_reply_err(req, ENODATA);
		return;
	}
	char *meta;
	int r = fs_metaOf(m, fs_inode_from(m, ino), &meta);
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	size_t len = 0;
	char *buf = size ? malloc(size) : NULL;
	if (size && !buf) {
		free(meta);
		fuse_reply_err(req, ENOMEM);
		return;
	}
	r = fs_xattr_get(meta, name, buf, size, &len);
	free(meta);
	if (r < 0)
		fuse_reply_err(req, -r);
	else if (size == 0)
		fuse_reply_xattr(req, len);
	else
		fuse_reply_buf(req, buf, len);
	free(buf);
}

static void fs_opListxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	fs_ctx *m = fs_ctxOf(req);
	char *meta;
	int r = fs_metaOf(m, fs_inode_from(m, ino), &meta);
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	char *buf = size ? malloc(size) : NULL;
	size_t len = 0;
	r = (size && !buf) ? -ENOMEM : fs_xattr_list(meta, buf, size, &len);
	free(meta);
	if (r < 0)
		fuse_reply_err(req, -r);
	else if (size == 0)
		fuse_reply_xattr(req, len);
	else
		fuse_reply_buf(req, buf, len);
	free(buf);
}

typedef struct fs_xattrChange {
	const char *name;
	const void *value;
	size_t size;
	int flags;
} fs_xattrChange;

static int fs_metaXattrFn(const char *meta, void *arg, char **out)
{
	fs_xattrChange *x = arg;
	char *nm = NULL;
	int r = fs_xattr_set(meta, x->name, x->value, x->size, x->flags, &nm);
	if (r < 0)
		return r;
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	*out = fs_meta_set_time(nm, "x-amz-meta-ctime", &now);
	free(nm);
	return *out ? 0 : -ENOMEM;
}

static void fs_opSetxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
			  size_t size, int flags)
{
	fs_ctx *m = fs_ctxOf(req);
	if (!fs_userXattr(name)) {
		fuse_reply_err(req, ENOTSUP);
		return;
	}
	fs_xattrChange x = { name, value ? value : "", size, flags };
	int r = fs_metaUpdate(m, fs_inode_from(m, ino), fs_metaXattrFn, &x, 0);
	fuse_reply_err(req, r < 0 ? -r : 0);
}

static void fs_opRemovexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	fs_ctx *m = fs_ctxOf(req);
	if (!fs_userXattr(name)) {
		fuse_reply_err(req, ENODATA);
		return;
	}
	fs_xattrChange x = { name, NULL, 0, 0 };
	int r = fs_metaUpdate(m, fs_inode_from(m, ino), fs_metaXattrFn, &x, 0);
	fuse_reply_err(req, r < 0 ? -r : 0);
}

/* ---- init ----------------------------------------------------------------------- */

static void fs_opInit(void *userdata, struct fuse_conn_info *conn)
{
	fs_ctx *m = userdata;
	if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC)
		conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
	if (conn->capable & FUSE_CAP_AUTO_INVAL_DATA)
		conn->want |= FUSE_CAP_AUTO_INVAL_DATA;
	conn->want &= ~(unsigned)FUSE_CAP_WRITEBACK_CACHE;
	/* readdirplus when the reader also stats the entries (ls -l, find): the
	 * listing carries the files' attributes, saving a lookup each */
	if (conn->capable & FUSE_CAP_READDIRPLUS)
		conn->want |= FUSE_CAP_READDIRPLUS | FUSE_CAP_READDIRPLUS_AUTO;
	else
		conn->want &= ~(unsigned)(FUSE_CAP_READDIRPLUS | FUSE_CAP_READDIRPLUS_AUTO);
	/* 1 MiB writes (the kernel's default is 128 KiB): a quarter of a chunk per
	 * request cuts the per-request cost of sequential writes */
	conn->max_write = 1u << 20;
	m->expire_only = (conn->capable & FUSE_CAP_EXPIRE_ONLY) != 0;
	m->timeout = m->expire_only ? FS_TIMEOUT_LONG : FS_TIMEOUT;
	if (m->debug)
		fprintf(stderr, "seglake mount: expire-only notifications %s\n",
			m->expire_only ? "supported" : "not supported");
}

const struct fuse_lowlevel_ops fs_ops = {
	.init = fs_opInit,
	.lookup = fs_opLookup,
	.forget = fs_opForget,
	.forget_multi = fs_opForgetMulti,
	.getattr = fs_opGetattr,
	.setattr = fs_opSetattr,
	.readlink = fs_opReadlink,
	.mknod = fs_opMknod,
	.mkdir = fs_opMkdir,
	.unlink = fs_opUnlink,
	.rmdir = fs_opRmdir,
	.symlink = fs_opSymlink,
	.rename = fs_opRename,
	.link = fs_opLink,
	.open = fs_opOpen,
	.read = fs_opRead,
	.write = fs_opWrite,
	.flush = fs_opFlush,
	.release = fs_opRelease,
	.fsync = fs_opFsync,
	.opendir = fs_opOpendir,
	.readdir = fs_opReaddir,
	.readdirplus = fs_opReaddirplus,
	.releasedir = fs_opReleasedir,
	.fsyncdir = fs_opFsyncdir,
	.statfs = fs_opStatfs,
	.setxattr = fs_opSetxattr,
	.getxattr = fs_opGetxattr,
	.listxattr = fs_opListxattr,
	.removexattr = fs_opRemovexattr,
	.create = fs_opCreate,
	.fallocate = fs_opFallocate,
	.copy_file_range = fs_opCopyFileRange,
};
