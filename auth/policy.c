/*
 * policy.c - parsing and evaluating access policies (see policy.h for the
 * grammar). The JSON is read with jansson into a compact in-memory form:
 * statements with arrays of strings and parsed conditions (CIDR blocks,
 * times, booleans). Not here: where policies are stored or which action an
 * HTTP request maps to.
 */
#include "auth/policy.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* Every action a policy may name. Wildcards must match at least one. */
static const char *const policy_actions[] = {
	"s3:ListAllMyBuckets",
	"s3:CreateBucket",
	"s3:DeleteBucket",
	"s3:ListBucket",
	"s3:ListBucketVersions",
	"s3:ListBucketMultipartUploads",
	"s3:GetBucketLocation",
	"s3:GetBucketVersioning",
	"s3:PutBucketVersioning",
	"s3:GetBucketPolicy",
	"s3:PutBucketPolicy",
	"s3:DeleteBucketPolicy",
	"s3:GetBucketCORS",
	"s3:PutBucketCORS",
	"s3:GetBucketAcl",
	"s3:PutBucketAcl",
	"s3:GetBucketTagging",
	"s3:PutBucketTagging",
	"s3:GetLifecycleConfiguration",
	"s3:PutLifecycleConfiguration",
	"s3:GetBucketObjectLockConfiguration",
	"s3:GetEncryptionConfiguration",
	"s3:GetObject",
	"s3:GetObjectVersion",
	"s3:GetObjectAttributes",
	"s3:GetObjectVersionAttributes",
	"s3:GetObjectAcl",
	"s3:PutObjectAcl",
	"s3:GetObjectTagging",
	"s3:PutObjectTagging",
	"s3:DeleteObjectTagging",
	"s3:PutObject",
	"s3:DeleteObject",
	"s3:DeleteObjectVersion",
	"s3:AbortMultipartUpload",
	"s3:ListMultipartUploadParts",
	"s3:RestoreObject",
	"seglake:ReplicationRead",
	"seglake:ReplicationWrite",
	"seglake:GetStats",
	"seglake:GetMetrics",
	NULL,
};

enum cond_op {
	COND_IP,
	COND_NOT_IP,
	COND_BOOL,
	COND_DATE_GT,
	COND_DATE_LT,
	COND_STR_EQ,
	COND_STR_NE,
	COND_STR_LIKE,
	COND_STR_NOT_LIKE,
};

enum cond_key { KEY_SOURCE_IP, KEY_SECURE, KEY_TIME, KEY_PREFIX, KEY_DELIMITER };

typedef struct cidr {
	int family; /* AF_INET or AF_INET6 (v4 stored as v4) */
	unsigned char addr[16];
	int bits;
} cidr;

typedef struct cond {
	int op, key;
	size_t n;
	char **str;	/* string operators */
	cidr *nets;	/* IP operators */
	int64_t *times; /* date operators */
	int boolean;	/* Bool */
} cond;

typedef struct stmt {
	int deny;
	char **actions;
	size_t nactions;
	char **resources;
	size_t nresources;
	char **principals; /* bucket policies; "*" = everyone */
	size_t nprincipals;
	cond *conds;
	size_t nconds;
} stmt;

struct policy {
	stmt *st;
	size_t n;
};

/* ---- helpers --------------------------------------------------------------- */

/* Glob match with '*' (any run) and '?' (one char); icase for action names. */
static int policy_glob(const char *pat, const char *s, int icase)
{
	const char *star = NULL, *resume = NULL;
	while (*s) {
		if (*pat == '*') {
			star = pat++;
			resume = s;
		} else if (*pat == '?' ||
			   (icase ? tolower((unsigned char)*pat) == tolower((unsigned char)*s)
				  : *pat == *s)) {
			pat++;
			s++;
		} else if (star) {
			pat = star + 1;
			s = ++resume;
		} else {
			return 0;
		}
	}
	while (*pat == '*')
		pat++;
	return *pat == '\0';
}

