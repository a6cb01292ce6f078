/*
 * test_ops_limits.c - unit tests of ops/limits (failed-auth token buckets
 * per IP and key, in-flight caps, replay cache, X-Forwarded-For with
 * trusted proxies, CIDR lists), ops/metrics (counters, histogram, render)
 * and ops/accesslog (JSON lines, redaction). No daemon involved.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "ops/accesslog.h"
#include "ops/limits.h"
#include "ops/metrics.h"

static void test_auth_buckets(void)
{
	ops_limits *l = NULL;
	sl_err err = { 0 };
	ops_limits_opts o = { .fail_burst = 5, .fail_per_min = 60 };
	CHECK(ops_limits_new(&o, &l, &err) == 0);
	int64_t t = 1000000;
	/* 5 failures allowed, the 6th from the same IP is limited */
	for (int i = 0; i < 5; i++)
		CHECK(ops_limits_auth_failed(l, "10.0.0.1", NULL, t) == OPS_LIMIT_OK);
	CHECK(ops_limits_auth_failed(l, "10.0.0.1", NULL, t) == OPS_LIMIT_IP);
	/* another IP is unaffected */
	CHECK(ops_limits_auth_failed(l, "10.0.0.2", NULL, t) == OPS_LIMIT_OK);
	/* refill: 60/min = one per second */
	CHECK(ops_limits_auth_failed(l, "10.0.0.1", NULL, t + 500) == OPS_LIMIT_IP);
	CHECK(ops_limits_auth_failed(l, "10.0.0.1", NULL, t + 2600) == OPS_LIMIT_OK);
	/* per key, across many IPs */
	char ip[32];
	int limited = 0;
	for (int i = 0; i < 8; i++) {
		snprintf(ip, sizeof(ip), "192.0.2.%d", i + 1);
		if (ops_limits_auth_failed(l, ip, "SLKEYUNDERATTACK", t) == OPS_LIMIT_KEY)
			limited++;
	}
	CHECK(limited == 3);
	/* many distinct IPs: the table stays bounded and keeps working */
	for (int i = 0; i < 10000; i++) {
		snprintf(ip, sizeof(ip), "172.16.%d.%d", i / 250, i % 250);
		ops_limits_auth_failed(l, ip, NULL, t + i);
	}
	CHECK(ops_limits_auth_failed(l, "203.0.113.9", NULL, t + 20000) == OPS_LIMIT_OK);
	ops_limits_free(l);
}

static void test_inflight_replay(void)
{
	ops_limits *l = NULL;
	sl_err err = { 0 };
	ops_limits_opts o = { .inflight_per_key = 2, .replay_entries = 64 };
	CHECK(ops_limits_new(&o, &l, &err) == 0);
	CHECK(ops_limits_enter(l, "K1") == 0);
	CHECK(ops_limits_enter(l, "K1") == 0);
	CHECK(ops_limits_enter(l, "K1") == -1);
	CHECK(ops_limits_enter(l, "K2") == 0);
	ops_limits_leave(l, "K1");
	CHECK(ops_limits_enter(l, "K1") == 0);
	CHECK(ops_limits_enter(l, "") == 0); /* anonymous: not counted */
	CHECK(ops_limits_replayed(l, "sig-a", 1000, 5000) == 0);
	CHECK(ops_limits_replayed(l, "sig-a", 2000, 5000) == 1);
	CHECK(ops_limits_replayed(l, "sig-b", 2000, 5000) == 0);
	CHECK(ops_limits_replayed(l, "sig-a", 6000, 9000) == 0); /* expired: new again */
	for (int i = 0; i < 1000; i++) {
		char s[32];
		snprintf(s, sizeof(s), "flood-%d", i);
		ops_limits_replayed(l, s, 7000, 9000);
	}
	ops_limits_free(l);
	/* cache off */
	o.replay_entries = 0;
	CHECK(ops_limits_new(&o, &l, &err) == 0);
	CHECK(ops_limits_replayed(l, "x", 1, 10) == 0 && ops_limits_replayed(l, "x", 2, 10) == 0);
	ops_limits_free(l);
}

static void test_client_ip(void)
{
	ops_limits *l = NULL;
	sl_err err = { 0 };
	ops_limits_opts o = { .trusted_proxies = "10.0.0.0/8, ::1" };
	CHECK(ops_limits_new(&o, &l, &err) == 0);
	char ip[64];
	ops_limits_client_ip(l, "10.1.1.1", "198.51.100.7, 10.2.2.2", ip, sizeof(ip));
	CHECK(strcmp(ip, "198.51.100.7") == 0);
	/* a spoofed left-most entry is ignored: right-most untrusted wins */
	ops_limits_client_ip(l, "10.1.1.1", "1.1.1.1, 203.0.113.5", ip, sizeof(ip));
	CHECK(strcmp(ip, "203.0.113.5") == 0);
	/* untrusted peer: header ignored */
	ops_limits_client_ip(l, "192.0.2.1", "1.1.1.1", ip, sizeof(ip));
	CHECK(strcmp(ip, "192.0.2.1") == 0);
	ops_limits_client_ip(l, "::1", "2001:db8::1", ip, sizeof(ip));
	CHECK(strcmp(ip, "2001:db8::1") == 0);
	ops_limits_client_ip(l, "10.1.1.1", "garbage", ip, sizeof(ip));
	CHECK(strcmp(ip, "10.1.1.1") == 0);
	ops_limits_client_ip(l, "10.1.1.1", NULL, ip, sizeof(ip));
	CHECK(strcmp(ip, "10.1.1.1") == 0);
	ops_limits_free(l);
	o.trusted_proxies = "10.0.0.0/40";
	CHECK(ops_limits_new(&o, &l, &err) == SL_EINVAL);

	ops_cidrs *c = NULL;
	CHECK(ops_cidrs_parse("127.0.0.0/8,192.168.1.0/24", &c, &err) == 0);
	CHECK(ops_cidrs_match(c, "127.0.0.1"));
	CHECK(ops_cidrs_match(c, "::ffff:127.0.0.1"));
	CHECK(ops_cidrs_match(c, "192.168.1.200"));
	CHECK(!ops_cidrs_match(c, "192.168.2.1"));
	CHECK(!ops_cidrs_match(c, "not-an-ip"));
	CHECK(!ops_cidrs_match(c, NULL));
	ops_cidrs_free(c);
	CHECK(ops_cidrs_parse("1.2.3", &c, &err) == SL_EINVAL);
}

