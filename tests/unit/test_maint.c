/*
 * test_maint.c - fsck, scrub, gc, mpu-gc, snapshot/restore and maintenance
 * mode on a real lake with small segments: corruption is found and reads of
 * damaged data fail cleanly, gc reclaims space while a writer keeps writing
 * and rebuild-index afterwards still gives the same state, a restored
 * snapshot lists and reads like the original.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "core/core.h"
#include "core/maint.h"

static char *root, *dir;
static core *C;
static const core_opts small_segs = { .segment_max_bytes = 12u << 20 };

static void fill(uint8_t *b, size_t n, unsigned seed)
{
	uint32_t x = seed * 2654435761u + 7;
	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		b[i] = (uint8_t)x;
	}
}

static int put(const char *b, const char *k, const void *d, size_t n)
{
	core_writer *w;
	int rc = core_put_begin(C, b, k, &w, NULL);
	if (rc == 0)
		rc = core_put_write(w, d, n, NULL);
	if (rc == 0)
		return core_put_commit(w, NULL, NULL, NULL);
	if (w)
		core_put_abort(w);
	return rc;
}

static int check_obj(const char *b, const char *k, size_t n, unsigned seed)
{
	core_objinfo oi = { 0 };
	core_reader *r;
	sl_err err = { 0 };
	int rc = core_get_open(C, b, k, NULL, &oi, &r, &err);
	if (rc < 0) {
		core_objinfo_clear(&oi);
		return rc;
	}
	uint8_t *got = malloc(n + 1), *want = malloc(n + 1);
	ssize_t g = core_read_at(r, got, n, 0, &err);
	fill(want, n, seed);
	rc = g < 0 ? (int)g : (g == (ssize_t)n && memcmp(got, want, n) == 0 ? 0 : SL_EINTERNAL);
	free(got);
	free(want);
	core_reader_free(r);
	core_objinfo_clear(&oi);
	return rc;
}

static uint64_t dir_bytes(void)
{
	char cmd[4300];
	snprintf(cmd, sizeof(cmd), "du -sb '%s/segments' | cut -f1", dir);
	FILE *p = popen(cmd, "r");
	unsigned long long v = 0;
	if (p) {
		if (fscanf(p, "%llu", &v) != 1)
			v = 0;
		pclose(p);
	}
	return v;
}

static char *listing(core *c)
{
	core_list_opts o = { .versions = 1, .max_keys = 1000 };
	core_list_result r;
	char *s = calloc(1, 1 << 16);
	core_bucket *bl;
	size_t nb, len = 0;
	core_bucket_list(c, &bl, &nb, NULL);
	for (size_t b = 0; b < nb; b++) {
		if (core_list(c, bl[b].name, &o, &r, NULL) < 0)
			continue;
		for (size_t i = 0; i < r.nobjs; i++)
			len += (size_t)snprintf(s + len, (1 << 16) - len,
						"%s/%s %s %s %" PRIu64 "\n", bl[b].name,
						r.objs[i].key, r.objs[i].version_id, r.objs[i].etag,
						r.objs[i].size);
		core_list_result_clear(&r);
	}
	free(bl);
	return s;
}

static volatile int stop_writer;
static int writer_errors, writer_count;

static void *bg_writer(void *arg)
{
	(void)arg;
	uint8_t buf[64 * 1024];
	for (int i = 0; !stop_writer; i++) {
		char k[64];
		snprintf(k, sizeof(k), "bg/%d", i);
		fill(buf, sizeof(buf), 1000u + (unsigned)i);
		if (put("maint", k, buf, sizeof(buf)) < 0)
			writer_errors++;
		else
			writer_count++;
	}
	return NULL;
}

static void test_fsck_and_orphans(void)
{
	core_fsck_report fr;
	CHECK_OK(core_fsck(C, &fr, NULL, NULL, NULL));
	CHECK(fr.versions >= 4 && fr.missing_chunks == 0 && fr.bad_locations == 0 &&
	      fr.size_mismatches == 0 && fr.missing_segments == 0 && fr.orphan_chunks == 0);
	CHECK_OK(core_delete(C, "maint", "b", NULL, NULL, NULL));
	CHECK_OK(core_fsck(C, &fr, NULL, NULL, NULL));
	CHECK(fr.orphan_chunks == 3 && fr.orphan_bytes == 9u << 20);
}

static void test_scrub(void)
{
	/* flip one byte of object c's data in its segment */
	core_chunkref *ch;
	size_t n;
	core_objinfo oi = { 0 };
	CHECK_OK(core_get_chunks(C, "maint", "c", NULL, &oi, &ch, &n, NULL));
	core_objinfo_clear(&oi);
	core_scrub_report sr;
	CHECK_OK(core_scrub(C, 0, &sr, NULL, NULL, NULL));
	CHECK(sr.damaged == 0 && sr.chunks > 5);
	/* locate c's first chunk on disk through fsck's view: read its segment
	 * files and find the record by its hash */
	char cmd[4400];
	snprintf(cmd, sizeof(cmd), "%s/segments", dir);
	int flipped = 0;
	for (uint64_t id = 1; id < 100 && !flipped; id++) {
		char p[4400];
		snprintf(p, sizeof(p), "%s/segments/seg-%016" PRIx64 ".sl", dir, id);
		int fd = open(p, O_RDWR);
		if (fd < 0)
			continue;
		struct stat st;
		fstat(fd, &st);
		uint8_t *buf = malloc((size_t)st.st_size);
		if (pread(fd, buf, (size_t)st.st_size, 0) == st.st_size) {
			for (off_t o = 0; o + 32 < st.st_size; o++)
				if (memcmp(buf + o, ch[0].hash, 32) == 0) {
					uint8_t b = buf[o + 32 + 1000] ^ 0x5a;
					flipped = pwrite(fd, &b, 1, o + 32 + 1000) == 1;
					break;
				}
		}
		free(buf);
		close(fd);
	}
	CHECK(flipped);
	free(ch);
	/* even before scrub, a read of the damaged chunk fails: never wrong bytes */
	CHECK(check_obj("maint", "c", 9u << 20, 3) == SL_ECORRUPT);
	CHECK_OK(core_scrub(C, 0, &sr, NULL, NULL, NULL));
	CHECK(sr.damaged == 1 && sr.damaged_versions == 1 &&
	      strcmp(sr.first_damaged, "maint/c") == 0);
	sl_err err = { 0 };
	core_reader *r;
	int rc = core_get_open(C, "maint", "c", NULL, &oi, &r, &err);
	if (rc == 0) {
		uint8_t buf[4096];
		rc = (int)core_read_at(r, buf, sizeof(buf), 0, &err);
		core_reader_free(r);
	}
	core_objinfo_clear(&oi);
	CHECK(rc == SL_ECORRUPT && strstr(err.msg, "damaged"));
	/* the damage survives a restart, other objects still read */
	core_close(C);
	CHECK_OK(core_open(dir, &small_segs, &C, NULL));
	CHECK(check_obj("maint", "a", 9u << 20, 1) == 0);
	CHECK(check_obj("maint", "c", 9u << 20, 3) == SL_ECORRUPT);
	CHECK_OK(core_delete(C, "maint", "c", NULL, NULL, NULL)); /* drop the damaged object */
}