int policy_action_known(const char *action)
{
	for (int i = 0; policy_actions[i]; i++)
		if (strcasecmp(policy_actions[i], action) == 0)
			return 1;
	return 0;
}

static void strs_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* A string or an array of strings into a malloc'd vector. */
static int policy_strings(json_t *j, const char *what, char ***out, size_t *n, sl_err *err)
{
	size_t cnt = json_is_array(j) ? json_array_size(j) : 1;
	if (json_is_array(j) && cnt == 0)
		return sl_err_set(err, SL_EINVAL, "%s must not be an empty list", what);
	if (!json_is_array(j) && !json_is_string(j))
		return sl_err_set(err, SL_EINVAL, "%s must be a string or a list of strings", what);
	char **v = calloc(cnt, sizeof(*v));
	if (!v)
		return sl_err_set(err, SL_ENOMEM, "out of memory");
	for (size_t i = 0; i < cnt; i++) {
		json_t *e = json_is_array(j) ? json_array_get(j, i) : j;
		if (!json_is_string(e)) {
			strs_free(v, i);
			return sl_err_set(err, SL_EINVAL, "%s must hold strings only", what);
		}
		if (!(v[i] = strdup(json_string_value(e)))) {
			strs_free(v, i);
			return sl_err_set(err, SL_ENOMEM, "out of memory");
		}
	}
	*out = v;
	*n = cnt;
	return 0;
}

static int policy_parse_cidr(const char *s, cidr *c)
{
	char buf[80];
	if (strlen(s) >= sizeof(buf))
		return -1;
	strcpy(buf, s);
	char *slash = strchr(buf, '/');
	if (slash)
		*slash = '\0';
	memset(c, 0, sizeof(*c));
	if (inet_pton(AF_INET, buf, c->addr) == 1) {
		c->family = AF_INET;
		c->bits = 32;
	} else if (inet_pton(AF_INET6, buf, c->addr) == 1) {
		c->family = AF_INET6;
		c->bits = 128;
	} else {
		return -1;
	}
	if (slash) {
		char *end;
		errno = 0;
		long b = strtol(slash + 1, &end, 10);
		if (errno || end == slash + 1 || *end || b < 0 || b > c->bits)
			return -1;
		c->bits = (int)b;
	}
	return 0;
}

/* Parses an address (v4, v6, v4-mapped v6 becomes v4). */
static int policy_parse_ip(const char *s, cidr *c)
{
	if (!s || strchr(s, '/') || policy_parse_cidr(s, c) != 0)
		return -1;
	static const unsigned char mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
	if (c->family == AF_INET6 && memcmp(c->addr, mapped, 12) == 0) {
		memmove(c->addr, c->addr + 12, 4);
		memset(c->addr + 4, 0, 12);
		c->family = AF_INET;
		c->bits = 32;
	}
	return 0;
}

static int policy_cidr_has(const cidr *net, const cidr *ip)
{
	if (net->family != ip->family)
		return 0;
	int full = net->bits / 8, rem = net->bits % 8;
	if (memcmp(net->addr, ip->addr, (size_t)full) != 0)
		return 0;
	if (rem) {
		unsigned char mask = (unsigned char)(0xff << (8 - rem));
		if ((net->addr[full] & mask) != (ip->addr[full] & mask))
			return 0;
	}
	return 1;
}

