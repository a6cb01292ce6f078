/*
 * fs_inode.c - the inode table of the FUSE front end: maps kernel node ids to
 * (bucket, path, is_dir) with lookup counts and exact forget handling, and a
 * path index for lookups, renames and oplog invalidation. Holds no object
 * data and makes no core calls.
 */
#include "fs/fs_int.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

static uint64_t fs_hashName(const char *bucket, const char *path, int is_dir)
{
	uint64_t h = 1469598103934665603ull;
	for (const char *p = bucket ? bucket : ""; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ull;
	h = (h ^ 0xff) * 1099511628211ull;
	for (const char *p = path; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ull;
	return (h ^ (uint64_t)is_dir) * 1099511628211ull;
}

static int fs_sameBucket(const char *a, const char *b)
{
	if (!a || !b)
		return a == b;
	return strcmp(a, b) == 0;
}

static void fs_hashInsert(fs_ctx *m, fs_inode *in)
{
	size_t i = fs_hashName(in->bucket, in->path, in->is_dir) & (m->hsize - 1);
	in->hnext = m->htab[i];
	m->htab[i] = in;
	in->hashed = 1;
	m->hcount++;
}

static void fs_hashRemove(fs_ctx *m, fs_inode *in)
{
	if (!in->hashed)
		return;
	size_t i = fs_hashName(in->bucket, in->path, in->is_dir) & (m->hsize - 1);
	for (fs_inode **pp = &m->htab[i]; *pp; pp = &(*pp)->hnext) {
		if (*pp == in) {
			*pp = in->hnext;
			break;
		}
	}
	in->hnext = NULL;
	in->hashed = 0;
	m->hcount--;
}

static void fs_hashGrow(fs_ctx *m)
{
	size_t nsize = m->hsize * 2;
	fs_inode **nt = calloc(nsize, sizeof(*nt));
	if (!nt)
		return; /* keep the old table: longer chains, still correct */
	for (size_t i = 0; i < m->hsize; i++) {
		fs_inode *in = m->htab[i];
		while (in) {
			fs_inode *next = in->hnext;
			size_t j = fs_hashName(in->bucket, in->path, in->is_dir) & (nsize - 1);
			in->hnext = nt[j];
			nt[j] = in;
			in = next;
		}
	}
	free(m->htab);
	m->htab = nt;
	m->hsize = nsize;
}

/* st_ino is a hash of the name, so it stays the same when the kernel forgets
 * an idle inode and looks it up again (tar and git compare inode numbers
 * across time). Renamed inodes keep theirs while in use; a new name hashing
 * to one of those gets a counter value instead, so live inodes never share. */
static uint64_t fs_inoFor(fs_ctx *m, const char *bucket, const char *path, int is_dir)
{
	uint64_t h = fs_hashName(bucket, path, is_dir) & ~(1ull << 63);
	if (h < 2)
		h += 2;
	for (size_t i = 0; i < m->nmoved; i++)
		if (m->moved[i]->st_ino == h)
			return (1ull << 63) | m->next_ino++;
	return h;
}

static void fs_movedAdd(fs_ctx *m, fs_inode *in)
{
	if (in->moved)
		return;
	if (m->nmoved == m->capmoved) {
		size_t nc = m->capmoved ? m->capmoved * 2 : 16;
		fs_inode **na = realloc(m->moved, nc * sizeof(*na));
		if (!na)
			return;
		m->moved = na;
		m->capmoved = nc;
	}
	m->moved[m->nmoved++] = in;
	in->moved = 1;
}

static void fs_movedDel(fs_ctx *m, fs_inode *in)
{
	if (!in->moved)
		return;
	for (size_t i = 0; i < m->nmoved; i++) {
		if (m->moved[i] == in) {
			m->moved[i] = m->moved[--m->nmoved];
			break;
		}
	}
	in->moved = 0;
}

int fs_inode_table_init(fs_ctx *m)
{
	pthread_mutex_init(&m->ilock, NULL);
	m->hsize = 1024;
	m->htab = calloc(m->hsize, sizeof(*m->htab));
	if (!m->htab)
		return -ENOMEM;
	m->next_ino = 2;
	m->root.st_ino = 1;
	m->root.bucket = m->bucket;
	m->root.path = "";
	m->root.is_dir = 1;
	m->root.nlookup = 1;
	fs_hashInsert(m, &m->root);
	return 0;
}

static void fs_inodeFree(fs_inode *in)
{
	free(in->bucket);
	free(in->path);
	free(in);
}

/* Frees every inode, hashed or not: the kernel's references (an unlinked
 * file still open, a replaced name not yet forgotten) end with the session,
 * and the kernel need not send its forgets before the session ends. */
void fs_inode_table_free(fs_ctx *m)
{
	for (fs_inode *in = m->all, *next; in; in = next) {
		next = in->anext;
		if (in->data)
			fs_data_free(m, in->data);
		fs_inodeFree(in);
	}
	m->all = NULL;
	free(m->htab);
	m->htab = NULL;
	free(m->moved);
	m->moved = NULL;
	m->nmoved = m->capmoved = 0;
	pthread_mutex_destroy(&m->ilock);
}

fs_inode *fs_inode_from(fs_ctx *m, fuse_ino_t ino)
{
	if (ino == FUSE_ROOT_ID)
		return &m->root;
	return (fs_inode *)(uintptr_t)ino;
}

fuse_ino_t fs_inode_id(fs_ctx *m, fs_inode *in)
{
	if (in == &m->root)
		return FUSE_ROOT_ID;
	return (fuse_ino_t)(uintptr_t)in;
}

fs_inode *fs_inode_find_locked(fs_ctx *m, const char *bucket, const char *path, int is_dir)
{
	size_t i = fs_hashName(bucket, path, is_dir) & (m->hsize - 1);
	for (fs_inode *in = m->htab[i]; in; in = in->hnext)
		if (in->is_dir == is_dir && fs_sameBucket(in->bucket, bucket) &&
		    strcmp(in->path, path) == 0)
			return in;
	return NULL;
}

fs_inode *fs_inode_ref(fs_ctx *m, const char *bucket, const char *path, int is_dir)
{
	pthread_mutex_lock(&m->ilock);
	fs_inode *in = fs_inode_find_locked(m, bucket, path, is_dir);
	if (!in) {
		in = calloc(1, sizeof(*in));
		if (in) {
			in->bucket = bucket ? strdup(bucket) : NULL;
			in->path = strdup(path);
			if ((bucket && !in->bucket) || !in->path) {
				fs_inodeFree(in);
				in = NULL;
			}
		}
		if (in) {
			in->is_dir = is_dir;
			in->st_ino = fs_inoFor(m, bucket, path, is_dir);
			SL_DLIST_PUSH(m->all, in, aprev, anext);
			if (m->hcount * 2 > m->hsize)
				fs_hashGrow(m);
			fs_hashInsert(m, in);
		}
	}
	if (in)
		in->nlookup++;
	pthread_mutex_unlock(&m->ilock);
	return in;
}

static void fs_inodeMaybeFree(fs_ctx *m, fs_inode *in)
{
	if (in == &m->root || in->nlookup > 0 || in->nopen > 0)
		return;
	assert(in->data == NULL);
	fs_hashRemove(m, in);
	fs_movedDel(m, in);
	SL_DLIST_UNLINK(m->all, in, aprev, anext);
	fs_inodeFree(in);
}

void fs_inode_forget(fs_ctx *m, fs_inode *in, uint64_t n)
{
	pthread_mutex_lock(&m->ilock);
	in->nlookup = n > in->nlookup ? 0 : in->nlookup - n;
	fs_inodeMaybeFree(m, in);
	pthread_mutex_unlock(&m->ilock);
}

fs_data *fs_inode_open_data(fs_ctx *m, fs_inode *in, fs_data *fresh, int *took)
{
	pthread_mutex_lock(&m->ilock);
	*took = 0;
	if (!in->data && fresh) {
		in->data = fresh;
		*took = 1;
	}
	fs_data *d = in->data;
	if (d)
		in->nopen++;
	pthread_mutex_unlock(&m->ilock);
	return d;
}

fs_data *fs_inode_close_data(fs_ctx *m, fs_inode *in)
{
	fs_data *d = NULL;
	pthread_mutex_lock(&m->ilock);
	assert(in->nopen > 0);
	if (--in->nopen == 0) {
		d = in->data;
		in->data = NULL;
	}
	fs_inodeMaybeFree(m, in);
	pthread_mutex_unlock(&m->ilock);
	return d;
}

long fs_inode_pending(fs_ctx *m, const char *bucket, const char *path, int under, fs_inode ***out)
{
	*out = NULL;
	size_t plen = strlen(path), n = 0, cap = 0;
	long r = 0;
	pthread_mutex_lock(&m->ilock);
	for (size_t i = 0; i < m->hsize && r == 0; i++) {
		for (fs_inode *in = m->htab[i]; in && r == 0; in = in->hnext) {
			if (in->is_dir || !in->data || !atomic_load(&in->data->pending) ||
			    !fs_sameBucket(in->bucket, bucket))
				continue;
			if (under ? (plen &&
				     (strncmp(in->path, path, plen) != 0 || in->path[plen] != '/'))
				  : strcmp(in->path, path) != 0)
				continue;
			if (n == cap) {
				size_t nc = cap ? cap * 2 : 8;
				fs_inode **na = realloc(*out, nc * sizeof(*na));
				if (!na) {
					r = -ENOMEM;
					break;
				}
				*out = na;
				cap = nc;
			}
			in->nopen++; /* hold the data */
			(*out)[n++] = in;
		}
	}
	pthread_mutex_unlock(&m->ilock);
	if (r < 0) {
		for (size_t i = 0; i < n; i++)
			fs_data_free(m, fs_inode_close_data(m, (*out)[i]));
		free(*out);
		*out = NULL;
		return r;
	}
	return (long)n;
}

void fs_inode_each_data(fs_ctx *m, void (*fn)(fs_ctx *, fs_inode *, void *), void *arg)
{
	pthread_mutex_lock(&m->ilock);
	for (size_t i = 0; i < m->hsize; i++)
		for (fs_inode *in = m->htab[i]; in; in = in->hnext)
			if (in->data)
				fn(m, in, arg);
	pthread_mutex_unlock(&m->ilock);
}

int fs_inode_name(fs_ctx *m, fs_inode *in, fs_name *out)
{
	pthread_mutex_lock(&m->ilock);
	out->bucket = in->bucket ? strdup(in->bucket) : NULL;
	out->path = strdup(in->path);
	out->is_dir = in->is_dir;
	out->hashed = in->hashed;
	pthread_mutex_unlock(&m->ilock);
	if ((in->bucket && !out->bucket) || !out->path) {
		fs_name_clear(out);
		return -ENOMEM;
	}
	return 0;
}

void fs_name_clear(fs_name *n)
{
	free(n->bucket);
	free(n->path);
	n->bucket = n->path = NULL;
}

void fs_inode_unhash(fs_ctx *m, const char *bucket, const char *path, int is_dir)
{
	pthread_mutex_lock(&m->ilock);
	fs_inode *in = fs_inode_find_locked(m, bucket, path, is_dir);
	if (in && in != &m->root) {
		fs_hashRemove(m, in);
		fs_movedAdd(m, in); /* alive while open: keep its st_ino unique */
		fs_inodeMaybeFree(m, in);
	}
	pthread_mutex_unlock(&m->ilock);
}

/* Replaces in's path (under ilock); keeps it hashed under the new name. */
static void fs_inodeRepath(fs_ctx *m, fs_inode *in, char *npath)
{
	fs_hashRemove(m, in);
	free(in->path);
	in->path = npath;
	fs_movedAdd(m, in);
	fs_inode *old = fs_inode_find_locked(m, in->bucket, npath, in->is_dir);
	if (old) {
		fs_hashRemove(m, old); /* replaced: stays alive for the kernel, unreachable */
		fs_movedAdd(m, old);
	}
	fs_hashInsert(m, in);
}

void fs_inode_rename(fs_ctx *m, const char *bucket, const char *src, const char *dst, int is_dir)
{
	pthread_mutex_lock(&m->ilock);
	/* The destination name (of either type) no longer names what it did. */
	for (int d = 0; d < 2; d++) {
		fs_inode *old = fs_inode_find_locked(m, bucket, dst, d);
		if (old && old != &m->root) {
			fs_hashRemove(m, old);
			fs_movedAdd(m, old);
			fs_inodeMaybeFree(m, old);
		}
	}
	if (!is_dir) {
		fs_inode *in = fs_inode_find_locked(m, bucket, src, 0);
		char *np = strdup(dst);
		if (in && np)
			fs_inodeRepath(m, in, np);
		else
			free(np);
		pthread_mutex_unlock(&m->ilock);
		return;
	}
	/* A directory: every hashed inode at src or below moves. Collect first,
	 * since repathing changes the chains being walked. */
	size_t slen = strlen(src), cap = 16, n = 0;
	fs_inode **moved = malloc(cap * sizeof(*moved));
	for (size_t i = 0; moved && i < m->hsize; i++) {
		for (fs_inode *in = m->htab[i]; in; in = in->hnext) {
			if (in == &m->root || !fs_sameBucket(in->bucket, bucket))
				continue;
			if (strncmp(in->path, src, slen) != 0 ||
			    (in->path[slen] != '\0' && in->path[slen] != '/'))
				continue;
			if (n == cap) {
				fs_inode **nm = realloc(moved, cap * 2 * sizeof(*moved));
				if (!nm)
					break;
				moved = nm;
				cap *= 2;
			}
			moved[n++] = in;
		}
	}
	for (size_t i = 0; i < n; i++) {
		fs_inode *in = moved[i];
		size_t rest = strlen(in->path) - slen;
		char *np = malloc(strlen(dst) + rest + 1);
		if (!np) {
			fs_hashRemove(m, in); /* unreachable rather than wrong */
			continue;
		}
		memcpy(np, dst, strlen(dst));
		memcpy(np + strlen(dst), in->path + slen, rest + 1);
		fs_inodeRepath(m, in, np);
	}
	free(moved);
	pthread_mutex_unlock(&m->ilock);
}
