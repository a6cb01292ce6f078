/*
 * keys.c - the access key store (see keys.h): the `keys` table of meta.db
 * through meta/'s connection helpers, secrets sealed with AES-256-GCM
 * (OpenSSL EVP) under the master key, which is loaded (or created) the
 * first time it is needed. Not here: policy evaluation, the CLI.
 */
#include "auth/keys.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "auth/policy.h"
#include "auth/sigv4.h"
#include "meta/meta.h"

#define KEYS_NONCE 12
#define KEYS_TAG 16

struct keys {
	char dir[4096];
	meta *md;
	pthread_mutex_t mu; /* guards the writer connection and the master key */
	unsigned char master[32];
	int have_master;
	char master_source[16];
};

static int64_t keys_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void keys_info_clear(keys_info *ki)
{
	if (!ki)
		return;
	free(ki->policy);
	memset(ki, 0, sizeof(*ki));
}

const char *keys_master_source(keys *k)
{
	return k->master_source;
}

/* ---- master key ------------------------------------------------------------ */

static int keys_hex32(const char *s, size_t len, unsigned char out[32])
{
	while (len && (s[len - 1] == '\n' || s[len - 1] == '\r' || s[len - 1] == ' '))
		len--;
	if (len != 64)
		return -1;
	for (size_t i = 0; i < 32; i++) {
		unsigned v = 0;
		for (int j = 0; j < 2; j++) {
			char ch = s[2 * i + (size_t)j];
			v <<= 4;
			if (ch >= '0' && ch <= '9')
				v |= (unsigned)(ch - '0');
			else if (ch >= 'a' && ch <= 'f')
				v |= (unsigned)(ch - 'a' + 10);
			else if (ch >= 'A' && ch <= 'F')
				v |= (unsigned)(ch - 'A' + 10);
			else
				return -1;
		}
		out[i] = (unsigned char)v;
	}
	return 0;
}

