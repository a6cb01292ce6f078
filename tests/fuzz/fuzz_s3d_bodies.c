/*
 * fuzz_s3d_bodies.c - libFuzzer target for the S3 daemon's parsers of
 * request parts that the handlers use as they are: the Range header
 * (s3d_parse_range) and the CompleteMultipartUpload, DeleteObjects and
 * VersioningConfiguration bodies (s3d_parse_complete, s3d_parse_delete,
 * s3d_parse_versioning).
 *
 * Input: selector byte, then for Range 8 bytes of object size and the header
 * text, for the bodies the XML document. Checks the parsers' contracts:
 * ranges lie inside the object and are well formed, parts ascend within
 * S3D_MAX_PARTS bounds, every deleted object has a key. Not here: HTTP.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "s3d/s3d_int.h"

static void fuzz_range(const uint8_t *d, size_t n)
{
	if (n < 8)
		return;
	uint64_t size = 0;
	memcpy(&size, d, 8);
	size %= (1ull << 43); /* objects up to 8 TiB */
	char *h = malloc(n - 8 + 1);
	if (!h)
		return;
	memcpy(h, d + 8, n - 8);
	h[n - 8] = '\0';
	s3d_range out[S3D_MAX_RANGES];
	int k = s3d_parse_range(h, size, out);
	if (k > S3D_MAX_RANGES || k < -1)
		__builtin_trap();
	for (int i = 0; i < k; i++)
		if (out[i].first > out[i].last || out[i].last >= size)
			__builtin_trap();
	free(h);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	const char *doc = (const char *)data + 1;
	size_t len = size - 1;
	switch (data[0] % 4) {
	case 0:
		fuzz_range(data + 1, len);
		break;
	case 1: {
		core_part *parts = NULL;
		size_t n = 0;
		if (s3d_parse_complete(doc, len, &parts, &n) == 0) {
			if (n == 0 || !parts)
				__builtin_trap();
			for (size_t i = 0; i < n; i++)
				if (parts[i].number < 1 || parts[i].number > 10000)
					__builtin_trap();
		}
		free(parts);
		break;
	}
	case 2: {
		s3d_del_list l = { 0 };
		if (s3d_parse_delete(doc, len, &l) == 0)
			for (size_t i = 0; i < l.n; i++)
				if (!l.objs[i].key)
					__builtin_trap();
		s3d_del_list_free(&l);
		break;
	}
	default: {
		char status[32];
		if (s3d_parse_versioning(doc, len, status) == 0 &&
		    !memchr(status, 0, sizeof(status)))
			__builtin_trap();
		break;
	}
	}
	return 0;
}
