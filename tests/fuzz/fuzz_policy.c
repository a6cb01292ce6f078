/*
 * fuzz_policy.c - libFuzzer target for the policy JSON parser and evaluator
 * (auth/policy.c): policy_parse as an identity or a bucket policy, then
 * policy_eval / policy_decide against a fixed set of requests (object and
 * bucket actions, anonymous and keyed principals, IPv4/IPv6 sources, TLS or
 * not, list prefixes).
 *
 * Input: one flag byte (bit 0: bucket policy for bucket "photos", else an
 * identity policy), then the JSON document.
 * SEGLAKE_FUZZ_DEBUG=1 prints each result.
 * Not here: mapping HTTP requests to actions (s3d/), key storage.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/policy.h"
#include "common/err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > POLICY_MAX_BYTES + 1)
		return 0;
	char *json = malloc(size);
	if (!json)
		return 0;
	memcpy(json, data + 1, size - 1);
	json[size - 1] = '\0';
	const char *bucket = (data[0] & 1) ? "photos" : NULL;
	policy *p = NULL;
	sl_err err = { 0 };
	int rc = policy_parse(json, bucket, &p, &err);
	if (getenv("SEGLAKE_FUZZ_DEBUG"))
		fprintf(stderr, "policy: rc %d: %s\n", rc, rc < 0 ? err.msg : "ok");
	if (rc == 0) {
		if (!p)
			__builtin_trap();
		char arn_obj[256], arn_bkt[256];
		if (policy_arn("photos", "a/hello.txt", arn_obj, sizeof(arn_obj)) < 0 ||
		    policy_arn("photos", NULL, arn_bkt, sizeof(arn_bkt)) < 0)
			__builtin_trap();
		const policy_ctx ctxs[] = {
			{ .action = "s3:GetObject",
			  .resource = arn_obj,
			  .principal = "AKIAIOSFODNN7EXAMPLE",
			  .source_ip = "10.1.2.3",
			  .now = 1700000000 },
			{ .action = "s3:PutObject",
			  .resource = arn_obj,
			  .principal = NULL,
			  .source_ip = "2001:db8::1",
			  .secure_transport = 1,
			  .now = 1700000000 },
			{ .action = "s3:ListBucket",
			  .resource = arn_bkt,
			  .principal = "",
			  .source_ip = "192.168.0.10",
			  .now = 0,
			  .prefix = "a/",
			  .delimiter = "/" },
			{ .action = "s3:DeleteObject",
			  .resource = arn_obj,
			  .principal = "other",
			  .source_ip = NULL,
			  .now = 4102444800 },
			{ .action = "seglake:ReplicationRead",
			  .resource = "*",
			  .principal = "peer",
			  .source_ip = "::ffff:10.0.0.1",
			  .now = 1700000000 },
		};
		for (size_t i = 0; i < sizeof(ctxs) / sizeof(ctxs[0]); i++) {
			int r = policy_eval(p, &ctxs[i]);
			if (r != POLICY_NONE && r != POLICY_ALLOW && r != POLICY_DENY)
				__builtin_trap();
			r = policy_decide(0, bucket ? NULL : p, bucket ? p : NULL, &ctxs[i]);
			if (r != POLICY_NONE && r != POLICY_ALLOW && r != POLICY_DENY)
				__builtin_trap();
		}
		policy_free(p);
	}
	(void)policy_action_known(json);
	free(json);
	return 0;
}