/* Reads a small file whole into buf; returns its length or -1 (errno set). */
static ssize_t keys_read_small(const char *path, char *buf, size_t cap)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	size_t got = 0;
	while (got < cap) {
		ssize_t r = read(fd, buf + got, cap - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	close(fd);
	return (ssize_t)got;
}

/* Loads the master key (k->mu held). create: make DATA/master.key if no
 * source has one. */
static int keys_master(keys *k, int create, sl_err *err)
{
	if (k->have_master)
		return 0;
	const char *env = getenv("SEGLAKE_MASTER_KEY");
	if (env && *env) {
		if (keys_hex32(env, strlen(env), k->master) != 0)
			return sl_err_set(err, SL_EINVAL,
					  "SEGLAKE_MASTER_KEY must be 64 hex characters");
		snprintf(k->master_source, sizeof(k->master_source), "env");
		k->have_master = 1;
		return 0;
	}
	char path[4200], buf[130];
	const char *cd = getenv("CREDENTIALS_DIRECTORY");
	if (cd && *cd) {
		snprintf(path, sizeof(path), "%s/seglake-master-key", cd);
		ssize_t n = keys_read_small(path, buf, sizeof(buf));
		if (n >= 0) {
			if (n == 32)
				memcpy(k->master, buf, 32);
			else if (keys_hex32(buf, (size_t)n, k->master) != 0)
				return sl_err_set(err, SL_EINVAL,
						  "%s: expected 64 hex characters or 32 bytes",
						  path);
			OPENSSL_cleanse(buf, sizeof(buf));
			snprintf(k->master_source, sizeof(k->master_source), "credential");
			k->have_master = 1;
			return 0;
		}
	}
	snprintf(path, sizeof(path), "%s/master.key", k->dir);
	ssize_t n = keys_read_small(path, buf, sizeof(buf));
	if (n >= 0) {
		int bad = keys_hex32(buf, (size_t)n, k->master) != 0;
		OPENSSL_cleanse(buf, sizeof(buf));
		if (bad)
			return sl_err_set(err, SL_ECORRUPT, "%s: expected 64 hex characters", path);
		snprintf(k->master_source, sizeof(k->master_source), "file");
		k->have_master = 1;
		return 0;
	}
	if (errno != ENOENT)
		return sl_err_set(err, SL_EIO, "cannot read %s: %s", path, strerror(errno));
	if (!create)
		return sl_err_set(err, SL_EINTERNAL,
				  "no master key (%s missing, SEGLAKE_MASTER_KEY unset): "
				  "stored secrets cannot be decrypted",
				  path);
	if (RAND_bytes(k->master, 32) != 1)
		return sl_err_set(err, SL_EINTERNAL, "no randomness for the master key");
	char hex[66];
	for (int i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", k->master[i]);
	hex[64] = '\n';
	char tmp[4300];
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	int ok = fd >= 0 && fchmod(fd, 0600) == 0 && write(fd, hex, 65) == 65 && fsync(fd) == 0;
	int e = errno;
	if (fd >= 0)
		close(fd);
	OPENSSL_cleanse(hex, sizeof(hex));
	/* link() fails if another process created it meanwhile: use theirs. */
	if (ok && link(tmp, path) != 0) {
		e = errno;
		ok = 0;
	}
	unlink(tmp);
	if (!ok) {
		OPENSSL_cleanse(k->master, 32);
		if (e == EEXIST)
			return keys_master(k, 0, err);
		return sl_err_set(err, SL_EIO, "cannot create %s: %s", path, strerror(e));
	}
	int dfd = open(k->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
	snprintf(k->master_source, sizeof(k->master_source), "file");
	k->have_master = 1;
	return 0;
}

/* nonce || ciphertext || tag into out (len(secret) + 28 bytes). */
static int keys_seal(keys *k, const char *id, const char *secret, unsigned char *out,
		     size_t *outlen, sl_err *err)
{
	int rc = keys_master(k, 1, err);
	if (rc < 0)
		return rc;
	size_t sl = strlen(secret);
	if (RAND_bytes(out, KEYS_NONCE) != 1)
		return sl_err_set(err, SL_EINTERNAL, "no randomness for a nonce");
	EVP_CIPHER_CTX *cx = EVP_CIPHER_CTX_new();
	int len = 0, ok = cx != NULL;
	ok = ok && EVP_EncryptInit_ex(cx, EVP_aes_256_gcm(), NULL, NULL, NULL) == 1;
	ok = ok && EVP_CIPHER_CTX_ctrl(cx, EVP_CTRL_GCM_SET_IVLEN, KEYS_NONCE, NULL) == 1;
	ok = ok && EVP_EncryptInit_ex(cx, NULL, NULL, k->master, out) == 1;
	ok = ok &&
	     EVP_EncryptUpdate(cx, NULL, &len, (const unsigned char *)id, (int)strlen(id)) == 1;
	ok = ok && EVP_EncryptUpdate(cx, out + KEYS_NONCE, &len, (const unsigned char *)secret,
				     (int)sl) == 1;
	int fin = 0;
	ok = ok && EVP_EncryptFinal_ex(cx, out + KEYS_NONCE + len, &fin) == 1;
	ok = ok && EVP_CIPHER_CTX_ctrl(cx, EVP_CTRL_GCM_GET_TAG, KEYS_TAG,
				       out + KEYS_NONCE + len + fin) == 1;
	EVP_CIPHER_CTX_free(cx);
	if (!ok)
		return sl_err_set(err, SL_EINTERNAL, "secret encryption failed");
	*outlen = KEYS_NONCE + (size_t)len + (size_t)fin + KEYS_TAG;
	return 0;
}

static int keys_open_sealed(keys *k, const char *id, const unsigned char *in, size_t inlen,
			    char *secret, size_t cap, sl_err *err)
{
	int rc = keys_master(k, 0, err);
	if (rc < 0)
		return rc;
	if (inlen < KEYS_NONCE + KEYS_TAG || inlen - KEYS_NONCE - KEYS_TAG >= cap)
		return sl_err_set(err, SL_ECORRUPT, "sealed secret of key %s has a bad length", id);
	size_t ctlen = inlen - KEYS_NONCE - KEYS_TAG;
	EVP_CIPHER_CTX *cx = EVP_CIPHER_CTX_new();
	int len = 0, fin = 0, ok = cx != NULL;
	ok = ok && EVP_DecryptInit_ex(cx, EVP_aes_256_gcm(), NULL, NULL, NULL) == 1;
	ok = ok && EVP_CIPHER_CTX_ctrl(cx, EVP_CTRL_GCM_SET_IVLEN, KEYS_NONCE, NULL) == 1;
	ok = ok && EVP_DecryptInit_ex(cx, NULL, NULL, k->master, in) == 1;
	ok = ok &&
	     EVP_DecryptUpdate(cx, NULL, &len, (const unsigned char *)id, (int)strlen(id)) == 1;
	ok = ok &&
	     EVP_DecryptUpdate(cx, (unsigned char *)secret, &len, in + KEYS_NONCE, (int)ctlen) == 1;
	ok = ok && EVP_CIPHER_CTX_ctrl(cx, EVP_CTRL_GCM_SET_TAG, KEYS_TAG,
				       (void *)(in + KEYS_NONCE + ctlen)) == 1;
	ok = ok && EVP_DecryptFinal_ex(cx, (unsigned char *)secret + len, &fin) == 1;
	EVP_CIPHER_CTX_free(cx);
	if (!ok) {
		OPENSSL_cleanse(secret, cap);
		return sl_err_set(err, SL_ECORRUPT,
				  "cannot decrypt the secret of key %s (wrong master key?)", id);
	}
	secret[len + fin] = '\0';
	return 0;
}

/* ---- ids and secrets --------------------------------------------------------- */

static int keys_random(char *out, size_t n, const char *alphabet)
{
	size_t an = strlen(alphabet);
	unsigned char rnd[128];
	if (n > sizeof(rnd) || RAND_bytes(rnd, (int)n) != 1)
		return -1;
	for (size_t i = 0; i < n; i++)
		out[i] = alphabet[rnd[i] % an]; /* 256 % 32 == 0, 256 % 64 == 0: unbiased */
	out[n] = '\0';
	OPENSSL_cleanse(rnd, sizeof(rnd));
	return 0;
}

static int keys_new_secret(char *secret)
{
	return keys_random(secret, 40,
			   "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/");
}

static int keys_id_valid(const char *id)
{
	size_t n = strlen(id);
	if (n < 3 || n > KEYS_ID_MAX)
		return 0;
	for (const char *p = id; *p; p++)
		if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
		      (*p >= '0' && *p <= '9') || *p == '_' || *p == '-' || *p == '.'))
			return 0;
	return 1;
}

/* ---- store --------------------------------------------------------------------- */

int keys_open(const char *dir, keys **out, sl_err *err)
{
	keys *k = calloc(1, sizeof(*k));
	if (!k)
		return sl_err_set(err, SL_ENOMEM, "out of memory");
	if (strlen(dir) >= sizeof(k->dir) - 32) {
		free(k);
		return sl_err_set(err, SL_EINVAL, "data dir path too long");
	}
	snprintf(k->dir, sizeof(k->dir), "%s", dir);
	pthread_mutex_init(&k->mu, NULL);
	char path[4200];
	snprintf(path, sizeof(path), "%s/meta.db", dir);
	struct stat sb;
	if (stat(path, &sb) != 0) {
		pthread_mutex_destroy(&k->mu);
		free(k);
		return sl_err_set(err, SL_EINVAL, "%s is not a seglake data dir (no meta.db)", dir);
	}
	int rc = meta_open(path, 4, &k->md, err);
	if (rc < 0) {
		pthread_mutex_destroy(&k->mu);
		free(k);
		return rc;
	}
	*out = k;
	return 0;
}

void keys_close(keys *k)
{
	if (!k)
		return;
	meta_close(k->md);
	OPENSSL_cleanse(k->master, sizeof(k->master));
	pthread_mutex_destroy(&k->mu);
	free(k);
}

/* Inserts a row (k->mu held). */
static int keys_insert(keys *k, const char *id, const char *name, const char *secret,
		       const char *policy, int root, sl_err *err)
{
	unsigned char blob[KEYS_SECRET_MAX + KEYS_NONCE + KEYS_TAG + 16];
	size_t bl = 0;
	if (strlen(secret) > KEYS_SECRET_MAX || !*secret)
		return sl_err_set(err, SL_EINVAL, "secret must be 1..%d characters",
				  KEYS_SECRET_MAX);
	int rc = keys_seal(k, id, secret, blob, &bl, err);
	if (rc < 0)
		return rc;
	meta_conn *w = meta_writer(k->md);
	sqlite3_stmt *st = meta_stmt(w,
				     "INSERT INTO keys(id, name, secret, enabled, root, policy,"
				     " created_ms, updated_ms) VALUES(?1, ?2, ?3, 1, ?4, ?5, ?6, "
				     "?6)",
				     err);
	if (!st)
		return err ? err->code : SL_EIO;
	int64_t now = keys_now_ms();
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, name ? name : "", -1, SQLITE_STATIC);
	sqlite3_bind_blob(st, 3, blob, (int)bl, SQLITE_STATIC);
	sqlite3_bind_int(st, 4, root ? 1 : 0);
	if (policy)
		sqlite3_bind_text(st, 5, policy, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, 5);
	sqlite3_bind_int64(st, 6, now);
	int r = sqlite3_step(st);
	sqlite3_reset(st);
	if (r == SQLITE_CONSTRAINT_PRIMARYKEY || (r & 0xff) == SQLITE_CONSTRAINT)
		return sl_err_set(err, SL_EEXIST, "key %s already exists", id);
	if (r != SQLITE_DONE)
		return meta_fail(w, "insert key", err);
	return 0;
}