static void test_gc(void)
{
	uint8_t *d = malloc(9u << 20);
	for (unsigned i = 0; i < 6; i++) {
		char k[32];
		snprintf(k, sizeof(k), "g%u", i);
		fill(d, 9u << 20, 10 + i);
		CHECK_OK(put("maint", k, d, 9u << 20));
	}
	for (unsigned i = 0; i < 5; i++) {
		char k[32];
		snprintf(k, sizeof(k), "g%u", i);
		CHECK_OK(core_delete(C, "maint", k, NULL, NULL, NULL));
	}
	free(d);
	core_gc_report plan, run;
	/* while a peer still needs the oplog entries of the deleted objects,
	 * their chunks stay */
	CHECK_OK(core_gc(C, 1, 0.3, 0, 0, &plan, NULL, NULL, NULL));
	CHECK(plan.reclaim_bytes < 20u << 20);
	CHECK_OK(core_gc(C, 1, 0.3, 0, core_oplog_head(C), &plan, NULL, NULL, NULL));
	CHECK(plan.reclaim_segments >= 2 && plan.dead_bytes >= 40u << 20);
	uint64_t before = dir_bytes();
	stop_writer = 0;
	pthread_t th;
	pthread_create(&th, NULL, bg_writer, NULL);
	while (writer_count < 5)
		usleep(1000);
	CHECK_OK(core_gc(C, 0, 0.3, 0, core_oplog_head(C), &run, NULL, NULL, NULL));
	stop_writer = 1;
	pthread_join(th, NULL);
	uint64_t after = dir_bytes();
	CHECK(run.deleted_segments >= 2);
	CHECK(after + (40u << 20) < before + (uint64_t)writer_count * 70000);
	CHECK(writer_errors == 0 && writer_count > 0);
	fprintf(stderr,
		"gc: %" PRIu64 " -> %" PRIu64 " bytes, %" PRIu64 " segments deleted, %" PRIu64
		" chunks moved, %d concurrent puts\n",
		before, after, run.deleted_segments, run.moved_chunks, writer_count);
	CHECK(check_obj("maint", "a", 9u << 20, 1) == 0);
	CHECK(check_obj("maint", "g5", 9u << 20, 15) == 0);
	core_fsck_report fr;
	CHECK_OK(core_fsck(C, &fr, NULL, NULL, NULL));
	CHECK(fr.missing_chunks == 0 && fr.bad_locations == 0 && fr.missing_segments == 0);
	/* segments are still self-describing: rebuild gives the same state */
	char *l1 = listing(C);
	core_close(C);
	CHECK_OK(core_rebuild_index(dir, NULL));
	CHECK_OK(core_open(dir, &small_segs, &C, NULL));
	char *l2 = listing(C);
	CHECK(strlen(l1) > 100 && strcmp(l1, l2) == 0);
	CHECK(check_obj("maint", "g5", 9u << 20, 15) == 0);
	free(l1);
	free(l2);
}