/* ISO 8601 (YYYY-MM-DD[THH:MM:SS[.fff]][Z|+HH:MM]) or epoch seconds. */
static int policy_parse_time(const char *s, int64_t *out)
{
	const char *p = s;
	while (isdigit((unsigned char)*p))
		p++;
	if (*s && !*p && p - s <= 12) {
		*out = strtoll(s, NULL, 10);
		return 0;
	}
	struct tm tm = { 0 };
	int n = 0;
	if (sscanf(s, "%4d-%2d-%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &n) != 3 || n != 10)
		return -1;
	p = s + n;
	if (*p == 'T' || *p == 't') {
		int m = 0;
		if (sscanf(p + 1, "%2d:%2d:%2d%n", &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &m) != 3 ||
		    m != 8)
			return -1;
		p += 1 + m;
		if (*p == '.') {
			p++;
			if (!isdigit((unsigned char)*p))
				return -1;
			while (isdigit((unsigned char)*p))
				p++;
		}
	}
	long off = 0;
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		int hh, mm, m = 0;
		if (sscanf(p + 1, "%2d:%2d%n", &hh, &mm, &m) != 2 || m != 5)
			return -1;
		off = (hh * 3600L + mm * 60L) * (*p == '-' ? -1 : 1);
		p += 1 + m;
	}
	if (*p || tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 || tm.tm_mday > 31 ||
	    tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 60)
		return -1;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	time_t t = timegm(&tm);
	*out = (int64_t)t - off;
	return 0;
}

static void cond_clear(cond *c)
{
	strs_free(c->str, c->str ? c->n : 0);
	free(c->nets);
	free(c->times);
}

static void stmt_clear(stmt *s)
{
	strs_free(s->actions, s->nactions);
	strs_free(s->resources, s->nresources);
	strs_free(s->principals, s->nprincipals);
	for (size_t i = 0; i < s->nconds; i++)
		cond_clear(&s->conds[i]);
	free(s->conds);
}

void policy_free(policy *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->n; i++)
		stmt_clear(&p->st[i]);
	free(p->st);
	free(p);
}

/* ---- parsing ----------------------------------------------------------------- */

static const struct {
	const char *name;
	int op;
} cond_ops[] = {
	{ "IpAddress", COND_IP },
	{ "NotIpAddress", COND_NOT_IP },
	{ "Bool", COND_BOOL },
	{ "DateGreaterThan", COND_DATE_GT },
	{ "DateLessThan", COND_DATE_LT },
	{ "StringEquals", COND_STR_EQ },
	{ "StringNotEquals", COND_STR_NE },
	{ "StringLike", COND_STR_LIKE },
	{ "StringNotLike", COND_STR_NOT_LIKE },
};

static const struct {
	const char *name;
	int key;
} cond_keys[] = {
	{ "aws:SourceIp", KEY_SOURCE_IP }, { "aws:SecureTransport", KEY_SECURE },
	{ "aws:CurrentTime", KEY_TIME },   { "s3:prefix", KEY_PREFIX },
	{ "s3:delimiter", KEY_DELIMITER },
};

/* Which key each operator family takes. */
static int cond_pair_ok(int op, int key)
{
	switch (op) {
	case COND_IP:
	case COND_NOT_IP:
		return key == KEY_SOURCE_IP;
	case COND_BOOL:
		return key == KEY_SECURE;
	case COND_DATE_GT:
	case COND_DATE_LT:
		return key == KEY_TIME;
	default:
		return key == KEY_PREFIX || key == KEY_DELIMITER;
	}
}

