/*
 * test_policy.c - unit tests of auth/policy: parsing (accepted grammar and
 * every kind of malformed policy), evaluation matrices (actions, resources,
 * principals, deny over allow, conditions) and the decision rules (root,
 * anonymous, identity + bucket). Not a test of how s3d maps requests.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/policy.h"
#include "check.h"

static policy *parse_ok(const char *json, const char *bucket)
{
	policy *p = NULL;
	sl_err err = { 0 };
	int rc = policy_parse(json, bucket, &p, &err);
	if (rc != 0)
		fprintf(stderr, "unexpected parse failure: %s\n  in %s\n", err.msg, json);
	CHECK(rc == 0 && p);
	return p;
}

static int parse_fails(const char *json, const char *bucket, const char *needle)
{
	policy *p = NULL;
	sl_err err = { 0 };
	int rc = policy_parse(json, bucket, &p, &err);
	policy_free(p);
	if (rc == 0) {
		fprintf(stderr, "accepted a malformed policy: %s\n", json);
		return 0;
	}
	if (needle && !strstr(err.msg, needle)) {
		fprintf(stderr, "message '%s' lacks '%s'\n", err.msg, needle);
		return 0;
	}
	return rc == SL_EINVAL && p == NULL;
}

static policy_ctx ctx(const char *action, const char *resource, const char *who)
{
	policy_ctx c = { 0 };
	c.action = action;
	c.resource = resource;
	c.principal = who;
	c.source_ip = "10.1.2.3";
	c.now = 1700000000; /* 2023-11-14 */
	return c;
}

