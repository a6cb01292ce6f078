/*
 * ops.c - `seglake key|status|fsck|scrub|gc|mpu-gc|snapshot|restore|
 * maintenance`: parses arguments into an ops request (ops/ops.h), runs it
 * through the daemon's admin socket when a daemon holds the data dir, or
 * directly on the data dir otherwise, renders progress (a bar with rate and
 * ETA on a terminal, plain log lines otherwise), handles Ctrl-C (first:
 * stop at a safe point; second: default action) and prints a summary.
 * Not here: the commands' work (ops/exec.c, core/maint.h).
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "auth/keys.h"
#include "auth/policy.h"
#include "cli/cli.h"
#include "cli/ops.h"
#include "core/maint.h"
#include "ops/ops.h"

/* The one piece of process state a signal handler may touch. */
static volatile sig_atomic_t ops_interrupted;

static void ops_on_sigint(int sig)
{
	(void)sig;
	ops_interrupted = 1;
	signal(SIGINT, SIG_DFL); /* a second Ctrl-C ends the process */
	signal(SIGTERM, SIG_DFL);
}

typedef struct progress {
	int tty, quiet;
	char phase[32];
	int64_t phase_start_ms, last_ms;
	int drawn;
	int told_stop;
} progress;

static int64_t ops_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void ops_human(uint64_t v, char *out, size_t cap)
{
	const char *u[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB" };
	double d = (double)v;
	int i = 0;
	while (d >= 1024 && i < 5) {
		d /= 1024;
		i++;
	}
	if (i == 0)
		snprintf(out, cap, "%" PRIu64 " B", v);
	else
		snprintf(out, cap, "%.1f %s", d, u[i]);
}

static void ops_amount(const char *phase, double v, char *out, size_t cap)
{
	if (strcmp(phase, "scrub") == 0)
		ops_human((uint64_t)v, out, cap);
	else
		snprintf(out, cap, "%.0f", v);
}

static void ops_eta(double sec, char *out, size_t cap)
{
	if (sec < 0 || sec > 360000) {
		snprintf(out, cap, "--:--");
		return;
	}
	unsigned s = (unsigned)(sec + 0.5);
	if (s >= 3600)
		snprintf(out, cap, "%u:%02u:%02u", s / 3600, s / 60 % 60, s % 60);
	else
		snprintf(out, cap, "%u:%02u", s / 60, s % 60);
}

static void progress_finish(progress *p)
{
	if (p->tty && p->drawn) {
		fputc('\n', stderr);
		p->drawn = 0;
	}
}

/* ops_emit_fn: renders a progress message; returns non-zero after Ctrl-C. */
static int progress_emit(void *ctx, json_t *msg)
{
	progress *p = ctx;
	if (ops_interrupted && !p->told_stop) {
		progress_finish(p);
		fprintf(stderr, "seglake: interrupted: stopping at the next safe point "
				"(Ctrl-C again to abort at once)\n");
		p->told_stop = 1;
	}
	json_t *pr = json_object_get(msg, "progress");
	const char *phase = json_string_value(json_object_get(pr, "phase"));
	if (!phase || p->quiet)
		return ops_interrupted;
	double done = (double)json_integer_value(json_object_get(pr, "done"));
	double total = (double)json_integer_value(json_object_get(pr, "total"));
	int64_t now = ops_now_ms();
	if (strncmp(p->phase, phase, sizeof(p->phase) - 1) != 0) {
		progress_finish(p);
		snprintf(p->phase, sizeof(p->phase), "%s", phase);
		p->phase_start_ms = now;
		p->last_ms = 0;
	}
	double el = (double)(now - p->phase_start_ms) / 1000.0;
	double rate = el > 0.05 ? done / el : 0;
	char a[32], t[32], r[32], eta[32];
	ops_amount(phase, done, a, sizeof(a));
	ops_amount(phase, total, t, sizeof(t));
	ops_amount(phase, rate, r, sizeof(r));
	ops_eta(rate > 0 && total > done ? (total - done) / rate
					 : (total && done >= total ? 0 : -1),
		eta, sizeof(eta));
	if (p->tty) {
		char bar[31];
		int fill = total > 0 ? (int)(30.0 * (done > total ? total : done) / total) : 0;
		for (int i = 0; i < 30; i++)
			bar[i] = i < fill ? '#' : '.';
		bar[30] = '\0';
		if (total > 0)
			fprintf(stderr, "\r%-10s [%s] %3.0f%%  %s/%s  %s/s  ETA %s   ", phase, bar,
				100.0 * done / total, a, t, r, eta);
		else
			fprintf(stderr, "\r%-10s %s  %s/s   ", phase, a, r);
		p->drawn = 1;
	} else if (now - p->last_ms >= 2000 || (total > 0 && done >= total)) {
		if (total > 0)
			fprintf(stderr, "seglake: %s: %s of %s (%.0f%%), %s/s, ETA %s\n", phase, a,
				t, 100.0 * done / total, r, eta);
		else
			fprintf(stderr, "seglake: %s: %s done, %s/s\n", phase, a, r);
		p->last_ms = now;
	}
	fflush(stderr);
	return ops_interrupted;
}

/* ---- argument parsing ------------------------------------------------------------ */

typedef struct opsargs {
	const char *data;
	int json;
	const char *pos[4];
	int npos;
	/* options with values */
	const char *name, *policy, *access, *bucket, *prefix, *min_dead, *rate, *older_than;
	int root, clear, dry;
} opsargs;

static int ops_parse(const char *cmd, int argc, char **argv, opsargs *a)
{
	memset(a, 0, sizeof(*a));
	static const char *const valued[] = { "--data",	      "--name",	  "--policy",	"--access",
					      "--bucket",     "--prefix", "--min-dead", "--rate",
					      "--older-than", NULL };
	for (int i = 1; i < argc; i++) {
		const char *s = argv[i];
		int v = -1;
		for (int k = 0; valued[k]; k++)
			if (!strcmp(s, valued[k]))
				v = k;
		if (v >= 0) {
			if (i + 1 >= argc) {
				fprintf(stderr, "seglake: %s: %s needs a value\n", cmd, s);
				return -1;
			}
			const char *val = argv[++i];
			const char **slot[] = { &a->data,     &a->name,	  &a->policy,
						&a->access,   &a->bucket, &a->prefix,
						&a->min_dead, &a->rate,	  &a->older_than };
			*slot[v] = val;
		} else if (!strcmp(s, "--json")) {
			a->json = 1;
		} else if (!strcmp(s, "--root")) {
			a->root = 1;
		} else if (!strcmp(s, "--clear")) {
			a->clear = 1;
		} else if (!strcmp(s, "--dry-run")) {
			a->dry = 1;
		} else if (s[0] == '-' && s[1]) {
			fprintf(stderr, "seglake: %s: unknown option %s\n", cmd, s);
			return -1;
		} else if (a->npos < 4) {
			a->pos[a->npos++] = s;
		} else {
			fprintf(stderr, "seglake: %s: too many arguments\n", cmd);
			return -1;
		}
	}
	return 0;
}

/* "7d", "12h", "30m", "45s", or plain seconds, into milliseconds. */
static int ops_parse_duration(const char *s, int64_t *ms)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || v < 0)
		return -1;
	double mul = 1000;
	if (*end) {
		switch (*end) {
		case 's':
			mul = 1000;
			break;
		case 'm':
			mul = 60000;
			break;
		case 'h':
			mul = 3600000;
			break;
		case 'd':
			mul = 86400000;
			break;
		default:
			return -1;
		}
		if (end[1])
			return -1;
	}
	if (v * mul > 1e15)
		return -1;
	*ms = (int64_t)(v * mul);
	return 0;
}