static int policy_parse_cond(const char *opname, const char *keyname, json_t *val, cond *c,
			     sl_err *err)
{
	memset(c, 0, sizeof(*c));
	c->op = c->key = -1;
	for (size_t i = 0; i < sizeof(cond_ops) / sizeof(cond_ops[0]); i++)
		if (strcmp(cond_ops[i].name, opname) == 0)
			c->op = cond_ops[i].op;
	if (c->op < 0)
		return sl_err_set(err, SL_EINVAL, "unsupported condition operator '%s'", opname);
	for (size_t i = 0; i < sizeof(cond_keys) / sizeof(cond_keys[0]); i++)
		if (strcasecmp(cond_keys[i].name, keyname) == 0)
			c->key = cond_keys[i].key;
	if (c->key < 0)
		return sl_err_set(err, SL_EINVAL, "unsupported condition key '%s'", keyname);
	if (!cond_pair_ok(c->op, c->key))
		return sl_err_set(err, SL_EINVAL, "condition operator %s cannot test %s", opname,
				  keyname);
	/* Bool also takes JSON true/false. */
	json_t *tmp = NULL;
	if (json_is_boolean(val))
		val = tmp = json_string(json_is_true(val) ? "true" : "false");
	char **v = NULL;
	size_t n = 0;
	char what[160];
	snprintf(what, sizeof(what), "condition %s %s", opname, keyname);
	int rc = policy_strings(val, what, &v, &n, err);
	json_decref(tmp);
	if (rc < 0)
		return rc;
	c->n = n;
	switch (c->op) {
	case COND_IP:
	case COND_NOT_IP:
		c->nets = calloc(n, sizeof(*c->nets));
		if (!c->nets)
			rc = sl_err_set(err, SL_ENOMEM, "out of memory");
		for (size_t i = 0; rc == 0 && i < n; i++)
			if (policy_parse_cidr(v[i], &c->nets[i]) != 0)
				rc = sl_err_set(err, SL_EINVAL, "invalid IP address or CIDR '%s'",
						v[i]);
		strs_free(v, n);
		return rc;
	case COND_BOOL:
		if (n != 1 || (strcasecmp(v[0], "true") && strcasecmp(v[0], "false")))
			rc = sl_err_set(err, SL_EINVAL, "Bool takes one value, true or false");
		else
			c->boolean = strcasecmp(v[0], "true") == 0;
		strs_free(v, n);
		return rc;
	case COND_DATE_GT:
	case COND_DATE_LT:
		c->times = calloc(n, sizeof(*c->times));
		if (!c->times)
			rc = sl_err_set(err, SL_ENOMEM, "out of memory");
		for (size_t i = 0; rc == 0 && i < n; i++)
			if (policy_parse_time(v[i], &c->times[i]) != 0)
				rc = sl_err_set(err, SL_EINVAL, "invalid date '%s'", v[i]);
		strs_free(v, n);
		return rc;
	default:
		c->str = v;
		return 0;
	}
}

static int policy_parse_principal(json_t *j, stmt *s, sl_err *err)
{
	if (json_is_string(j)) {
		if (strcmp(json_string_value(j), "*") != 0)
			return sl_err_set(err, SL_EINVAL,
					  "Principal must be \"*\" or {\"AWS\": ...}");
		return policy_strings(j, "Principal", &s->principals, &s->nprincipals, err);
	}
	if (!json_is_object(j))
		return sl_err_set(err, SL_EINVAL, "Principal must be \"*\" or {\"AWS\": ...}");
	const char *k;
	json_t *v;
	json_object_foreach(j, k, v)
	{
		if (strcmp(k, "AWS") != 0)
			return sl_err_set(err, SL_EINVAL, "unsupported Principal type '%s'", k);
	}
	json_t *aws = json_object_get(j, "AWS");
	if (!aws)
		return sl_err_set(err, SL_EINVAL, "Principal must name AWS principals");
	int rc = policy_strings(aws, "Principal AWS", &s->principals, &s->nprincipals, err);
	if (rc < 0)
		return rc;
	/* Principals are access key ids or "*"; an IAM ARN form
	 * "arn:aws:iam::ACCOUNT:user/KEYID" is reduced to its last part. */
	for (size_t i = 0; i < s->nprincipals; i++) {
		char *p = s->principals[i];
		if (strncmp(p, "arn:aws:iam::", 13) == 0) {
			char *slash = strrchr(p, '/');
			if (!slash || !slash[1])
				return sl_err_set(err, SL_EINVAL, "unsupported principal '%s'", p);
			memmove(p, slash + 1, strlen(slash + 1) + 1);
		}
		if (!*p)
			return sl_err_set(err, SL_EINVAL, "empty principal");
	}
	return 0;
}

