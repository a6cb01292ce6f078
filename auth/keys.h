/*
 * keys.h - access keys: ids, secrets sealed at rest, enabled/disabled state,
 * the root flag and an identity policy per key, kept in the `keys` table of
 * DATA/meta.db (its own SQLite connections next to the core's).
 *
 * Secrets are encrypted with AES-256-GCM (random 96-bit nonce per secret,
 * the key id as associated data) under a master key that never enters
 * meta.db. The master key comes from, in order: $SEGLAKE_MASTER_KEY (64 hex
 * chars), $CREDENTIALS_DIRECTORY/seglake-master-key (systemd credential: 64
 * hex chars or 32 raw bytes), DATA/master.key (64 hex chars, mode 0600,
 * created the first time a secret is sealed). So a copy of meta.db alone
 * reveals no secret.
 *
 * Not here: policy grammar (policy.h), SigV4 (sigv4.h), the admin protocol.
 * Thread-safe: the daemon looks keys up from many request threads.
 */
#ifndef SL_AUTH_KEYS_H
#define SL_AUTH_KEYS_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

#define KEYS_ID_MAX 128
#define KEYS_SECRET_MAX 128
#define KEYS_NAME_MAX 128

typedef struct keys keys;

typedef struct keys_info {
	char id[KEYS_ID_MAX + 1];
	char name[KEYS_NAME_MAX + 1];
	int enabled;
	int root;     /* root keys are allowed everything */
	char *policy; /* identity policy JSON (malloc'd) or NULL: no access */
	int64_t created_ms, updated_ms;
} keys_info;

void keys_info_clear(keys_info *ki);

/* Opens the key store of data dir `dir` (whose meta.db the core has already
 * created and migrated). Does not read the master key yet. */
int keys_open(const char *dir, keys **out, sl_err *err);
void keys_close(keys *k);

/* Creates a key with a fresh id and secret. name may be NULL; policy NULL =
 * no access until one is attached (root keys need none). Validates the
 * policy. The secret (written into secret, KEYS_SECRET_MAX + 1 bytes) is
 * shown to the caller once and never stored in clear. */
int keys_create(keys *k, const char *name, const char *policy, int root, keys_info *out,
		char *secret, sl_err *err);
/* Stores a given id/secret (the root key from DATA/credentials).
 * SL_EEXIST if the id exists. */
int keys_import(keys *k, const char *id, const char *secret, int root, const char *name,
		sl_err *err);
/* Makes (id, secret) a root key: imported if new, secret updated and root
 * flag set if it differs. *changed (may be NULL) says if anything was written. */
int keys_ensure_root(keys *k, const char *id, const char *secret, int *changed, sl_err *err);

/* Reads DATA/credentials-style `access_key = ...` / `secret_key = ...`
 * lines ('#' comments) from path into id and secret (KEYS_*_MAX + 1
 * bytes). SL_ENOKEY if the file does not exist, SL_EINVAL if incomplete. */
int keys_credentials_read(const char *path, char *id, char *secret, sl_err *err);

/* SL_ENOKEY if the id is unknown. */
int keys_get(keys *k, const char *id, keys_info *out, sl_err *err);
/* Every key sorted by id; free with keys_list_free. */
int keys_list(keys *k, keys_info **out, size_t *n, sl_err *err);
void keys_list_free(keys_info *v, size_t n);

int keys_set_enabled(keys *k, const char *id, int enabled, sl_err *err);
/* Replaces the identity policy (validated); NULL removes it. */
int keys_set_policy(keys *k, const char *id, const char *policy, sl_err *err);
/* Root keys cannot be deleted (disable them instead): SL_ENOTSUP. */
int keys_delete(keys *k, const char *id, sl_err *err);
/* New secret for the key (old one stops working at once). If the key is
 * the root key of DATA/credentials, that file is rewritten too. */
int keys_rotate(keys *k, const char *id, char *secret, sl_err *err);

/* The clear secret of an id (for SigV4) plus its info (may be NULL).
 * SL_ENOKEY if unknown; disabled keys are returned with info->enabled = 0. */
int keys_secret(keys *k, const char *id, char *secret, size_t cap, keys_info *info, sl_err *err);

/* Copies from_dir/master.key to to_dir/master.key (mode 0600, not over an
 * existing file): snapshots carry the master key so a restore can decrypt
 * its keys. Returns 0 if copied, 1 if from_dir has no master.key. */
int keys_master_copy(const char *from_dir, const char *to_dir, sl_err *err);

/* A sigv4_lookup_fn over keys_secret (ctx is the keys *). */
int keys_sigv4_lookup(void *ctx, const char *access_key_id, char *secret, size_t cap);

/* Where the master key came from ("env", "credential", "file", or "" if
 * not loaded yet). */
const char *keys_master_source(keys *k);

#endif