static void test_metrics(void)
{
	ops_metrics *m = ops_metrics_new();
	CHECK(m != NULL);
	ops_metrics_request(m, "GetObject", 200, 0, 1000, 0.003);
	ops_metrics_request(m, "GetObject", 200, 0, 500, 0.2);
	ops_metrics_request(m, "GetObject", 404, 0, 0, 0.001);
	ops_metrics_request(m, "PutObject", 200, 4096, 0, 42.0);
	ops_metrics_request(m, "bad\"op\n", 400, 0, 0, 0.0);
	ops_metrics_inflight(m, 1);
	ops_metrics_auth_failure(m, "SignatureDoesNotMatch");
	ops_metrics_auth_failure(m, "SignatureDoesNotMatch");
	ops_metrics_rate_limited(m, "auth_ip");
	core_scrub_report sr = { .chunks = 3, .bytes = 300, .damaged = 1 };
	ops_metrics_scrub(m, &sr);
	char *txt = ops_metrics_render(m, NULL);
	CHECK(txt != NULL);
	if (txt) {
		CHECK(strstr(txt, "seglake_requests_total{op=\"GetObject\",status=\"200\"} 2\n"));
		CHECK(strstr(txt, "seglake_requests_total{op=\"GetObject\",status=\"404\"} 1\n"));
		CHECK(strstr(txt, "seglake_request_duration_seconds_bucket{op=\"GetObject\",le=\"0."
				  "005\"} 2\n"));
		CHECK(strstr(txt, "seglake_request_duration_seconds_bucket{op=\"GetObject\",le=\"+"
				  "Inf\"} 3\n"));
		CHECK(strstr(txt, "seglake_request_duration_seconds_bucket{op=\"PutObject\",le="
				  "\"30\"} 0\n"));
		CHECK(strstr(txt, "seglake_request_duration_seconds_count{op=\"PutObject\"} 1\n"));
		CHECK(strstr(txt, "seglake_sent_bytes_total{op=\"GetObject\"} 1500\n"));
		CHECK(strstr(txt, "seglake_received_bytes_total{op=\"PutObject\"} 4096\n"));
		CHECK(strstr(txt, "seglake_requests_in_flight 1\n"));
		CHECK(strstr(txt, "seglake_auth_failures_total{reason=\"SignatureDoesNotMatch\"} "
				  "2\n"));
		CHECK(strstr(txt, "seglake_rate_limited_total{limit=\"auth_ip\"} 1\n"));
		CHECK(strstr(txt, "seglake_scrub_damaged_chunks 1\n"));
		CHECK(strstr(txt, "op=\"bad_op_\"")); /* label sanitised */
		CHECK(!strstr(txt, "bad\"op"));
	}
	free(txt);
	ops_metrics_totals tot;
	ops_metrics_totals_get(m, &tot);
	CHECK(tot.requests == 5 && tot.errors_4xx == 2 && tot.bytes_out == 1500);
	CHECK(tot.auth_failures == 2 && tot.rate_limited == 1 && tot.inflight == 1);
	/* bounded: many distinct ops fold into "other" */
	for (int i = 0; i < 2000; i++) {
		char op[32];
		snprintf(op, sizeof(op), "Op%d", i);
		ops_metrics_request(m, op, 200 + i % 7, 0, 0, 0.01);
	}
	txt = ops_metrics_render(m, NULL);
	CHECK(txt && strstr(txt, "op=\"other\""));
	CHECK(txt && strlen(txt) < 4u * 1024 * 1024);
	free(txt);
	ops_metrics_free(m);
}

static void test_accesslog(void)
{
	char q[256];
	ops_redact_query("X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=abcdef0123&list-type=2",
			 q, sizeof(q));
	CHECK(strcmp(q, "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=REDACTED&list-type=2") ==
	      0);
	ops_redact_query("x-amz-security-token=tok&a", q, sizeof(q));
	CHECK(strcmp(q, "x-amz-security-token=REDACTED&a") == 0);
	ops_access a = { .request_id = "R1",
			 .remote = "10.0.0.1",
			 .key_id = NULL,
			 .op = "GetObject",
			 .bucket = "b",
			 .key = "k\"x",
			 .query = "X-Amz-Signature=secret",
			 .status = 200,
			 .bytes_out = 12,
			 .duration_ms = 1.5 };
	char *line = ops_access_line(&a);
	CHECK(line != NULL);
	if (line) {
		CHECK(strstr(line, "\"request_id\":\"R1\""));
		CHECK(strstr(line, "\"key_id\":\"anonymous\""));
		CHECK(strstr(line, "\"key\":\"k\\\"x\""));
		CHECK(strstr(line, "\"status\":200"));
		CHECK(strstr(line, "\"bytes_out\":12"));
		CHECK(!strstr(line, "secret"));
		CHECK(!strchr(line, '\n'));
	}
	free(line);
}

int main(void)
{
	test_auth_buckets();
	test_inflight_replay();
	test_client_ip();
	test_metrics();
	test_accesslog();
	return check_done("ops_limits");
}