static int policy_check_resource(const char *r, const char *bucket, sl_err *err)
{
	if (strcmp(r, "*") == 0)
		return 0;
	if (strncmp(r, "arn:seglake:::", 14) == 0 && !bucket && r[14])
		return 0;
	if (strncmp(r, "arn:aws:s3:::", 13) != 0 || !r[13])
		return sl_err_set(err, SL_EINVAL,
				  "invalid resource '%s' (expected arn:aws:s3:::...)", r);
	if (bucket) {
		size_t bl = strlen(bucket);
		const char *b = r + 13;
		/* The bucket part must be exactly this bucket. */
		if (strncmp(b, bucket, bl) != 0 || (b[bl] != '\0' && b[bl] != '/'))
			return sl_err_set(err, SL_EINVAL, "resource '%s' is outside bucket '%s'", r,
					  bucket);
	}
	return 0;
}

static int policy_check_action(const char *a, sl_err *err)
{
	if (strcmp(a, "*") == 0)
		return 0;
	if (strncasecmp(a, "s3:", 3) != 0 && strncasecmp(a, "seglake:", 8) != 0)
		return sl_err_set(err, SL_EINVAL, "unsupported action '%s'", a);
	for (int i = 0; policy_actions[i]; i++)
		if (policy_glob(a, policy_actions[i], 1))
			return 0;
	return sl_err_set(err, SL_EINVAL, "unknown action '%s'", a);
}

static int policy_parse_stmt(json_t *j, const char *bucket, stmt *s, sl_err *err)
{
	if (!json_is_object(j))
		return sl_err_set(err, SL_EINVAL, "each Statement must be an object");
	const char *k;
	json_t *v;
	json_object_foreach(j, k, v)
	{
		if (strcmp(k, "Sid") && strcmp(k, "Effect") && strcmp(k, "Action") &&
		    strcmp(k, "Resource") && strcmp(k, "Condition") && strcmp(k, "Principal"))
			return sl_err_set(err, SL_EINVAL, "unsupported policy element '%s'", k);
	}
	json_t *sid = json_object_get(j, "Sid");
	if (sid && !json_is_string(sid))
		return sl_err_set(err, SL_EINVAL, "Sid must be a string");
	const char *eff = json_string_value(json_object_get(j, "Effect"));
	if (!eff || (strcmp(eff, "Allow") && strcmp(eff, "Deny")))
		return sl_err_set(err, SL_EINVAL, "Effect must be \"Allow\" or \"Deny\"");
	s->deny = strcmp(eff, "Deny") == 0;
	json_t *pr = json_object_get(j, "Principal");
	if (bucket && !pr)
		return sl_err_set(err, SL_EINVAL, "bucket policy statements need a Principal");
	if (!bucket && pr)
		return sl_err_set(err, SL_EINVAL, "identity policies take no Principal");
	int rc;
	if (pr && (rc = policy_parse_principal(pr, s, err)) < 0)
		return rc;
	json_t *act = json_object_get(j, "Action");
	if (!act)
		return sl_err_set(err, SL_EINVAL, "statement without Action");
	if ((rc = policy_strings(act, "Action", &s->actions, &s->nactions, err)) < 0)
		return rc;
	for (size_t i = 0; i < s->nactions; i++)
		if ((rc = policy_check_action(s->actions[i], err)) < 0)
			return rc;
	json_t *res = json_object_get(j, "Resource");
	if (!res)
		return sl_err_set(err, SL_EINVAL, "statement without Resource");
	if ((rc = policy_strings(res, "Resource", &s->resources, &s->nresources, err)) < 0)
		return rc;
	for (size_t i = 0; i < s->nresources; i++)
		if ((rc = policy_check_resource(s->resources[i], bucket, err)) < 0)
			return rc;
	json_t *cj = json_object_get(j, "Condition");
	if (cj) {
		if (!json_is_object(cj))
			return sl_err_set(err, SL_EINVAL, "Condition must be an object");
		size_t total = 0;
		json_object_foreach(cj, k, v)
		{
			if (!json_is_object(v) || json_object_size(v) == 0)
				return sl_err_set(err, SL_EINVAL,
						  "Condition %s must map keys to values", k);
			total += json_object_size(v);
		}
		s->conds = calloc(total ? total : 1, sizeof(*s->conds));
		if (!s->conds)
			return sl_err_set(err, SL_ENOMEM, "out of memory");
		json_object_foreach(cj, k, v)
		{
			const char *key;
			json_t *val;
			json_object_foreach(v, key, val)
			{
				rc = policy_parse_cond(k, key, val, &s->conds[s->nconds], err);
				s->nconds++; /* counted even on failure so it gets freed */
				if (rc < 0)
					return rc;
			}
		}
	}
	return 0;
}