static void test_snapshot_restore(void)
{
	char snap[4300], rest[4300];
	snprintf(snap, sizeof(snap), "%s/snap", root);
	snprintf(rest, sizeof(rest), "%s/restored", root);
	char *l1 = listing(C);
	CHECK_OK(core_snapshot(C, snap, NULL, NULL, NULL));
	uint8_t x[100];
	fill(x, sizeof(x), 77);
	CHECK_OK(put("maint", "after-snapshot", x, sizeof(x)));
	sl_err err = { 0 };
	CHECK(core_snapshot(C, snap, NULL, NULL, &err) < 0); /* exists */
	CHECK_OK(core_restore(snap, rest, NULL));
	core *R = NULL;
	CHECK_OK(core_open(rest, NULL, &R, NULL));
	char *l2 = listing(R);
	CHECK(strcmp(l1, l2) == 0);
	core_objinfo oi = { 0 };
	CHECK(core_head(R, "maint", "after-snapshot", NULL, &oi, NULL) == SL_ENOKEY);
	core_objinfo_clear(&oi);
	core_close(R);
	free(l1);
	free(l2);
	CHECK(core_restore(root, rest, &err) == SL_EINVAL);
}

static void test_mpu_gc_and_maintenance(void)
{
	char id[40];
	CHECK_OK(core_mpu_create(C, "maint", "up", NULL, id, NULL));
	uint64_t n;
	CHECK_OK(core_mpu_gc(C, 3600 * 1000, &n, NULL));
	CHECK(n == 0);
	CHECK_OK(core_mpu_gc(C, -1000, &n, NULL));
	CHECK(n == 1);
	core_set_maintenance(C, 1);
	sl_err err = { 0 };
	CHECK(put("maint", "maint", "x", 1) == SL_EMAINT);
	CHECK(core_delete(C, "maint", "a", NULL, NULL, &err) == SL_EMAINT);
	CHECK(strstr(err.msg, "maintenance") != NULL);
	CHECK(check_obj("maint", "a", 9u << 20, 1) == 0);
	core_set_maintenance(C, 0);
	CHECK_OK(put("maint", "maint", "x", 1));
}

int main(void)
{
	root = check_tmpdir();
	char d[4200];
	snprintf(d, sizeof(d), "%s/lake", root);
	dir = strdup(d);
	CHECK_OK(core_init(dir, NULL));
	CHECK_OK(core_open(dir, &small_segs, &C, NULL));
	CHECK_OK(core_bucket_create(C, "maint", CORE_VERS_UNVERSIONED, NULL));
	uint8_t *buf = malloc(9u << 20);
	const char *keys[] = { "a", "b", "c" };
	for (unsigned i = 0; i < 3; i++) {
		fill(buf, 9u << 20, i + 1);
		CHECK_OK(put("maint", keys[i], buf, 9u << 20));
	}
	CHECK_OK(put("maint", "small", "tiny", 4));
	free(buf);
	test_fsck_and_orphans();
	test_scrub();
	test_gc();
	test_snapshot_restore();
	test_mpu_gc_and_maintenance();
	core_close(C);
	check_rmrf(root);
	free(root);
	free(dir);
	return check_done("maint");
}
