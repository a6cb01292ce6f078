/*
 * fuzz_meta.c - libFuzzer target for core_meta_fields (core/core.c), the
 * reader of object metadata that FUSE listings and getattr use instead of
 * jansson: whatever it reads must be exactly what jansson gives, and it must
 * not read outside the string. Traps on any difference.
 *
 * Input: the metadata text (a NUL ends it early, as in the C string the
 * callers pass). Names looked up: fixed, including the empty name and a
 * prefix of another.
 * Not here: how the values become attributes (fs/fs_attr.c).
 */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const names[] = { "x-amz-meta-mode", "x-amz-meta-m", "content-type",
					     "", "a" };
	enum { N = sizeof(names) / sizeof(names[0]) };
	char *meta = malloc(size + 1);
	if (!meta)
		return 0;
	memcpy(meta, data, size);
	meta[size] = '\0';
	char vals[N][CORE_META_FIELD_MAX];
	unsigned found;
	if (core_meta_fields(meta, names, N, vals, &found)) {
		json_t *j = json_loads(meta, 0, NULL);
		if (!j || !json_is_object(j))
			__builtin_trap(); /* read what jansson refuses */
		for (size_t i = 0; i < N; i++) {
			const char *v = json_string_value(json_object_get(j, names[i]));
			int has = (found >> i) & 1;
			if (has != (v != NULL) || (v && strcmp(v, vals[i]) != 0))
				__builtin_trap(); /* read something else than jansson */
		}
		json_decref(j);
	}
	free(meta);
	return 0;
}