int policy_parse(const char *text, const char *bucket, policy **out, sl_err *err)
{
	*out = NULL;
	if (!text || !*text)
		return sl_err_set(err, SL_EINVAL, "empty policy");
	if (strlen(text) > POLICY_MAX_BYTES)
		return sl_err_set(err, SL_EINVAL, "policy larger than %d bytes", POLICY_MAX_BYTES);
	json_error_t je;
	json_t *j = json_loads(text, JSON_REJECT_DUPLICATES, &je);
	if (!j)
		return sl_err_set(err, SL_EINVAL, "policy is not valid JSON: %s (line %d)", je.text,
				  je.line);
	int rc = 0;
	policy *p = calloc(1, sizeof(*p));
	if (!p) {
		json_decref(j);
		return sl_err_set(err, SL_ENOMEM, "out of memory");
	}
	if (!json_is_object(j)) {
		rc = sl_err_set(err, SL_EINVAL, "policy must be a JSON object");
		goto out;
	}
	const char *k;
	json_t *v;
	json_object_foreach(j, k, v)
	{
		if (strcmp(k, "Version") && strcmp(k, "Id") && strcmp(k, "Statement")) {
			rc = sl_err_set(err, SL_EINVAL, "unsupported policy element '%s'", k);
			goto out;
		}
	}
	json_t *ver = json_object_get(j, "Version");
	if (ver && (!json_is_string(ver) || (strcmp(json_string_value(ver), "2012-10-17") &&
					     strcmp(json_string_value(ver), "2008-10-17")))) {
		rc = sl_err_set(err, SL_EINVAL, "Version must be \"2012-10-17\" or \"2008-10-17\"");
		goto out;
	}
	json_t *id = json_object_get(j, "Id");
	if (id && !json_is_string(id)) {
		rc = sl_err_set(err, SL_EINVAL, "Id must be a string");
		goto out;
	}
	json_t *sts = json_object_get(j, "Statement");
	if (!sts || (!json_is_object(sts) && !json_is_array(sts)) ||
	    (json_is_array(sts) && json_array_size(sts) == 0)) {
		rc = sl_err_set(err, SL_EINVAL,
				"policy needs a Statement (object or non-empty list)");
		goto out;
	}
	size_t n = json_is_array(sts) ? json_array_size(sts) : 1;
	p->st = calloc(n, sizeof(*p->st));
	if (!p->st) {
		rc = sl_err_set(err, SL_ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		p->n++;
		rc = policy_parse_stmt(json_is_array(sts) ? json_array_get(sts, i) : sts, bucket,
				       &p->st[i], err);
		if (rc < 0)
			goto out;
	}
out:
	json_decref(j);
	if (rc < 0) {
		policy_free(p);
		return rc;
	}
	*out = p;
	return 0;
}

/* ---- evaluation ---------------------------------------------------------------- */

static int cond_match(const cond *c, const policy_ctx *x)
{
	switch (c->op) {
	case COND_IP:
	case COND_NOT_IP: {
		cidr ip;
		if (policy_parse_ip(x->source_ip, &ip) != 0)
			return c->op == COND_NOT_IP; /* unknown address: only "not in" holds */
		int in = 0;
		for (size_t i = 0; i < c->n && !in; i++)
			in = policy_cidr_has(&c->nets[i], &ip);
		return c->op == COND_IP ? in : !in;
	}
	case COND_BOOL:
		return (x->secure_transport ? 1 : 0) == c->boolean;
	case COND_DATE_GT:
	case COND_DATE_LT: {
		for (size_t i = 0; i < c->n; i++)
			if (c->op == COND_DATE_GT ? x->now > c->times[i] : x->now < c->times[i])
				return 1;
		return 0;
	}
	default: {
		const char *val = c->key == KEY_PREFIX ? x->prefix : x->delimiter;
		int negated = c->op == COND_STR_NE || c->op == COND_STR_NOT_LIKE;
		if (!val)
			return negated; /* absent key: positive tests fail, negated hold */
		int like = c->op == COND_STR_LIKE || c->op == COND_STR_NOT_LIKE;
		int any = 0;
		for (size_t i = 0; i < c->n && !any; i++)
			any = like ? policy_glob(c->str[i], val, 0) : strcmp(c->str[i], val) == 0;
		return negated ? !any : any;
	}
	}
}

static int stmt_applies(const stmt *s, const policy_ctx *x)
{
	int ok = 0;
	for (size_t i = 0; i < s->nactions && !ok; i++)
		ok = policy_glob(s->actions[i], x->action, 1);
	if (!ok)
		return 0;
	ok = 0;
	for (size_t i = 0; i < s->nresources && !ok; i++)
		ok = policy_glob(s->resources[i], x->resource, 0);
	if (!ok)
		return 0;
	if (s->principals) {
		ok = 0;
		const char *who = x->principal && *x->principal ? x->principal : NULL;
		for (size_t i = 0; i < s->nprincipals && !ok; i++)
			ok = strcmp(s->principals[i], "*") == 0 ||
			     (who && strcmp(s->principals[i], who) == 0);
		if (!ok)
			return 0;
	}
	for (size_t i = 0; i < s->nconds; i++)
		if (!cond_match(&s->conds[i], x))
			return 0;
	return 1;
}

int policy_eval(const policy *p, const policy_ctx *ctx)
{
	if (!p || !ctx || !ctx->action || !ctx->resource)
		return POLICY_NONE;
	int res = POLICY_NONE;
	for (size_t i = 0; i < p->n; i++) {
		if (!stmt_applies(&p->st[i], ctx))
			continue;
		if (p->st[i].deny)
			return POLICY_DENY;
		res = POLICY_ALLOW;
	}
	return res;
}

int policy_decide(int is_root, const policy *identity, const policy *bucket, const policy_ctx *ctx)
{
	int anon = !ctx->principal || !*ctx->principal;
	if (anon && strcasecmp(ctx->action, "s3:ListAllMyBuckets") == 0)
		return POLICY_NONE;
	if (is_root && !anon)
		return POLICY_ALLOW;
	int a = anon ? POLICY_NONE : policy_eval(identity, ctx);
	int b = policy_eval(bucket, ctx);
	if (a == POLICY_DENY || b == POLICY_DENY)
		return POLICY_DENY;
	if (a == POLICY_ALLOW || b == POLICY_ALLOW)
		return POLICY_ALLOW;
	return POLICY_NONE;
}

int policy_arn(const char *bucket, const char *key, char *out, size_t cap)
{
	int n = key ? snprintf(out, cap, "arn:aws:s3:::%s/%s", bucket, key)
		    : snprintf(out, cap, "arn:aws:s3:::%s", bucket);
	return n < 0 || (size_t)n >= cap ? -1 : 0;
}

/* ---- presets ------------------------------------------------------------------ */

int policy_preset(const char *access, const char *bucket, const char *prefix, char **out,
		  sl_err *err)
{
	static const char *const rd[] = { "s3:GetObject", "s3:GetObjectVersion",
					  "s3:GetObjectAttributes", "s3:GetObjectTagging", NULL };
	static const char *const wr[] = { "s3:PutObject",
					  "s3:DeleteObject",
					  "s3:DeleteObjectVersion",
					  "s3:AbortMultipartUpload",
					  "s3:ListMultipartUploadParts",
					  "s3:PutObjectTagging",
					  NULL };
	static const char *const list[] = {
		"s3:ListBucket",	"s3:ListBucketVersions",  "s3:ListBucketMultipartUploads",
		"s3:GetBucketLocation", "s3:GetBucketVersioning", NULL
	};
	int r = 0, w = 0;
	if (!access || strcmp(access, "read") == 0)
		r = 1;
	else if (strcmp(access, "write") == 0)
		w = 1;
	else if (strcmp(access, "readwrite") == 0)
		r = w = 1;
	else if (strcmp(access, "all") != 0 && strcmp(access, "replication") != 0)
		return sl_err_set(err, SL_EINVAL,
				  "access must be read, write, readwrite, all or replication");
	if (prefix && !bucket)
		return sl_err_set(err, SL_EINVAL, "a prefix needs a bucket");
	if (bucket && (strchr(bucket, '*') || strchr(bucket, '/') || !*bucket))
		return sl_err_set(err, SL_EINVAL, "invalid bucket name '%s'", bucket);
	char bres[160], ores[1200];
	snprintf(bres, sizeof(bres), "arn:aws:s3:::%s", bucket ? bucket : "*");
	snprintf(ores, sizeof(ores), "arn:aws:s3:::%s/%s*", bucket ? bucket : "*",
		 prefix ? prefix : "");
	json_t *sts = json_array();
	if (strcmp(access ? access : "read", "replication") == 0) {
		json_array_append_new(sts, json_pack("{sss[ss]ss}", "Effect", "Allow", "Action",
						     "seglake:ReplicationRead",
						     "seglake:ReplicationWrite", "Resource", "*"));
	} else if (access && strcmp(access, "all") == 0) {
		json_array_append_new(sts, json_pack("{sssss[ss]}", "Effect", "Allow", "Action",
						     "s3:*", "Resource", bres, ores));
		if (!bucket)
			json_array_append_new(sts, json_pack("{sssss[s]}", "Effect", "Allow",
							     "Action", "s3:ListAllMyBuckets",
							     "Resource", "arn:aws:s3:::*"));
	} else {
		json_t *acts = json_array();
		for (int i = 0; r && rd[i]; i++)
			json_array_append_new(acts, json_string(rd[i]));
		for (int i = 0; w && wr[i]; i++)
			json_array_append_new(acts, json_string(wr[i]));
		json_array_append_new(sts, json_pack("{sssoss}", "Effect", "Allow", "Action", acts,
						     "Resource", ores));
		json_t *lacts = json_array();
		for (int i = 0; list[i]; i++)
			json_array_append_new(lacts, json_string(list[i]));
		json_t *ls =
			json_pack("{sssoss}", "Effect", "Allow", "Action", lacts, "Resource", bres);
		if (prefix) {
			char like[1100];
			snprintf(like, sizeof(like), "%s*", prefix);
			json_object_set_new(ls, "Condition",
					    json_pack("{s{s[ss]}}", "StringLike", "s3:prefix", like,
						      prefix));
		}
		json_array_append_new(sts, ls);
		json_array_append_new(sts, json_pack("{sssss[s]}", "Effect", "Allow", "Action",
						     "s3:ListAllMyBuckets", "Resource",
						     "arn:aws:s3:::*"));
	}
	json_t *doc = json_pack("{ssso}", "Version", "2012-10-17", "Statement", sts);
	*out = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
	json_decref(doc);
	if (!*out)
		return sl_err_set(err, SL_ENOMEM, "out of memory");
	return 0;
}