static int keys_check_name_policy(const char *name, const char *pol, sl_err *err)
{
	if (name && strlen(name) > KEYS_NAME_MAX)
		return sl_err_set(err, SL_EINVAL, "key name longer than %d bytes", KEYS_NAME_MAX);
	if (pol) {
		policy *p = NULL;
		int rc = policy_parse(pol, NULL, &p, err);
		policy_free(p);
		if (rc < 0)
			return rc;
	}
	return 0;
}

int keys_create(keys *k, const char *name, const char *policy, int root, keys_info *out,
		char *secret, sl_err *err)
{
	int rc = keys_check_name_policy(name, policy, err);
	if (rc < 0)
		return rc;
	char id[24];
	memcpy(id, "SL", 2);
	if (keys_random(id + 2, 18, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567") != 0 ||
	    keys_new_secret(secret) != 0)
		return sl_err_set(err, SL_EINTERNAL, "no randomness for a key");
	pthread_mutex_lock(&k->mu);
	rc = keys_insert(k, id, name, secret, policy, root, err);
	pthread_mutex_unlock(&k->mu);
	if (rc < 0) {
		OPENSSL_cleanse(secret, KEYS_SECRET_MAX + 1);
		return rc;
	}
	return out ? keys_get(k, id, out, err) : 0;
}

int keys_import(keys *k, const char *id, const char *secret, int root, const char *name,
		sl_err *err)
{
	if (!keys_id_valid(id))
		return sl_err_set(err, SL_EINVAL,
				  "invalid access key id '%s' (3-128 of A-Z a-z 0-9 _ - .)", id);
	int rc = keys_check_name_policy(name, NULL, err);
	if (rc < 0)
		return rc;
	pthread_mutex_lock(&k->mu);
	rc = keys_insert(k, id, name, secret, NULL, root, err);
	pthread_mutex_unlock(&k->mu);
	return rc;
}

/* Reads one row; sealed secret copied into blob if asked. */
static int keys_row(sqlite3_stmt *st, keys_info *out)
{
	memset(out, 0, sizeof(*out));
	snprintf(out->id, sizeof(out->id), "%s", (const char *)sqlite3_column_text(st, 0));
	const unsigned char *nm = sqlite3_column_text(st, 1);
	snprintf(out->name, sizeof(out->name), "%s", nm ? (const char *)nm : "");
	out->enabled = sqlite3_column_int(st, 2);
	out->root = sqlite3_column_int(st, 3);
	const unsigned char *pol = sqlite3_column_text(st, 4);
	if (pol && !(out->policy = strdup((const char *)pol)))
		return SL_ENOMEM;
	out->created_ms = sqlite3_column_int64(st, 5);
	out->updated_ms = sqlite3_column_int64(st, 6);
	return 0;
}

#define KEYS_COLS "id, name, enabled, root, policy, created_ms, updated_ms, secret"

int keys_secret(keys *k, const char *id, char *secret, size_t cap, keys_info *info, sl_err *err)
{
	keys_info tmp;
	if (info)
		memset(info, 0, sizeof(*info));
	meta_conn *c = meta_reader(k->md);
	sqlite3_stmt *st = meta_stmt(c, "SELECT " KEYS_COLS " FROM keys WHERE id=?1", err);
	if (!st) {
		meta_reader_release(k->md, c);
		return err ? err->code : SL_EIO;
	}
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	int r = sqlite3_step(st), rc = 0;
	unsigned char blob[KEYS_SECRET_MAX + KEYS_NONCE + KEYS_TAG + 16];
	size_t bl = 0;
	if (r == SQLITE_ROW) {
		rc = keys_row(st, info ? info : &tmp);
		bl = (size_t)sqlite3_column_bytes(st, 7);
		if (rc == 0 && bl <= sizeof(blob))
			memcpy(blob, sqlite3_column_blob(st, 7), bl);
		else if (rc == 0)
			rc = sl_err_set(err, SL_ECORRUPT, "sealed secret of key %s too long", id);
		if (!info)
			keys_info_clear(&tmp);
	} else if (r == SQLITE_DONE) {
		rc = sl_err_set(err, SL_ENOKEY, "no such key: %s", id);
	} else {
		rc = meta_fail(c, "read key", err);
	}
	sqlite3_reset(st);
	meta_reader_release(k->md, c);
	if (rc < 0) {
		if (info)
			keys_info_clear(info);
		return rc;
	}
	if (!secret)
		return 0;
	pthread_mutex_lock(&k->mu);
	rc = keys_open_sealed(k, id, blob, bl, secret, cap, err);
	pthread_mutex_unlock(&k->mu);
	OPENSSL_cleanse(blob, sizeof(blob));
	if (rc < 0 && info)
		keys_info_clear(info);
	return rc;
}

int keys_get(keys *k, const char *id, keys_info *out, sl_err *err)
{
	return keys_secret(k, id, NULL, 0, out, err);
}

int keys_list(keys *k, keys_info **out, size_t *n, sl_err *err)
{
	*out = NULL;
	*n = 0;
	meta_conn *c = meta_reader(k->md);
	sqlite3_stmt *st = meta_stmt(c, "SELECT " KEYS_COLS " FROM keys ORDER BY id", err);
	if (!st) {
		meta_reader_release(k->md, c);
		return err ? err->code : SL_EIO;
	}
	int r, rc = 0;
	size_t cap = 0;
	while ((r = sqlite3_step(st)) == SQLITE_ROW) {
		if (*n == cap) {
			cap = cap ? cap * 2 : 16;
			keys_info *v = realloc(*out, cap * sizeof(*v));
			if (!v) {
				rc = sl_err_set(err, SL_ENOMEM, "out of memory");
				break;
			}
			*out = v;
		}
		if (keys_row(st, &(*out)[*n]) != 0) {
			rc = sl_err_set(err, SL_ENOMEM, "out of memory");
			break;
		}
		(*n)++;
	}
	if (rc == 0 && r != SQLITE_DONE)
		rc = meta_fail(c, "list keys", err);
	sqlite3_reset(st);
	meta_reader_release(k->md, c);
	if (rc < 0) {
		keys_list_free(*out, *n);
		*out = NULL;
		*n = 0;
	}
	return rc;
}

void keys_list_free(keys_info *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		keys_info_clear(&v[i]);
	free(v);
}

/* Runs an UPDATE/DELETE on one id; SL_ENOKEY if no row changed. */
static int keys_update(keys *k, const char *sql, const char *id, int ival, const char *sval,
		       const void *blob, size_t bl, sl_err *err)
{
	meta_conn *w = meta_writer(k->md);
	sqlite3_stmt *st = meta_stmt(w, sql, err);
	if (!st)
		return err ? err->code : SL_EIO;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, keys_now_ms());
	if (sqlite3_bind_parameter_count(st) >= 3) {
		if (blob)
			sqlite3_bind_blob(st, 3, blob, (int)bl, SQLITE_STATIC);
		else if (sval)
			sqlite3_bind_text(st, 3, sval, -1, SQLITE_STATIC);
		else if (ival >= 0)
			sqlite3_bind_int(st, 3, ival);
		else
			sqlite3_bind_null(st, 3);
	}
	int rc = meta_done(w, st, err);
	if (rc == 0 && sqlite3_changes(meta_db(w)) == 0)
		rc = sl_err_set(err, SL_ENOKEY, "no such key: %s", id);
	return rc;
}

