/*
 * fs_notify.c - keeps the kernel's caches coherent with changes made outside
 * this mount (S3, replication, another tool on the same core): a thread
 * follows the oplog and, for every entry this mount did not cause, expires
 * the kernel's dentries along the key's path and invalidates the attributes
 * and page cache of the inode it names. Not here: what an entry means for
 * storage; only names are looked at.
 */
#include "fs/fs_int.h"

#include <stdlib.h>
#include <string.h>

static void fs_notifyName(fs_ctx *m, fuse_ino_t parent, const char *name, size_t len)
{
	if (m->expire_only)
		fuse_lowlevel_notify_expire_entry(m->se, parent, name, len, FUSE_LL_EXPIRE_ONLY);
	else
		fuse_lowlevel_notify_inval_entry(m->se, parent, name, len);
}

/* Node id of a hashed inode, 0 if the kernel cannot know it. */
static fuse_ino_t fs_notifyFind(fs_ctx *m, const char *bucket, const char *path, int is_dir,
				int drop_cache)
{
	fuse_ino_t id = 0;
	pthread_mutex_lock(&m->ilock);
	fs_inode *in = fs_inode_find_locked(m, bucket, path, is_dir);
	if (in) {
		id = fs_inode_id(m, in);
		if (drop_cache)
			in->cache_hlc = 0;
	}
	pthread_mutex_unlock(&m->ilock);
	return id;
}

static void fs_notifyKey(fs_ctx *m, const char *bucket, const char *key)
{
	size_t kl = strlen(key);
	int is_dir = kl > 0 && key[kl - 1] == '/';
	char *path = strndup(key, is_dir ? kl - 1 : kl);
	if (!path)
		return;
	/* Every component: the kernel may hold a (negative) dentry for it. */
	size_t start = 0, len = strlen(path);
	while (start < len) {
		const char *slash = memchr(path + start, '/', len - start);
		size_t end = slash ? (size_t)(slash - path) : len;
		char save = path[start > 0 ? start - 1 : 0];
		if (start > 0)
			path[start - 1] = '\0';
		fuse_ino_t parent = fs_notifyFind(m, bucket, start > 0 ? path : "", 1, 0);
		if (start > 0)
			path[start - 1] = save;
		/* Without expire-only notifications, dropping a directory's dentry
		 * would detach the cwd of processes inside it: only the leaf then. */
		int leaf = end == len;
		if (parent && end > start && end - start <= 255 &&
		    (m->expire_only || (leaf && !is_dir)))
			fs_notifyName(m, parent, path + start, end - start);
		start = end + 1;
	}
	fuse_ino_t id = fs_notifyFind(m, bucket, path, is_dir, !is_dir);
	if (id)
		fuse_lowlevel_notify_inval_inode(m->se, id, is_dir ? -1 : 0, 0);
	free(path);
}

void fs_notify_key(fs_ctx *m, const char *bucket, const char *key)
{
	fs_notifyKey(m, bucket, key);
}

static void fs_notifyEntry(fs_ctx *m, const core_oplog_entry *e)
{
	if (!e->bucket)
		return;
	if (m->bucket && strcmp(e->bucket, m->bucket) != 0)
		return;
	if (!e->key) {
		if (!m->bucket)
			fs_notifyName(m, FUSE_ROOT_ID, e->bucket, strlen(e->bucket));
		return;
	}
	/* A replicated put may create its bucket: if the kernel knows no bucket
	 * inode, it may hold a negative entry for the name at the root. */
	if (!m->bucket && !fs_notifyFind(m, e->bucket, "", 1, 0))
		fs_notifyName(m, FUSE_ROOT_ID, e->bucket, strlen(e->bucket));
	fs_notifyKey(m, e->bucket, e->key);
}

void *fs_notify_main(void *arg)
{
	fs_ctx *m = arg;
	int64_t after = m->oplog_seen;
	while (!atomic_load(&m->stopping)) {
		int64_t head = core_oplog_wait(m->c, after, 1000);
		if (atomic_load(&m->stopping))
			break;
		while (head > after && !atomic_load(&m->stopping)) {
			core_oplog_entry *es = NULL;
			size_t n = 0;
			sl_err err;
			if (core_oplog_read(m->c, after, 256, &es, &n, &err) < 0 || n == 0) {
				core_oplog_free(es, n);
				break;
			}
			for (size_t i = 0; i < n; i++) {
				after = es[i].seq;
				if (strcmp(es[i].node, m->node) == 0 && es[i].bucket &&
				    fs_self_match(m, es[i].seq, es[i].bucket, es[i].key))
					continue;
				fs_notifyEntry(m, &es[i]);
			}
			core_oplog_free(es, n);
		}
	}
	return NULL;
}