/* MB/s (10^6 bytes) to bytes/s. */
static int ops_parse_rate(const char *s, json_int_t *out)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || *end || v < 0 || v > 1e9)
		return -1;
	*out = (json_int_t)(v * 1e6);
	return 0;
}

/* Reads a policy argument: inline JSON ({...}), '-' (stdin) or a file. */
static char *ops_read_policy(const char *arg)
{
	if (arg[0] == '{')
		return strdup(arg);
	FILE *f = strcmp(arg, "-") == 0 ? stdin : fopen(arg, "r");
	if (!f) {
		fprintf(stderr, "seglake: cannot read policy %s: %s\n", arg, strerror(errno));
		return NULL;
	}
	size_t cap = POLICY_MAX_BYTES + 2, len = 0;
	char *buf = malloc(cap);
	if (buf) {
		len = fread(buf, 1, cap - 1, f);
		buf[len] = '\0';
	}
	if (f != stdin)
		fclose(f);
	if (buf && len > POLICY_MAX_BYTES) {
		fprintf(stderr, "seglake: policy %s is larger than %d bytes\n", arg,
			POLICY_MAX_BYTES);
		free(buf);
		return NULL;
	}
	return buf;
}

/* The identity policy from --policy or --access/--bucket/--prefix; *out
 * NULL if neither was given. Returns -1 on a bad argument. */