int keys_set_enabled(keys *k, const char *id, int enabled, sl_err *err)
{
	pthread_mutex_lock(&k->mu);
	int rc = keys_update(k, "UPDATE keys SET updated_ms=?2, enabled=?3 WHERE id=?1", id,
			     enabled ? 1 : 0, NULL, NULL, 0, err);
	pthread_mutex_unlock(&k->mu);
	return rc;
}

int keys_set_policy(keys *k, const char *id, const char *policy, sl_err *err)
{
	int rc = keys_check_name_policy(NULL, policy, err);
	if (rc < 0)
		return rc;
	pthread_mutex_lock(&k->mu);
	rc = keys_update(k, "UPDATE keys SET updated_ms=?2, policy=?3 WHERE id=?1", id, -1, policy,
			 NULL, 0, err);
	pthread_mutex_unlock(&k->mu);
	return rc;
}

int keys_delete(keys *k, const char *id, sl_err *err)
{
	keys_info ki;
	int rc = keys_get(k, id, &ki, err);
	if (rc < 0)
		return rc;
	int root = ki.root;
	keys_info_clear(&ki);
	if (root)
		return sl_err_set(err, SL_ENOTSUP,
				  "%s is a root key: it cannot be deleted (disable it instead)",
				  id);
	pthread_mutex_lock(&k->mu);
	rc = keys_update(k, "DELETE FROM keys WHERE id=?1 AND ?2 IS NOT NULL", id, 0, NULL, NULL, 0,
			 err);
	pthread_mutex_unlock(&k->mu);
	return rc;
}

