/*
 * fuzz_s3d_xml.c - libFuzzer target for the S3 daemon's XML request body
 * parsing (s3d/xml.c, expat underneath) and the CORSConfiguration parser
 * (s3d/cors.c, through s3d_cors_validate).
 *
 * Input: one selector byte, then the XML document.
 *   selector even: s3d_cors_validate (the whole CORS parser and its checks)
 *   selector odd:  s3d_xml_parse with a callback that checks the path/depth
 *                  contract and, per selector bits, rejects at some element
 * The CompleteMultipartUpload, DeleteObjects and VersioningConfiguration
 * parsers and the Range header have their own target (fuzz_s3d_bodies.c).
 * Not here: HTTP handling.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "s3d/s3d_int.h"

typedef struct xml_check {
	int prev_depth;
	unsigned events;
	unsigned reject_at; /* 0: never */
} xml_check;

static int fuzz_xml_cb(void *ctx, int depth, const char *const *path, const char *text)
{
	xml_check *x = ctx;
	if (depth < 1 || depth > 64)
		__builtin_trap();
	/* path[0..depth-1] are readable strings; touch them all. */
	size_t total = 0;
	for (int i = 0; i < depth; i++)
		total += strlen(path[i]);
	if (text)
		total += strlen(text);
	(void)total;
	x->prev_depth = depth;
	x->events++;
	return x->reject_at && x->events >= x->reject_at;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > S3D_MAX_XML_BODY)
		return 0;
	/* The daemon hands over a malloc'd buffer of exactly the body length. */
	size_t n = size - 1;
	char *doc = malloc(n ? n : 1);
	if (!doc)
		return 0;
	memcpy(doc, data + 1, n);
	if (data[0] & 1) {
		xml_check x = { .reject_at = (unsigned)(data[0] >> 4) };
		(void)s3d_xml_parse(doc, n, fuzz_xml_cb, &x);
	} else {
		char msg[256];
		msg[0] = '\0';
		if (s3d_cors_validate(doc, n, msg, sizeof(msg)) != 0 &&
		    memchr(msg, '\0', sizeof(msg)) == NULL)
			__builtin_trap();
	}
	free(doc);
	return 0;
}