static int ops_policy_arg(const opsargs *a, char **out)
{
	*out = NULL;
	if (a->policy && a->access) {
		fprintf(stderr, "seglake: key: --policy and --access exclude each other\n");
		return -1;
	}
	if (a->policy)
		return (*out = ops_read_policy(a->policy)) ? 0 : -1;
	if (a->access || a->bucket || a->prefix) {
		sl_err err = { 0 };
		if (policy_preset(a->access ? a->access : "read", a->bucket, a->prefix, out, &err) <
		    0) {
			fprintf(stderr, "seglake: key: %s\n", err.msg);
			return -1;
		}
	}
	return 0;
}

/* ---- output ---------------------------------------------------------------------- */

static uint64_t jnum(json_t *o, const char *k)
{
	return (uint64_t)json_integer_value(json_object_get(o, k));
}

static void ops_print_key(json_t *k, int verbose)
{
	const char *pol = json_string_value(json_object_get(k, "policy"));
	int root = json_is_true(json_object_get(k, "root"));
	if (!verbose) {
		char when[32] = "";
		time_t t = (time_t)(jnum(k, "created_ms") / 1000);
		struct tm tm;
		if (gmtime_r(&t, &tm))
			strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
		printf("%-22s %-16s %-8s %-9s %s\n", json_string_value(json_object_get(k, "id")),
		       json_string_value(json_object_get(k, "name")),
		       json_is_true(json_object_get(k, "enabled")) ? "enabled" : "DISABLED",
		       root  ? "root"
		       : pol ? "policy"
			     : "no-access",
		       when);
		return;
	}
	printf("access key: %s\n", json_string_value(json_object_get(k, "id")));
	printf("name:       %s\n", json_string_value(json_object_get(k, "name")));
	printf("state:      %s\n",
	       json_is_true(json_object_get(k, "enabled")) ? "enabled" : "disabled");
	printf("root:       %s\n", root ? "yes (allowed everything)" : "no");
	if (pol) {
		json_t *pj = json_loads(pol, 0, NULL);
		char *pretty = pj ? json_dumps(pj, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
		printf("policy:\n%s\n", pretty ? pretty : pol);
		free(pretty);
		json_decref(pj);
	} else if (!root) {
		printf("policy:     none (the key can do nothing until one is attached)\n");
	}
}

/* Prints the result; returns the exit status. */
static int ops_print(const char *cmd, const char *sub, json_t *r, int as_json)
{
	if (as_json) {
		char *s = json_dumps(r, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		if (s)
			puts(s);
		free(s);
		if (!strcmp(cmd, "fsck"))
			return jnum(r, "problems") ? 1 : 0;
		if (!strcmp(cmd, "scrub"))
			return jnum(r, "damaged") ? 1 : 0;
		return 0;
	}
	char h1[32], h2[32], h3[32];
	if (!strcmp(cmd, "status")) {
		ops_human(jnum(r, "bytes"), h1, sizeof(h1));
		ops_human(jnum(r, "segment_bytes"), h2, sizeof(h2));
		ops_human(jnum(r, "dead_bytes"), h3, sizeof(h3));
		printf("node:         %s\n", json_string_value(json_object_get(r, "node")));
		printf("buckets:      %" PRIu64 "\n", jnum(r, "buckets"));
		printf("objects:      %" PRIu64 " (%" PRIu64 " versions)\n", jnum(r, "objects"),
		       jnum(r, "versions"));
		printf("bytes:        %" PRIu64 " (%s)\n", jnum(r, "bytes"), h1);
		printf("segments:     %" PRIu64 " (%s)\n", jnum(r, "segments"), h2);
		printf("dead bytes:   %" PRIu64 " (%s)\n", jnum(r, "dead_bytes"), h3);
		printf("oplog:        head %" PRIu64 ", horizon %" PRIu64 ", %" PRIu64 " entries\n",
		       jnum(r, "oplog_head"), jnum(r, "oplog_horizon"), jnum(r, "oplog_entries"));
		printf("maintenance:  %s\n", json_is_true(json_object_get(r, "maintenance"))
						     ? "on (writes refused)"
						     : "off");
		json_t *peers = json_object_get(r, "peers");
		if (!json_array_size(peers))
			printf("peers:        none\n");
		size_t i;
		json_t *p;
		json_array_foreach(peers, i, p)
		{
			printf("peer:         %s applied up to %" PRIu64 "\n",
			       json_string_value(json_object_get(p, "peer")), jnum(p, "seq"));
		}
		return 0;
	}
	if (!strcmp(cmd, "fsck")) {
		printf("fsck: checked %" PRIu64 " versions, %" PRIu64 " chunk references, %" PRIu64
		       " chunks, %" PRIu64 " segments%s\n",
		       jnum(r, "versions"), jnum(r, "chunk_refs"), jnum(r, "chunks"),
		       jnum(r, "segments"),
		       json_is_true(json_object_get(r, "stopped")) ? " (interrupted)" : "");
		static const char *const names[] = { "missing_chunks",	 "damaged_versions",
						     "bad_locations",	 "size_mismatches",
						     "missing_segments", NULL };
		for (int i = 0; names[i]; i++)
			if (jnum(r, names[i]))
				printf("  %s: %" PRIu64 "\n", names[i], jnum(r, names[i]));
		ops_human(jnum(r, "orphan_bytes"), h1, sizeof(h1));
		printf("  orphan chunks (gc reclaims them): %" PRIu64 " (%s)\n",
		       jnum(r, "orphan_chunks"), h1);
		if (jnum(r, "problems")) {
			printf("fsck: %" PRIu64 " problem(s); first: %s\n", jnum(r, "problems"),
			       json_string_value(json_object_get(r, "first_problem")));
			return 1;
		}
		printf("fsck: no problems found\n");
		return 0;
	}
	if (!strcmp(cmd, "scrub")) {
		ops_human(jnum(r, "bytes"), h1, sizeof(h1));
		printf("scrub: re-hashed %" PRIu64 " chunks (%s)%s: %" PRIu64 " damaged chunk(s), "
		       "%" PRIu64 " damaged "
		       "version("
		       "s)\n",
		       jnum(r, "chunks"), h1,
		       json_is_true(json_object_get(r, "stopped")) ? " before being interrupted"
								   : "",
		       jnum(r, "damaged"), jnum(r, "damaged_versions"));
		const char *fd = json_string_value(json_object_get(r, "first_damaged"));
		if (jnum(r, "damaged")) {
			printf("scrub: first damaged object: %s (reads of damaged versions now "
			       "fail)\n",
			       fd && *fd ? fd : "?");
			return 1;
		}
		return 0;
	}
	if (!strcmp(cmd, "gc")) {
		ops_human(jnum(r, "segment_bytes"), h1, sizeof(h1));
		ops_human(jnum(r, "dead_bytes"), h2, sizeof(h2));
		ops_human(jnum(r, "reclaim_bytes"), h3, sizeof(h3));
		printf("gc: %" PRIu64 " segments (%s), %s dead chunk bytes\n", jnum(r, "segments"),
		       h1, h2);
		if (json_is_true(json_object_get(r, "dry_run"))) {
			printf("gc plan: would reclaim %s from %" PRIu64 " segment(s) at least "
			       "%.0f%% dead (`seglake gc "
			       "run` to do it)\n",
			       h3, jnum(r, "reclaim_segments"),
			       100 * json_number_value(json_object_get(r, "min_dead")));
		} else {
			ops_human(jnum(r, "moved_bytes"), h1, sizeof(h1));
			printf("gc run: reclaimed %s; deleted %" PRIu64 " segment(s), moved "
			       "%" PRIu64 " live chunk(s) "
			       "(%s)%s\n",
			       h3, jnum(r, "deleted_segments"), jnum(r, "moved_chunks"), h1,
			       json_is_true(json_object_get(r, "stopped")) ? "; interrupted" : "");
		}
		return 0;
	}
	if (!strcmp(cmd, "mpu-gc")) {
		printf("mpu-gc: aborted %" PRIu64 " multipart upload(s) older than %.1f h\n",
		       jnum(r, "aborted"), (double)jnum(r, "older_than_ms") / 3600000.0);
		return 0;
	}
	if (!strcmp(cmd, "snapshot")) {
		printf("snapshot: written to %s (%" PRIu64 " segments, oplog at %" PRIu64 ")\n",
		       json_string_value(json_object_get(r, "dest")), jnum(r, "segments"),
		       jnum(r, "oplog_head"));
		if (json_is_true(json_object_get(r, "master_key")))
			printf("snapshot: it includes master.key (mode 0600): keep the snapshot as "
			       "private as the data dir, or move the key elsewhere\n");
		return 0;
	}
	if (!strcmp(cmd, "maintenance")) {
		printf("maintenance mode: %s\n", json_is_true(json_object_get(r, "maintenance"))
							 ? "on (writes are refused, reads continue)"
							 : "off");
		return 0;
	}
	/* key */
	if (!strcmp(sub, "list")) {
		json_t *ks = json_object_get(r, "keys");
		printf("%-22s %-16s %-8s %-9s %s\n", "ACCESS KEY", "NAME", "STATE", "ACCESS",
		       "CREATED");
		size_t i;
		json_t *k;
		json_array_foreach(ks, i, k) ops_print_key(k, 0);
		return 0;
	}
	if (!strcmp(sub, "delete")) {
		printf("deleted key %s\n", json_string_value(json_object_get(r, "id")));
		return 0;
	}
	ops_print_key(r, 1);
	const char *secret = json_string_value(json_object_get(r, "secret"));
	if (secret) {
		printf("secret key: %s\n", secret);
		printf("(the secret is shown only now; it is stored encrypted and cannot be shown "
		       "again)\n");
	}
	return 0;
}

/* ---- running ---------------------------------------------------------------------- */

static void ops_usage(FILE *f)
{
	fputs("usage:\n"
	      "  seglake status [--json]\n"
	      "  seglake fsck [--json]\n"
	      "  seglake scrub [--rate MB/s] [--json]\n"
	      "  seglake gc plan|run [--min-dead 0.3] [--rate MB/s] [--json]\n"
	      "  seglake mpu-gc [--older-than 7d]\n"
	      "  seglake snapshot DEST\n"
	      "  seglake restore SNAPSHOT DEST\n"
	      "  seglake maintenance on|off|status\n"
	      "  seglake key create [--name N] [--policy FILE|-|JSON | --access "
	      "read|write|readwrite|all|replication\n"
	      "                     [--bucket B [--prefix P]]] [--root]\n"
	      "  seglake key list|show ID|enable ID|disable ID|rotate ID|delete ID\n"
	      "  seglake key policy ID (FILE|-|JSON | --access ... [--bucket B] [--prefix P] | "
	      "--clear)\n"
	      "Every command takes --data DIR (default $SEGLAKE_DATA or ./data). With a daemon\n"
	      "running on DIR they go through its admin socket, otherwise they open DIR "
	      "directly.\n",
	      f);
}

/* Builds the request for cmd; returns NULL (message printed) on bad args. */
static json_t *ops_request(const char *cmd, opsargs *a, const char **sub, int *rc)
{
	json_t *args = json_object();
	*rc = 2;
	*sub = "";
	if (!strcmp(cmd, "status") || !strcmp(cmd, "fsck")) {
		if (a->npos)
			goto usage;
	} else if (!strcmp(cmd, "scrub")) {
		json_int_t rate = 0;
		if (a->npos || (a->rate && ops_parse_rate(a->rate, &rate) != 0))
			goto usage;
		json_object_set_new(args, "rate", json_integer(rate));
	} else if (!strcmp(cmd, "gc")) {
		if (a->npos != 1 || (strcmp(a->pos[0], "plan") && strcmp(a->pos[0], "run")))
			goto usage;
		*sub = a->pos[0];
		json_object_set_new(args, "dry_run",
				    json_boolean(!strcmp(a->pos[0], "plan") || a->dry));
		if (a->min_dead) {
			char *end;
			double v = strtod(a->min_dead, &end);
			if (end == a->min_dead || *end || v < 0 || v > 1) {
				fprintf(stderr, "seglake: gc: --min-dead takes a ratio between 0 "
						"and 1\n");
				goto fail;
			}
			json_object_set_new(args, "min_dead", json_real(v));
		}
		json_int_t rate = 0;
		if (a->rate && ops_parse_rate(a->rate, &rate) != 0)
			goto usage;
		json_object_set_new(args, "rate", json_integer(rate));
	} else if (!strcmp(cmd, "mpu-gc")) {
		int64_t ms = 7LL * 86400000;
		if (a->npos || (a->older_than && ops_parse_duration(a->older_than, &ms) != 0))
			goto usage;
		json_object_set_new(args, "older_than_ms", json_integer(ms));
	} else if (!strcmp(cmd, "snapshot")) {
		if (a->npos != 1)
			goto usage;
		/* The daemon may run elsewhere in the tree: make the path absolute. */
		char abs[PATH_MAX];
		if (a->pos[0][0] == '/') {
			snprintf(abs, sizeof(abs), "%s", a->pos[0]);
		} else {
			char cwd[PATH_MAX];
			if (!getcwd(cwd, sizeof(cwd)) || snprintf(abs, sizeof(abs), "%s/%s", cwd,
								  a->pos[0]) >= (int)sizeof(abs)) {
				fprintf(stderr, "seglake: snapshot: path too long\n");
				goto fail;
			}
		}
		json_object_set_new(args, "dest", json_string(abs));
	} else if (!strcmp(cmd, "maintenance")) {
		if (a->npos != 1)
			goto usage;
		if (!strcmp(a->pos[0], "on") || !strcmp(a->pos[0], "off"))
			json_object_set_new(args, "on", json_boolean(!strcmp(a->pos[0], "on")));
		else if (strcmp(a->pos[0], "status"))
			goto usage;
	} else if (!strcmp(cmd, "key")) {
		if (a->npos < 1)
			goto usage;
		*sub = a->pos[0];
		char *pol = NULL;
		if (!strcmp(*sub, "create")) {
			if (a->npos != 1 || ops_policy_arg(a, &pol) != 0)
				goto usage_free;
			if (a->name)
				json_object_set_new(args, "name", json_string(a->name));
			if (pol)
				json_object_set_new(args, "policy", json_string(pol));
			json_object_set_new(args, "root", json_boolean(a->root));
			if (!pol && !a->root)
				fprintf(stderr, "seglake: note: the new key has no policy and can "
						"do nothing "
						"until one is attached (seglake key policy ID "
						"...)\n");
		} else if (!strcmp(*sub, "list")) {
			if (a->npos != 1)
				goto usage;
		} else if (!strcmp(*sub, "policy")) {
			if (a->npos < 2 || a->npos > 3)
				goto usage;
			json_object_set_new(args, "id", json_string(a->pos[1]));
			if (a->clear) {
				if (a->npos != 2 || a->policy || a->access)
					goto usage;
				json_object_set_new(args, "policy", json_null());
			} else {
				opsargs b = *a;
				if (a->npos == 3)
					b.policy = a->pos[2];
				if (ops_policy_arg(&b, &pol) != 0)
					goto usage_free;
				if (!pol) {
					fprintf(stderr, "seglake: key policy: give a policy, "
							"--access or --clear\n");
					goto fail;
				}
				json_object_set_new(args, "policy", json_string(pol));
			}
		} else if (!strcmp(*sub, "show") || !strcmp(*sub, "enable") ||
			   !strcmp(*sub, "disable") || !strcmp(*sub, "rotate") ||
			   !strcmp(*sub, "delete")) {
			if (a->npos != 2)
				goto usage;
			json_object_set_new(args, "id", json_string(a->pos[1]));
		} else {
			goto usage;
		}
		free(pol);
		char name[32];
		snprintf(name, sizeof(name), "key-%s", *sub);
		json_t *req = json_pack("{ssso}", "cmd", name, "args", args);
		return req;
	usage_free:
		free(pol);
		goto fail;
	}
	return json_pack("{ssso}", "cmd", cmd, "args", args);
usage:
	ops_usage(stderr);
fail:
	json_decref(args);
	return NULL;
}

/* Direct mode: the root key of DATA/credentials (if any) joins the key
 * table as serve would do, so `key list` shows it before a first serve. */
static void ops_import_root(keys *k, const char *dir)
{
	char path[4200], id[KEYS_ID_MAX + 1], sec[KEYS_SECRET_MAX + 1];
	snprintf(path, sizeof(path), "%s/credentials", dir);
	sl_err err = { 0 };
	if (keys_credentials_read(path, id, sec, &err) == 0 &&
	    keys_ensure_root(k, id, sec, NULL, &err) < 0)
		fprintf(stderr, "seglake: warning: cannot import the root key from %s: %s\n", path,
			err.msg);
	OPENSSL_cleanse(sec, sizeof(sec));
}

static int ops_restore(opsargs *a)
{
	if (a->npos != 2) {
		ops_usage(stderr);
		return 2;
	}
	sl_err err = { 0 };
	if (core_restore(a->pos[0], a->pos[1], &err) < 0)
		return cli_fail("restore", &err);
	if (keys_master_copy(a->pos[0], a->pos[1], &err) < 0)
		return cli_fail("restore", &err);
	printf("restore: %s restored into %s (start it with `seglake serve --data %s`)\n",
	       a->pos[0], a->pos[1], a->pos[1]);
	return 0;
}

int cli_ops(const char *cmd, int argc, char **argv)
{
	opsargs a;
	if (ops_parse(cmd, argc, argv, &a) != 0)
		return 2;
	if (a.npos == 1 && !strcmp(a.pos[0], "help")) {
		ops_usage(stdout);
		return 0;
	}
	if (!strcmp(cmd, "restore"))
		return ops_restore(&a);
	const char *sub;
	int rc;
	json_t *req = ops_request(cmd, &a, &sub, &rc);
	if (!req)
		return rc;
	const char *dir = cli_data_dir(a.data);

	struct sigaction sa = { 0 };
	sa.sa_handler = ops_on_sigint;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	progress pr = { .tty = isatty(2), .quiet = 0 };

	sl_err err = { 0 };
	json_t *result = NULL;
	core *c = NULL;
	int orc = core_open(dir, NULL, &c, &err);
	if (orc == SL_ELOCKED) {
		char held[256];
		snprintf(held, sizeof(held), "%s", err.msg);
		orc = ops_admin_call(dir, req, progress_emit, &pr, &ops_interrupted, &result, &err);
		progress_finish(&pr);
		if (orc == SL_ENOTSUP) {
			fprintf(stderr, "seglake: %s: %s, and no admin socket answers there (%s)\n",
				cmd, held, err.msg);
			json_decref(req);
			return 1;
		}
	} else if (orc == 0) {
		if (!strcmp(cmd, "maintenance")) {
			core_close(c);
			json_decref(req);
			fprintf(stderr,
				"seglake: maintenance: no daemon runs on %s; maintenance mode "
				"applies to a running daemon\n",
				dir);
			return 1;
		}
		keys *k = NULL;
		if (!strcmp(cmd, "key")) {
			orc = keys_open(dir, &k, &err);
			if (orc == 0)
				ops_import_root(k, dir);
		}
		if (orc == 0) {
			ops_env env = { .c = c, .k = k };
			orc = ops_exec(&env, req, progress_emit, &pr, &result, &err);
			progress_finish(&pr);
		}
		keys_close(k);
		core_close(c);
	}
	json_decref(req);
	if (orc < 0) {
		json_decref(result);
		return cli_fail(cmd, &err);
	}
	rc = ops_print(cmd, sub, result, a.json);
	json_decref(result);
	return rc;
}
