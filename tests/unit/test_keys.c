/*
 * test_keys.c - unit tests of auth/keys: create/list/get/disable/enable/
 * rotate/delete, the SigV4 lookup results, the root key import, that
 * meta.db holds no clear secret, the master key file (0600) and the
 * environment override, and that a wrong master key cannot decrypt.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth/keys.h"
#include "auth/sigv4.h"
#include "check.h"
#include "core/core.h"

/* 1 if needle occurs anywhere in the file (binary-safe). */
static int file_contains(const char *path, const char *needle)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return 0;
	size_t nl = strlen(needle), cap = 1 << 20, len = 0;
	char *buf = malloc(cap);
	int found = 0;
	for (;;) {
		size_t r = fread(buf + len, 1, cap - len, f);
		len += r;
		if (r == 0 || len == cap) {
			for (size_t i = 0; i + nl <= len && !found; i++)
				found = memcmp(buf + i, needle, nl) == 0;
			if (r == 0 || found)
				break;
			memmove(buf, buf + len - nl, nl);
			len = nl;
		}
	}
	free(buf);
	fclose(f);
	return found;
}

int main(void)
{
	unsetenv("SEGLAKE_MASTER_KEY");
	unsetenv("CREDENTIALS_DIRECTORY");
	char *dir = check_tmpdir();
	char data[4200], path[4300];
	snprintf(data, sizeof(data), "%s/d", dir);
	sl_err err = { 0 };
	CHECK(core_init(data, &err) == 0);
	core *c = NULL;
	CHECK(core_open(data, NULL, &c, &err) == 0);

	keys *k = NULL;
	CHECK(keys_open(data, &k, &err) == 0);
	CHECK(strcmp(keys_master_source(k), "") == 0); /* not needed yet */

	keys_info ki;
	char secret[KEYS_SECRET_MAX + 1], s2[KEYS_SECRET_MAX + 1];
	CHECK(keys_create(k, "app1", NULL, 0, &ki, secret, &err) == 0);
	CHECK(strlen(secret) == 40);
	CHECK(strncmp(ki.id, "SL", 2) == 0 && strlen(ki.id) == 20);
	CHECK(ki.enabled == 1 && ki.root == 0 && ki.policy == NULL);
	CHECK(strcmp(ki.name, "app1") == 0);
	CHECK(strcmp(keys_master_source(k), "file") == 0);
	char id[KEYS_ID_MAX + 1];
	snprintf(id, sizeof(id), "%s", ki.id);
	keys_info_clear(&ki);

	snprintf(path, sizeof(path), "%s/master.key", data);
	struct stat sb;
	CHECK(stat(path, &sb) == 0 && (sb.st_mode & 0777) == 0600 && sb.st_size == 65);

	/* lookup */
	char got[SIGV4_MAX_SECRET + 1];
	CHECK(keys_sigv4_lookup(k, id, got, sizeof(got)) == SIGV4_KEY_FOUND);
	CHECK(strcmp(got, secret) == 0);
	CHECK(keys_sigv4_lookup(k, "SLNOSUCHKEY", got, sizeof(got)) == SIGV4_KEY_NOT_FOUND);

	/* bad policy refused, good one stored */
	CHECK(keys_set_policy(k, id, "{\"Statement\":{}}", &err) == SL_EINVAL);
	CHECK(keys_create(k, "x", "{nope", 0, NULL, s2, &err) == SL_EINVAL);
	const char *pol = "{\"Statement\":{\"Effect\":\"Allow\",\"Action\":\"s3:GetObject\","
			  "\"Resource\":\"*\"}}";
	CHECK(keys_set_policy(k, id, pol, &err) == 0);
	CHECK(keys_get(k, id, &ki, &err) == 0 && ki.policy && strcmp(ki.policy, pol) == 0);
	keys_info_clear(&ki);
	CHECK(keys_set_policy(k, "SLNOSUCHKEY", pol, &err) == SL_ENOKEY);

	/* disable / enable */
	CHECK(keys_set_enabled(k, id, 0, &err) == 0);
	CHECK(keys_sigv4_lookup(k, id, got, sizeof(got)) == SIGV4_KEY_DISABLED);
	CHECK(keys_set_enabled(k, id, 1, &err) == 0);
	CHECK(keys_sigv4_lookup(k, id, got, sizeof(got)) == SIGV4_KEY_FOUND);

	/* rotate */
	CHECK(keys_rotate(k, id, s2, &err) == 0);
	CHECK(strcmp(s2, secret) != 0);
	CHECK(keys_sigv4_lookup(k, id, got, sizeof(got)) == SIGV4_KEY_FOUND && !strcmp(got, s2));

	/* root import from credentials, kept in sync, not deletable */
	snprintf(path, sizeof(path), "%s/credentials", data);
	FILE *f = fopen(path, "w");
	fprintf(f, "access_key = SLROOTKEY0001\nsecret_key = rootsecret-abc\n");
	fclose(f);
	int changed = -1;
	CHECK(keys_ensure_root(k, "SLROOTKEY0001", "rootsecret-abc", &changed, &err) == 0 &&
	      changed == 1);
	CHECK(keys_ensure_root(k, "SLROOTKEY0001", "rootsecret-abc", &changed, &err) == 0 &&
	      changed == 0);
	CHECK(keys_ensure_root(k, "SLROOTKEY0001", "rootsecret-new", &changed, &err) == 0 &&
	      changed == 1);
	CHECK(keys_sigv4_lookup(k, "SLROOTKEY0001", got, sizeof(got)) == SIGV4_KEY_FOUND &&
	      !strcmp(got, "rootsecret-new"));
	CHECK(keys_import(k, "SLROOTKEY0001", "x", 1, NULL, &err) == SL_EEXIST);
	CHECK(keys_import(k, "bad id!", "x", 0, NULL, &err) == SL_EINVAL);
	CHECK(keys_delete(k, "SLROOTKEY0001", &err) == SL_ENOTSUP);
	char rs[KEYS_SECRET_MAX + 1];
	CHECK(keys_rotate(k, "SLROOTKEY0001", rs, &err) == 0);
	CHECK(file_contains(path, rs)); /* credentials file follows the rotation */
	CHECK(stat(path, &sb) == 0 && (sb.st_mode & 0777) == 0600);

	/* list */
	keys_info *v = NULL;
	size_t n = 0;
	CHECK(keys_list(k, &v, &n, &err) == 0 && n == 2);
	CHECK(n == 2 && v[0].root != v[1].root);
	keys_list_free(v, n);

	/* meta.db (with its WAL) never holds a clear secret */
	keys_close(k);
	k = NULL;
	char db[4300], wal[4300];
	snprintf(db, sizeof(db), "%s/meta.db", data);
	snprintf(wal, sizeof(wal), "%s/meta.db-wal", data);
	CHECK(!file_contains(db, s2) && !file_contains(wal, s2));
	CHECK(!file_contains(db, rs) && !file_contains(wal, rs));
	CHECK(!file_contains(db, "rootsecret-new") && !file_contains(wal, "rootsecret-new"));
	CHECK(file_contains(db, id) || file_contains(wal, id)); /* the id itself is there */

	/* a wrong master key cannot open secrets; the right one from env can */
	setenv("SEGLAKE_MASTER_KEY",
	       "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff", 1);
	CHECK(keys_open(data, &k, &err) == 0);
	CHECK(keys_sigv4_lookup(k, id, got, sizeof(got)) == SIGV4_KEY_ERROR);
	CHECK(strcmp(keys_master_source(k), "env") == 0);
	keys_close(k);
	char hex[80] = { 0 };
	snprintf(path, sizeof(path), "%s/master.key", data);
	f = fopen(path, "r");
	CHECK(f && fgets(hex, sizeof(hex), f));
	if (f)
		fclose(f);
	hex[64] = '\0';
	setenv("SEGLAKE_MASTER_KEY", hex, 1);
	CHECK(keys_open(data, &k, &err) == 0);
	CHECK(keys_sigv4_lookup(k, id, got, sizeof(got)) == SIGV4_KEY_FOUND && !strcmp(got, s2));
	setenv("SEGLAKE_MASTER_KEY", "nothex", 1);
	keys_close(k);
	CHECK(keys_open(data, &k, &err) == 0);
	CHECK(keys_sigv4_lookup(k, id, got, sizeof(got)) == SIGV4_KEY_ERROR);
	unsetenv("SEGLAKE_MASTER_KEY");

	/* delete */
	CHECK(keys_delete(k, id, &err) == 0);
	CHECK(keys_delete(k, id, &err) == SL_ENOKEY);
	CHECK(keys_get(k, id, &ki, &err) == SL_ENOKEY);
	keys_close(k);

	/* not a data dir */
	CHECK(keys_open(dir, &k, &err) == SL_EINVAL);

	core_close(c);
	check_rmrf(dir);
	free(dir);
	return check_done("keys");
}