static char *keys_trim(char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	size_t n = strlen(s);
	while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n'))
		s[--n] = '\0';
	return s;
}

int keys_credentials_read(const char *path, char *id, char *secret, sl_err *err)
{
	char buf[2048];
	ssize_t n = keys_read_small(path, buf, sizeof(buf) - 1);
	if (n < 0)
		return errno == ENOENT ? SL_ENOKEY
				       : sl_err_set(err, SL_EIO, "cannot read %s: %s", path,
						    strerror(errno));
	buf[n] = '\0';
	id[0] = secret[0] = '\0';
	char *save = NULL;
	for (char *line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *t = keys_trim(line);
		char *eq = strchr(t, '=');
		if (!*t || *t == '#' || !eq)
			continue;
		*eq = '\0';
		char *name = keys_trim(t), *val = keys_trim(eq + 1);
		if (strcmp(name, "access_key") == 0 && strlen(val) <= KEYS_ID_MAX)
			strcpy(id, val);
		else if (strcmp(name, "secret_key") == 0 && strlen(val) <= KEYS_SECRET_MAX)
			strcpy(secret, val);
	}
	OPENSSL_cleanse(buf, sizeof(buf));
	if (!id[0] || !secret[0])
		return sl_err_set(err, SL_EINVAL, "%s lacks access_key or secret_key", path);
	return 0;
}