static void test_malformed(void)
{
	CHECK(parse_fails("", NULL, "empty"));
	CHECK(parse_fails("{", NULL, "JSON"));
	CHECK(parse_fails("[]", NULL, "object"));
	CHECK(parse_fails("{\"Version\":\"2012-10-17\"}", NULL, "Statement"));
	CHECK(parse_fails("{\"Statement\":[]}", NULL, "Statement"));
	CHECK(parse_fails("{\"Version\":\"2020-01-01\",\"Statement\":{\"Effect\":\"Allow\","
			  "\"Action\":\"s3:GetObject\",\"Resource\":\"*\"}}",
			  NULL, "Version"));
	CHECK(parse_fails("{\"Foo\":1,\"Statement\":{\"Effect\":\"Allow\",\"Action\":\"s3:"
			  "GetObject\","
			  "\"Resource\":\"*\"}}",
			  NULL, "Foo"));
	CHECK(parse_fails("{\"Statement\":{\"Effect\":\"Permit\",\"Action\":\"s3:GetObject\","
			  "\"Resource\":\"*\"}}",
			  NULL, "Effect"));
	CHECK(parse_fails("{\"Statement\":{\"Effect\":\"Allow\",\"NotAction\":\"s3:GetObject\","
			  "\"Resource\":\"*\"}}",
			  NULL, "NotAction"));
	CHECK(parse_fails("{\"Statement\":{\"Effect\":\"Allow\",\"Action\":\"s3:GetObject\","
			  "\"NotResource\":\"*\"}}",
			  NULL, "NotResource"));
	CHECK(parse_fails("{\"Statement\":{\"Effect\":\"Allow\",\"Action\":\"s3:GetObject\"}}",
			  NULL, "Resource"));
	CHECK(parse_fails("{\"Statement\":{\"Effect\":\"Allow\",\"Resource\":\"*\"}}", NULL,
			  "Action"));
	CHECK(parse_fails("{\"Statement\":{\"Effect\":\"Allow\",\"Action\":\"s3:FlyToMoon\","
			  "\"Resource\":\"*\"}}",
			  NULL, "unknown action"));
	CHECK(parse_fails("{\"Statement\":{\"Effect\":\"Allow\",\"Action\":\"ec2:*\","
			  "\"Resource\":\"*\"}}",
			  NULL, "action"));
	CHECK(parse_fails("{\"Statement\":{\"Effect\":\"Allow\",\"Action\":\"s3:Zap*\","
			  "\"Resource\":\"*\"}}",
			  NULL, "unknown action"));
	CHECK(parse_fails("{\"Statement\":{\"Effect\":\"Allow\",\"Action\":\"s3:GetObject\","
			  "\"Resource\":\"bucket/key\"}}",
			  NULL, "resource"));
	CHECK(parse_fails("{\"Statement\":{\"Effect\":\"Allow\",\"Action\":[],"
			  "\"Resource\":\"*\"}}",
			  NULL, "empty"));
	CHECK(parse_fails("{\"Statement\":{\"Effect\":\"Allow\",\"Action\":[1],"
			  "\"Resource\":\"*\"}}",
			  NULL, "strings"));
	/* identity policies take no principal; bucket policies need one */
	CHECK(parse_fails("{\"Statement\":{\"Effect\":\"Allow\",\"Principal\":\"*\","
			  "\"Action\":\"s3:GetObject\",\"Resource\":\"*\"}}",
			  NULL, "Principal"));
	CHECK(parse_fails("{\"Statement\":{\"Effect\":\"Allow\",\"Action\":\"s3:GetObject\","
			  "\"Resource\":\"arn:aws:s3:::b1/*\"}}",
			  "b1", "Principal"));
	CHECK(parse_fails("{\"Statement\":{\"Effect\":\"Allow\",\"Principal\":{\"Service\":\"x\"},"
			  "\"Action\":\"s3:GetObject\",\"Resource\":\"arn:aws:s3:::b1/*\"}}",
			  "b1", "Principal"));
	CHECK(parse_fails("{\"Statement\":{\"Effect\":\"Allow\",\"NotPrincipal\":\"*\","
			  "\"Action\":\"s3:GetObject\",\"Resource\":\"arn:aws:s3:::b1/*\"}}",
			  "b1", "NotPrincipal"));
	/* bucket policy resources must stay inside the bucket */
	CHECK(parse_fails("{\"Statement\":{\"Effect\":\"Allow\",\"Principal\":\"*\","
			  "\"Action\":\"s3:GetObject\",\"Resource\":\"arn:aws:s3:::other/*\"}}",
			  "b1", "outside"));
	CHECK(parse_fails("{\"Statement\":{\"Effect\":\"Allow\",\"Principal\":\"*\","
			  "\"Action\":\"s3:GetObject\",\"Resource\":\"arn:aws:s3:::b10/*\"}}",
			  "b1", "outside"));
	/* conditions */
	const char *tmpl = "{\"Statement\":{\"Effect\":\"Allow\",\"Action\":\"s3:GetObject\","
			   "\"Resource\":\"*\",\"Condition\":%s}}";
	struct {
		const char *cond, *needle;
	} bad[] = {
		{ "{\"NumericEquals\":{\"s3:max-keys\":\"10\"}}", "operator" },
		{ "{\"StringEqualsIgnoreCase\":{\"s3:prefix\":\"a\"}}", "operator" },
		{ "{\"IpAddress\":{\"aws:UserAgent\":\"x\"}}", "key" },
		{ "{\"IpAddress\":{\"aws:SourceIp\":\"300.1.1.1\"}}", "IP" },
		{ "{\"IpAddress\":{\"aws:SourceIp\":\"10.0.0.0/33\"}}", "IP" },
		{ "{\"IpAddress\":{\"s3:prefix\":\"10.0.0.0/8\"}}", "cannot test" },
		{ "{\"Bool\":{\"aws:SecureTransport\":\"maybe\"}}", "Bool" },
		{ "{\"DateLessThan\":{\"aws:CurrentTime\":\"yesterday\"}}", "date" },
		{ "{\"DateLessThan\":{\"aws:CurrentTime\":\"2024-13-01T00:00:00Z\"}}", "date" },
		{ "{\"StringLike\":{\"aws:SourceIp\":\"1.2.3.4\"}}", "cannot test" },
		{ "{\"StringLike\":{}}", "map" },
		{ "[]", "object" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char buf[512];
		snprintf(buf, sizeof(buf), tmpl, bad[i].cond);
		int ok = parse_fails(buf, NULL, bad[i].needle);
		if (!ok)
			fprintf(stderr, "  (condition case %zu)\n", i);
		CHECK(ok);
	}
	/* duplicate keys, oversize */
	CHECK(parse_fails("{\"Statement\":{\"Effect\":\"Allow\",\"Effect\":\"Deny\","
			  "\"Action\":\"s3:GetObject\",\"Resource\":\"*\"}}",
			  NULL, "JSON"));
	char *big = malloc(POLICY_MAX_BYTES + 100);
	memset(big, ' ', POLICY_MAX_BYTES + 99);
	big[0] = '{';
	big[POLICY_MAX_BYTES + 98] = '}';
	big[POLICY_MAX_BYTES + 99] = '\0';
	CHECK(parse_fails(big, NULL, "larger"));
	free(big);
}

static void test_actions_resources(void)
{
	policy *p = parse_ok("{\"Version\":\"2012-10-17\",\"Statement\":["
			     "{\"Effect\":\"Allow\",\"Action\":[\"s3:Get*\",\"s3:ListBucket\"],"
			     " \"Resource\":[\"arn:aws:s3:::photos\",\"arn:aws:s3:::photos/*\"]},"
			     "{\"Sid\":\"w\",\"Effect\":\"Allow\",\"Action\":\"s3:PutObject\","
			     " \"Resource\":\"arn:aws:s3:::photos/uploads/?"
			     "?/*\"}]}",
			     NULL);
	struct {
		const char *action, *resource;
		int want;
	} m[] = {
		{ "s3:GetObject", "arn:aws:s3:::photos/a.jpg", POLICY_ALLOW },
		{ "s3:getobject", "arn:aws:s3:::photos/a.jpg", POLICY_ALLOW }, /* actions: no case
										*/
		{ "s3:GetObjectVersion", "arn:aws:s3:::photos/x/y", POLICY_ALLOW },
		{ "s3:GetObject", "arn:aws:s3:::Photos/a.jpg", POLICY_NONE }, /* ARNs: case */
		{ "s3:GetObject", "arn:aws:s3:::photos2/a.jpg", POLICY_NONE },
		{ "s3:ListBucket", "arn:aws:s3:::photos", POLICY_ALLOW },
		{ "s3:ListBucket", "arn:aws:s3:::other", POLICY_NONE },
		{ "s3:PutObject", "arn:aws:s3:::photos/a.jpg", POLICY_NONE },
		{ "s3:PutObject", "arn:aws:s3:::photos/uploads/ab/c", POLICY_ALLOW },
		{ "s3:PutObject", "arn:aws:s3:::photos/uploads/abc/c", POLICY_NONE },
		{ "s3:DeleteObject", "arn:aws:s3:::photos/a.jpg", POLICY_NONE },
		{ "s3:ListAllMyBuckets", "arn:aws:s3:::*", POLICY_NONE },
	};
	for (size_t i = 0; i < sizeof(m) / sizeof(m[0]); i++) {
		policy_ctx c = ctx(m[i].action, m[i].resource, "KEY1");
		int got = policy_eval(p, &c);
		if (got != m[i].want)
			fprintf(stderr, "  case %zu: %s %s -> %d want %d\n", i, m[i].action,
				m[i].resource, got, m[i].want);
		CHECK(got == m[i].want);
	}
	policy_free(p);
}

static void test_deny_wins(void)
{
	policy *id = parse_ok("{\"Statement\":[{\"Effect\":\"Allow\",\"Action\":\"s3:*\","
			      "\"Resource\":\"*\"},"
			      "{\"Effect\":\"Deny\",\"Action\":\"s3:DeleteObject\","
			      "\"Resource\":\"arn:aws:s3:::b1/keep/*\"}]}",
			      NULL);
	policy_ctx c = ctx("s3:DeleteObject", "arn:aws:s3:::b1/keep/x", "K");
	CHECK(policy_eval(id, &c) == POLICY_DENY);
	CHECK(policy_decide(0, id, NULL, &c) == POLICY_DENY);
	CHECK(policy_decide(1, id, NULL, &c) == POLICY_ALLOW); /* root skips policies */
	c.resource = "arn:aws:s3:::b1/other";
	CHECK(policy_decide(0, id, NULL, &c) == POLICY_ALLOW);
	/* a bucket policy deny overrides an identity allow, and vice versa */
	policy *bp = parse_ok("{\"Statement\":[{\"Effect\":\"Deny\",\"Principal\":{\"AWS\":[\"K\"]}"
			      ","
			      "\"Action\":\"s3:GetObject\",\"Resource\":\"arn:aws:s3:::b1/"
			      "secret*\"},"
			      "{\"Effect\":\"Allow\",\"Principal\":{\"AWS\":\"*\"},"
			      "\"Action\":\"s3:GetObject\",\"Resource\":\"arn:aws:s3:::b1/*\"}]}",
			      "b1");
	c = ctx("s3:GetObject", "arn:aws:s3:::b1/secret.txt", "K");
	CHECK(policy_decide(0, id, bp, &c) == POLICY_DENY);
	c.principal = "OTHER";
	CHECK(policy_decide(0, NULL, bp, &c) == POLICY_ALLOW); /* bucket policy allow alone */
	c.resource = "arn:aws:s3:::b1/public.txt";
	c.principal = "K";
	CHECK(policy_decide(0, NULL, bp, &c) == POLICY_ALLOW);
	/* no allow anywhere: implicit deny */
	c.action = "s3:PutObject";
	CHECK(policy_decide(0, NULL, bp, &c) == POLICY_NONE);
	policy_free(id);
	policy_free(bp);
}

static void test_anonymous(void)
{
	policy *bp = parse_ok("{\"Version\":\"2012-10-17\",\"Statement\":{\"Effect\":\"Allow\","
			      "\"Principal\":\"*\",\"Action\":[\"s3:GetObject\",\"s3:ListBucket\","
			      "\"s3:ListAllMyBuckets\"],\"Resource\":[\"arn:aws:s3:::pub\","
			      "\"arn:aws:s3:::pub/*\"]}}",
			      "pub");
	policy *keyonly = parse_ok("{\"Statement\":{\"Effect\":\"Allow\",\"Principal\":{\"AWS\":"
				   "\"arn:aws:iam::123456789012:user/"
				   "KEY9\"},\"Action\":\"s3:GetObject\","
				   "\"Resource\":\"arn:aws:s3:::pub/*\"}}",
				   "pub");
	policy_ctx c = ctx("s3:GetObject", "arn:aws:s3:::pub/x", NULL);
	CHECK(policy_decide(0, NULL, bp, &c) == POLICY_ALLOW);
	c.principal = "";
	CHECK(policy_decide(0, NULL, bp, &c) == POLICY_ALLOW);
	CHECK(policy_decide(0, NULL, keyonly, &c) == POLICY_NONE);
	c.principal = "KEY9";
	CHECK(policy_decide(0, NULL, keyonly, &c) == POLICY_ALLOW);
	c.principal = NULL;
	c.action = "s3:PutObject";
	CHECK(policy_decide(0, NULL, bp, &c) == POLICY_NONE);
	/* ListAllMyBuckets is never anonymous, even if a policy says so */
	c.action = "s3:ListAllMyBuckets";
	c.resource = "arn:aws:s3:::pub";
	CHECK(policy_decide(0, NULL, bp, &c) == POLICY_NONE);
	CHECK(policy_decide(1, NULL, bp, &c) == POLICY_NONE); /* root flag means nothing anonymously
							       */
	/* no bucket policy: nothing */
	c.action = "s3:GetObject";
	c.resource = "arn:aws:s3:::pub/x";
	CHECK(policy_decide(0, NULL, NULL, &c) == POLICY_NONE);
	policy_free(bp);
	policy_free(keyonly);
}

static void test_conditions(void)
{
	policy *p = parse_ok("{\"Statement\":["
			     "{\"Effect\":\"Allow\",\"Action\":\"s3:GetObject\",\"Resource\":\"*\","
			     " \"Condition\":{\"IpAddress\":{\"aws:SourceIp\":[\"10.0.0.0/"
			     "8\",\"2001:db8::/32\"]}}},"
			     "{\"Effect\":\"Deny\",\"Action\":\"s3:GetObject\",\"Resource\":\"*\","
			     " \"Condition\":{\"IpAddress\":{\"aws:SourceIp\":\"10.9.0.0/16\"}}},"
			     "{\"Effect\":\"Allow\",\"Action\":\"s3:PutObject\",\"Resource\":\"*\","
			     " \"Condition\":{\"Bool\":{\"aws:SecureTransport\":true}}},"
			     "{\"Effect\":\"Allow\",\"Action\":\"s3:DeleteObject\",\"Resource\":\"*"
			     "\","
			     " \"Condition\":{\"DateGreaterThan\":{\"aws:CurrentTime\":\"2023-01-"
			     "01T00:00:00Z\"},"
			     "                "
			     "\"DateLessThan\":{\"aws:CurrentTime\":\"2024-01-01T00:00:00Z\"}}},"
			     "{\"Effect\":\"Allow\",\"Action\":\"s3:ListBucket\",\"Resource\":\"*"
			     "\","
			     " \"Condition\":{\"StringLike\":{\"s3:prefix\":[\"home/alice/"
			     "*\",\"\"]},"
			     "                \"StringEquals\":{\"s3:delimiter\":\"/\"}}},"
			     "{\"Effect\":\"Allow\",\"Action\":\"s3:ListBucketVersions\","
			     "\"Resource\":\"*\","
			     " \"Condition\":{\"NotIpAddress\":{\"aws:SourceIp\":\"192.168.0.0/"
			     "16\"},"
			     "                \"StringNotLike\":{\"s3:prefix\":\"private/*\"}}}]}",
			     NULL);
	policy_ctx c = ctx("s3:GetObject", "arn:aws:s3:::b/k", "K");
	c.source_ip = "10.1.2.3";
	CHECK(policy_eval(p, &c) == POLICY_ALLOW);
	c.source_ip = "::ffff:10.1.2.3"; /* v4-mapped */
	CHECK(policy_eval(p, &c) == POLICY_ALLOW);
	c.source_ip = "10.9.1.1"; /* inside the denied /16 */
	CHECK(policy_eval(p, &c) == POLICY_DENY);
	c.source_ip = "11.0.0.1";
	CHECK(policy_eval(p, &c) == POLICY_NONE);
	c.source_ip = "2001:db8:1::5";
	CHECK(policy_eval(p, &c) == POLICY_ALLOW);
	c.source_ip = "2001:db9::5";
	CHECK(policy_eval(p, &c) == POLICY_NONE);
	c.source_ip = NULL;
	CHECK(policy_eval(p, &c) == POLICY_NONE);

	c = ctx("s3:PutObject", "arn:aws:s3:::b/k", "K");
	CHECK(policy_eval(p, &c) == POLICY_NONE);
	c.secure_transport = 1;
	CHECK(policy_eval(p, &c) == POLICY_ALLOW);

	c = ctx("s3:DeleteObject", "arn:aws:s3:::b/k", "K");
	c.now = 1700000000; /* Nov 2023: inside */
	CHECK(policy_eval(p, &c) == POLICY_ALLOW);
	c.now = 1704067201; /* 2024-01-01T00:00:01Z */
	CHECK(policy_eval(p, &c) == POLICY_NONE);
	c.now = 1672531199; /* 2022-12-31T23:59:59Z */
	CHECK(policy_eval(p, &c) == POLICY_NONE);

	c = ctx("s3:ListBucket", "arn:aws:s3:::b", "K");
	c.delimiter = "/";
	c.prefix = "home/alice/docs/";
	CHECK(policy_eval(p, &c) == POLICY_ALLOW);
	c.prefix = "";
	CHECK(policy_eval(p, &c) == POLICY_ALLOW);
	c.prefix = "home/bob/";
	CHECK(policy_eval(p, &c) == POLICY_NONE);
	c.prefix = NULL; /* absent key: positive test fails */
	CHECK(policy_eval(p, &c) == POLICY_NONE);
	c.prefix = "home/alice/";
	c.delimiter = NULL;
	CHECK(policy_eval(p, &c) == POLICY_NONE);

	c = ctx("s3:ListBucketVersions", "arn:aws:s3:::b", "K");
	c.source_ip = "192.168.1.1";
	CHECK(policy_eval(p, &c) == POLICY_NONE);
	c.source_ip = "172.16.0.1";
	CHECK(policy_eval(p, &c) == POLICY_ALLOW); /* prefix absent: negated test holds */
	c.prefix = "private/x";
	CHECK(policy_eval(p, &c) == POLICY_NONE);
	c.prefix = "public/x";
	CHECK(policy_eval(p, &c) == POLICY_ALLOW);
	policy_free(p);

	/* epoch-second dates and offsets */
	p = parse_ok("{\"Statement\":{\"Effect\":\"Allow\",\"Action\":\"s3:GetObject\","
		     "\"Resource\":\"*\","
		     "\"Condition\":{\"DateLessThan\":{\"aws:CurrentTime\":\"2023-11-14T23:13:20+"
		     "01:00\"}}}}",
		     NULL);
	c = ctx("s3:GetObject", "arn:aws:s3:::b/k", "K");
	c.now = 1700000000 - 1; /* 22:13:19Z = 23:13:19+01:00 */
	CHECK(policy_eval(p, &c) == POLICY_ALLOW);
	c.now = 1700000000 + 1;
	CHECK(policy_eval(p, &c) == POLICY_NONE);
	policy_free(p);
}

static void test_presets(void)
{
	char *js = NULL;
	sl_err err = { 0 };
	CHECK(policy_preset("read", "b1", "team/", &js, &err) == 0);
	policy *p = js ? parse_ok(js, NULL) : NULL;
	policy_ctx c = ctx("s3:GetObject", "arn:aws:s3:::b1/team/x", "K");
	CHECK(policy_decide(0, p, NULL, &c) == POLICY_ALLOW);
	c.resource = "arn:aws:s3:::b1/other/x";
	CHECK(policy_decide(0, p, NULL, &c) == POLICY_NONE);
	c.action = "s3:PutObject";
	c.resource = "arn:aws:s3:::b1/team/x";
	CHECK(policy_decide(0, p, NULL, &c) == POLICY_NONE);
	c = ctx("s3:ListBucket", "arn:aws:s3:::b1", "K");
	c.prefix = "team/a";
	CHECK(policy_decide(0, p, NULL, &c) == POLICY_ALLOW);
	c.prefix = "zzz";
	CHECK(policy_decide(0, p, NULL, &c) == POLICY_NONE);
	policy_free(p);
	free(js);

	CHECK(policy_preset("readwrite", NULL, NULL, &js, &err) == 0);
	p = js ? parse_ok(js, NULL) : NULL;
	c = ctx("s3:PutObject", "arn:aws:s3:::any/x", "K");
	CHECK(policy_decide(0, p, NULL, &c) == POLICY_ALLOW);
	c.action = "s3:DeleteBucket";
	c.resource = "arn:aws:s3:::any";
	CHECK(policy_decide(0, p, NULL, &c) == POLICY_NONE);
	c.action = "seglake:ReplicationRead";
	c.resource = "arn:seglake:::replication";
	CHECK(policy_decide(0, p, NULL, &c) == POLICY_NONE);
	policy_free(p);
	free(js);

	CHECK(policy_preset("replication", NULL, NULL, &js, &err) == 0);
	p = js ? parse_ok(js, NULL) : NULL;
	c = ctx("seglake:ReplicationRead", "arn:seglake:::replication", "K");
	CHECK(policy_decide(0, p, NULL, &c) == POLICY_ALLOW);
	c.action = "s3:GetObject";
	c.resource = "arn:aws:s3:::b/x";
	CHECK(policy_decide(0, p, NULL, &c) == POLICY_NONE); /* replication key cannot read */
	policy_free(p);
	free(js);

	CHECK(policy_preset("bogus", NULL, NULL, &js, &err) == SL_EINVAL);
	CHECK(policy_preset("read", NULL, "p/", &js, &err) == SL_EINVAL);
	CHECK(policy_action_known("S3:GETOBJECT"));
	CHECK(!policy_action_known("s3:Get*"));
	char arn[64];
	CHECK(policy_arn("b", "k/x", arn, sizeof(arn)) == 0 && !strcmp(arn, "arn:aws:s3:::b/k/x"));
	CHECK(policy_arn("b", NULL, arn, sizeof(arn)) == 0 && !strcmp(arn, "arn:aws:s3:::b"));
	CHECK(policy_arn("b", "0123456789012345678901234567890123456789012345678901234567890123",
			 arn, sizeof(arn)) == -1);
}

int main(void)
{
	test_malformed();
	test_actions_resources();
	test_deny_wins();
	test_anonymous();
	test_conditions();
	test_presets();
	return check_done("policy");
}
