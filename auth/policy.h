/*
 * policy.h - access policies: the subset of the AWS IAM/S3 policy grammar
 * that Seglake understands, parsed from JSON and evaluated per request.
 *
 * Two kinds: identity policies (attached to an access key, no Principal) and
 * bucket policies (stored as the bucket's "policy" config document, with a
 * Principal in every statement). Grammar accepted:
 *
 *   { "Version": "2012-10-17" | "2008-10-17", "Id": "...",
 *     "Statement": [ { "Sid": "...", "Effect": "Allow" | "Deny",
 *                      "Principal": "*" | {"AWS": "*" | KEYID | [..]},  (bucket policies)
 *                      "Action": "s3:GetObject" | "s3:Get*" | "*" | [..],
 *                      "Resource": "arn:aws:s3:::bucket/prefix*" | "*" | [..],
 *                      "Condition": { OPERATOR: { KEY: VALUE | [..] } } } ] }
 *
 * Operators: IpAddress / NotIpAddress (aws:SourceIp, CIDR v4/v6), Bool
 * (aws:SecureTransport), DateGreaterThan / DateLessThan (aws:CurrentTime,
 * ISO 8601 or epoch seconds), StringEquals / StringNotEquals / StringLike /
 * StringNotLike (s3:prefix, s3:delimiter). Anything else (NotAction,
 * NotResource, NotPrincipal, unknown operators or keys, unknown actions) is
 * rejected with SL_EINVAL and a message: never silently ignored.
 *
 * Evaluation: a statement applies when action, resource, principal and every
 * condition match. An applicable Deny wins over everything; otherwise an
 * applicable Allow (from the identity policy or the bucket policy) allows;
 * otherwise the request is implicitly denied. Root keys skip policies.
 *
 * Not here: key storage (keys.h), mapping HTTP requests to actions (s3d/).
 * Parsed policies are immutable and may be shared between threads.
 */
#ifndef SL_AUTH_POLICY_H
#define SL_AUTH_POLICY_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

#define POLICY_MAX_BYTES (20 * 1024) /* as AWS for bucket policies */

typedef struct policy policy;

/* Parses and validates a policy document. bucket NULL: an identity policy
 * (Principal not allowed); otherwise a bucket policy for that bucket
 * (Principal required, Resources must name that bucket). SL_EINVAL with a
 * message fit for a MalformedPolicy error. */
int policy_parse(const char *json, const char *bucket, policy **out, sl_err *err);
void policy_free(policy *p);

/* What a request is, for evaluation. */
typedef struct policy_ctx {
	const char *action;    /* "s3:GetObject", "seglake:ReplicationRead", ... */
	const char *resource;  /* "arn:aws:s3:::bucket", "arn:aws:s3:::bucket/key", ... */
	const char *principal; /* the access key id; NULL or "" = anonymous */
	const char *source_ip; /* client address (text), NULL if unknown */
	int secure_transport;  /* 1 if the request came over TLS */
	int64_t now;	       /* unix seconds (aws:CurrentTime) */
	const char *prefix;    /* s3:prefix (list requests), NULL if absent */
	const char *delimiter; /* s3:delimiter, NULL if absent */
} policy_ctx;

enum policy_result {
	POLICY_NONE = 0, /* no statement applies */
	POLICY_ALLOW = 1,
	POLICY_DENY = 2, /* an explicit Deny applies */
};

/* Evaluates one policy (NULL: POLICY_NONE). */
int policy_eval(const policy *p, const policy_ctx *ctx);

/* The decision for a request: root allows everything; an explicit deny in
 * either policy denies; an allow in either allows; else denied. Anonymous
 * requests only get what the bucket policy allows to Principal "*", and
 * never s3:ListAllMyBuckets. Returns POLICY_ALLOW, or POLICY_DENY /
 * POLICY_NONE (explicit / implicit denial). */
int policy_decide(int is_root, const policy *identity, const policy *bucket, const policy_ctx *ctx);

/* The resource ARN of a bucket (key NULL) or an object, into out. Returns
 * 0, or -1 if it does not fit. */
int policy_arn(const char *bucket, const char *key, char *out, size_t cap);

/* A ready-made identity policy: access is "read", "write", "readwrite",
 * "all" (every s3: action) or "replication" (seglake:Replication*);
 * bucket NULL = every bucket; prefix (with a bucket) limits object access
 * and listing to keys under it. *out is malloc'd JSON. */
int policy_preset(const char *access, const char *bucket, const char *prefix, char **out,
		  sl_err *err);

/* 1 if action names a known action ("s3:GetObject", case-insensitive). */
int policy_action_known(const char *action);

#endif