/* Rewrites DATA/credentials if it holds this access key. */
static int keys_rewrite_credentials(keys *k, const char *id, const char *secret, sl_err *err)
{
	char path[4200], tmp[4300], buf[1024];
	snprintf(path, sizeof(path), "%s/credentials", k->dir);
	ssize_t n = keys_read_small(path, buf, sizeof(buf) - 1);
	if (n < 0)
		return 0;
	buf[n] = '\0';
	int ours = 0;
	for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
		char *eq = strchr(line, '=');
		if (!eq || strncmp(line, "access_key", 10) != 0)
			continue;
		char *v = eq + 1;
		while (*v == ' ' || *v == '\t')
			v++;
		size_t vl = strlen(v);
		while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\r'))
			v[--vl] = '\0';
		ours = strcmp(v, id) == 0;
	}
	OPENSSL_cleanse(buf, sizeof(buf));
	if (!ours)
		return 0;
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return sl_err_set(err, SL_EIO, "cannot write %s: %s", tmp, strerror(errno));
	int len = snprintf(buf, sizeof(buf),
			   "# Seglake root credentials (rotated with `seglake key rotate`). Keep "
			   "private.\n"
			   "access_key = %s\nsecret_key = %s\n",
			   id, secret);
	int ok = fchmod(fd, 0600) == 0 && write(fd, buf, (size_t)len) == len && fsync(fd) == 0;
	close(fd);
	OPENSSL_cleanse(buf, sizeof(buf));
	if (!ok || rename(tmp, path) != 0) {
		unlink(tmp);
		return sl_err_set(err, SL_EIO, "cannot rewrite %s: %s", path, strerror(errno));
	}
	return 0;
}

