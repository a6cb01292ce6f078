/*
 * fuzz_s3d_headers.c - libFuzzer target for the S3 daemon's exported text
 * parsers of request header and URL bytes (s3d/util.c): percent-decoding of
 * paths and queries, HTTP dates (If-Modified-Since, ...), ETag lists
 * (If-Match, If-None-Match), decimal numbers (Content-Length, part numbers,
 * max-keys) and ETag unquoting.
 *
 * Input: any bytes; the first line is used as an ETag for the list match.
 * The Range header parser (s3d_parse_range in s3d/object.c) is static; once
 * exported it belongs here. Not here: XML bodies (fuzz_s3d_xml.c).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "s3d/s3d_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 16 * 1024)
		return 0;
	char *s = malloc(size + 1);
	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';

	for (int plus = 0; plus < 2; plus++) {
		char *d = s3d_url_decode(s, size, plus);
		if (d) {
			if (strlen(d) > size)
				__builtin_trap();
			char *e = s3d_url_encode(d);
			free(e);
			free(d);
		}
	}
	(void)s3d_parse_http_date(s);
	uint64_t v;
	if (s3d_parse_u64(s, &v) == 0 && size == 0)
		__builtin_trap();
	char et[72];
	s3d_etag_unquote(s, et, sizeof(et));
	if (memchr(et, '\0', sizeof(et)) == NULL)
		__builtin_trap();
	char *nl = memchr(s, '\n', size);
	const char *etag = "5d41402abc4b2a76b9719d911017c592";
	if (nl) {
		*nl = '\0';
		etag = s;
		(void)s3d_etag_list_match(nl + 1, etag);
	} else {
		(void)s3d_etag_list_match(s, etag);
	}
	free(s);
	return 0;
}