int keys_rotate(keys *k, const char *id, char *secret, sl_err *err)
{
	keys_info ki;
	int rc = keys_get(k, id, &ki, err);
	if (rc < 0)
		return rc;
	int root = ki.root;
	keys_info_clear(&ki);
	if (keys_new_secret(secret) != 0)
		return sl_err_set(err, SL_EINTERNAL, "no randomness for a secret");
	unsigned char blob[KEYS_SECRET_MAX + KEYS_NONCE + KEYS_TAG + 16];
	size_t bl = 0;
	pthread_mutex_lock(&k->mu);
	rc = keys_seal(k, id, secret, blob, &bl, err);
	if (rc == 0)
		rc = keys_update(k, "UPDATE keys SET updated_ms=?2, secret=?3 WHERE id=?1", id, -1,
				 NULL, blob, bl, err);
	pthread_mutex_unlock(&k->mu);
	if (rc == 0 && root)
		rc = keys_rewrite_credentials(k, id, secret, err);
	if (rc < 0)
		OPENSSL_cleanse(secret, KEYS_SECRET_MAX + 1);
	return rc;
}

int keys_ensure_root(keys *k, const char *id, const char *secret, int *changed, sl_err *err)
{
	if (changed)
		*changed = 0;
	char cur[KEYS_SECRET_MAX + 1];
	keys_info ki;
	int rc = keys_secret(k, id, cur, sizeof(cur), &ki, err);
	if (rc == SL_ENOKEY) {
		rc = keys_import(k, id, secret, 1, "root", err);
		if (rc == 0 && changed)
			*changed = 1;
		return rc;
	}
	if (rc < 0)
		return rc;
	int same = strcmp(cur, secret) == 0 && ki.root;
	keys_info_clear(&ki);
	OPENSSL_cleanse(cur, sizeof(cur));
	if (same)
		return 0;
	unsigned char blob[KEYS_SECRET_MAX + KEYS_NONCE + KEYS_TAG + 16];
	size_t bl = 0;
	if (strlen(secret) > KEYS_SECRET_MAX || !*secret)
		return sl_err_set(err, SL_EINVAL, "secret must be 1..%d characters",
				  KEYS_SECRET_MAX);
	pthread_mutex_lock(&k->mu);
	rc = keys_seal(k, id, secret, blob, &bl, err);
	if (rc == 0)
		rc = keys_update(k, "UPDATE keys SET updated_ms=?2, root=1, secret=?3 WHERE id=?1",
				 id, -1, NULL, blob, bl, err);
	pthread_mutex_unlock(&k->mu);
	if (rc == 0 && changed)
		*changed = 1;
	return rc;
}

int keys_master_copy(const char *from_dir, const char *to_dir, sl_err *err)
{
	char src[4200], dst[4200], buf[130];
	snprintf(src, sizeof(src), "%s/master.key", from_dir);
	snprintf(dst, sizeof(dst), "%s/master.key", to_dir);
	ssize_t n = keys_read_small(src, buf, sizeof(buf));
	if (n < 0)
		return errno == ENOENT ? 1
				       : sl_err_set(err, SL_EIO, "cannot read %s: %s", src,
						    strerror(errno));
	int fd = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	int ok = fd >= 0 && write(fd, buf, (size_t)n) == n && fsync(fd) == 0;
	int e = errno;
	if (fd >= 0)
		close(fd);
	OPENSSL_cleanse(buf, sizeof(buf));
	if (!ok) {
		if (fd >= 0)
			unlink(dst);
		return sl_err_set(err, SL_EIO, "cannot write %s: %s", dst, strerror(e));
	}
	return 0;
}

int keys_sigv4_lookup(void *ctx, const char *access_key_id, char *secret, size_t cap)
{
	keys *k = ctx;
	keys_info ki;
	sl_err err = { 0 };
	int rc = keys_secret(k, access_key_id, secret, cap, &ki, &err);
	if (rc == SL_ENOKEY)
		return SIGV4_KEY_NOT_FOUND;
	if (rc < 0)
		return SIGV4_KEY_ERROR;
	int enabled = ki.enabled;
	keys_info_clear(&ki);
	if (!enabled) {
		OPENSSL_cleanse(secret, cap);
		return SIGV4_KEY_DISABLED;
	}
	return SIGV4_KEY_FOUND;
}
