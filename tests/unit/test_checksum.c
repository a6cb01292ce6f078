/*
 * test_checksum.c - known-answer and consistency tests for auth/checksum.c
 * (CRC32, CRC32C hardware and software, CRC64NVME, SHA1, SHA256, base64,
 * CRC combine). Not a benchmark.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

#include "auth/checksum.h"

/* not in the header: the table fallback, to compare with the SSE4.2 path */
uint32_t checksum_crc32c_soft(uint32_t crc, const void *data, size_t len);

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

static void b64_of(int algo, const void *data, size_t len, char out[CHECKSUM_B64_MAX])
{
	checksum c;
	if (checksum_init(&c, algo) != 0) {
		out[0] = '\0';
		return;
	}
	checksum_update(&c, data, len);
	if (checksum_final_base64(&c, out) != 0)
		out[0] = '\0';
}

static void test_check_values(void)
{
	const char *s = "123456789";
	CHECK(checksum_crc32(0, s, 9) == 0xCBF43926u);
	CHECK(checksum_crc32c(0, s, 9) == 0xE3069283u);
	CHECK(checksum_crc32c_soft(0, s, 9) == 0xE3069283u);
	CHECK(checksum_crc64nvme(0, s, 9) == 0xAE8B14860A799888ull);
	CHECK(checksum_crc32(0, "", 0) == 0);
	CHECK(checksum_crc32c(0, "", 0) == 0);
	CHECK(checksum_crc64nvme(0, "", 0) == 0);

	char b[CHECKSUM_B64_MAX];
	b64_of(CHECKSUM_SHA256, "abc", 3, b);
	CHECK(strcmp(b, "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=") == 0);
	b64_of(CHECKSUM_SHA1, "abc", 3, b);
	CHECK(strcmp(b, "qZk+NkcGgWq6PiVxeFDCbJzQ2J0=") == 0);
	b64_of(CHECKSUM_CRC32, "", 0, b);
	CHECK(strcmp(b, "AAAAAA==") == 0);
	/* CRC32 0xCBF43926 big-endian -> y/Q5Jg== */
	b64_of(CHECKSUM_CRC32, s, 9, b);
	CHECK(strcmp(b, "y/Q5Jg==") == 0);
	b64_of(CHECKSUM_CRC32C, s, 9, b);
	CHECK(strcmp(b, "4waSgw==") == 0);
	b64_of(CHECKSUM_CRC64NVME, s, 9, b);
	CHECK(strcmp(b, "rosUhgp5mIg=") == 0);

	/* AWS trailing-checksum example: 66560 bytes of 'a' -> CRC32C sOO8/Q== */
	size_t n = 66560;
	char *a = malloc(n);
	memset(a, 'a', n);
	b64_of(CHECKSUM_CRC32C, a, n, b);
	CHECK(strcmp(b, "sOO8/Q==") == 0);
	free(a);
}

static void test_incremental(void)
{
	size_t n = 100000;
	unsigned char *buf = malloc(n);
	for (size_t i = 0; i < n; i++)
		buf[i] = (unsigned char)rnd();
	int algos[] = { CHECKSUM_CRC32, CHECKSUM_CRC32C, CHECKSUM_CRC64NVME, CHECKSUM_SHA1,
			CHECKSUM_SHA256 };
	for (size_t a = 0; a < 5; a++) {
		char whole[CHECKSUM_B64_MAX], parts[CHECKSUM_B64_MAX];
		b64_of(algos[a], buf, n, whole);
		checksum c;
		CHECK(checksum_init(&c, algos[a]) == 0);
		size_t off = 0;
		while (off < n) {
			size_t k = rnd() % 3000;
			if (k > n - off)
				k = n - off;
			checksum_update(&c, buf + off, k);
			off += k;
		}
		CHECK(checksum_final_base64(&c, parts) == 0);
		CHECK(strcmp(whole, parts) == 0);
		CHECK(checksum_value_valid(algos[a], whole));
		CHECK(checksum_value_equal(algos[a], whole, parts));
	}
	/* hardware vs software CRC32C at every alignment and many lengths */
	int same = 1;
	for (size_t off = 0; off < 16; off++)
		for (size_t len = 0; len < 300; len += 7)
			if (checksum_crc32c(0, buf + off, len) !=
			    checksum_crc32c_soft(0, buf + off, len))
				same = 0;
	CHECK(same);
	/* lengths around the three-stream windows (3 x 4096 bytes) of the fast
	 * path, at odd offsets, and long random ones */
	size_t lens[] = { 12287, 12288, 12289, 24575, 24576, 24583, 36864 + 5, 99999 - 16 };
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++)
		for (size_t off = 0; off < 16; off += 5)
			if (checksum_crc32c(0, buf + off, lens[i]) !=
			    checksum_crc32c_soft(0, buf + off, lens[i]))
				same = 0;
	for (int r = 0; r < 50; r++) {
		size_t off = rnd() % 64, len = rnd() % (n - 64);
		uint32_t seed = (uint32_t)rnd();
		if (checksum_crc32c(seed, buf + off, len) !=
		    checksum_crc32c_soft(seed, buf + off, len))
			same = 0;
	}
	CHECK(same);
	CHECK(checksum_crc32c(0x1234, buf, n) == checksum_crc32c_soft(0x1234, buf, n));
	free(buf);
}

static void test_combine(void)
{
	unsigned char buf[5000];
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (unsigned char)rnd();
	size_t splits[] = { 0, 1, 7, 100, 2500, 4999, 5000 };
	for (size_t s = 0; s < sizeof(splits) / sizeof(splits[0]); s++) {
		size_t k = splits[s], rest = sizeof(buf) - k;
		uint64_t out = 0;
		CHECK(checksum_crc_combine(CHECKSUM_CRC32, checksum_crc32(0, buf, k),
					   checksum_crc32(0, buf + k, rest), rest, &out) == 0);
		CHECK(out == checksum_crc32(0, buf, sizeof(buf)));
		CHECK(checksum_crc_combine(CHECKSUM_CRC32C, checksum_crc32c(0, buf, k),
					   checksum_crc32c(0, buf + k, rest), rest, &out) == 0);
		CHECK(out == checksum_crc32c(0, buf, sizeof(buf)));
		CHECK(checksum_crc_combine(CHECKSUM_CRC64NVME, checksum_crc64nvme(0, buf, k),
					   checksum_crc64nvme(0, buf + k, rest), rest, &out) == 0);
		CHECK(out == checksum_crc64nvme(0, buf, sizeof(buf)));
	}
	uint64_t out;
	CHECK(checksum_crc_combine(CHECKSUM_SHA256, 1, 2, 3, &out) == -1);
}

static void test_names_and_values(void)
{
	CHECK(checksum_algo_from_name("CRC32") == CHECKSUM_CRC32);
	CHECK(checksum_algo_from_name("crc32c") == CHECKSUM_CRC32C);
	CHECK(checksum_algo_from_name("CRC64NVME") == CHECKSUM_CRC64NVME);
	CHECK(checksum_algo_from_name("sha1") == CHECKSUM_SHA1);
	CHECK(checksum_algo_from_name("SHA256") == CHECKSUM_SHA256);
	CHECK(checksum_algo_from_name("x-amz-checksum-crc64nvme") == CHECKSUM_CRC64NVME);
	CHECK(checksum_algo_from_name("X-Amz-Checksum-SHA256") == CHECKSUM_SHA256);
	CHECK(checksum_algo_from_name("md5") == CHECKSUM_NONE);
	CHECK(checksum_algo_from_name("") == CHECKSUM_NONE);
	CHECK(checksum_algo_from_name(NULL) == CHECKSUM_NONE);
	CHECK(strcmp(checksum_header_name(CHECKSUM_CRC32C), "x-amz-checksum-crc32c") == 0);
	CHECK(strcmp(checksum_algo_name(CHECKSUM_CRC64NVME), "CRC64NVME") == 0);
	CHECK(checksum_digest_len(CHECKSUM_CRC64NVME) == 8);
	CHECK(checksum_digest_len(99) == 0);
	checksum c;
	CHECK(checksum_init(&c, 99) == -1);
	checksum_clear(&c);

	CHECK(checksum_value_valid(CHECKSUM_CRC32, "AAAAAA=="));
	CHECK(!checksum_value_valid(CHECKSUM_CRC64NVME, "AAAAAA=="));
	CHECK(!checksum_value_valid(CHECKSUM_CRC32, "AAAAAA="));
	CHECK(!checksum_value_valid(CHECKSUM_CRC32, "AA*AAA=="));
	CHECK(!checksum_value_valid(CHECKSUM_CRC32, "AAAA=A=="));
	CHECK(!checksum_value_valid(CHECKSUM_CRC32, ""));
	CHECK(!checksum_value_valid(CHECKSUM_CRC32, " AAAAAA=="));
	CHECK(!checksum_value_equal(CHECKSUM_CRC32, "AAAAAA==", "AAAAAQ=="));
	CHECK(checksum_value_equal(CHECKSUM_CRC32, "y/Q5Jg==", "y/Q5Jg=="));

	unsigned char raw[8];
	CHECK(checksum_base64_decode("rosUhgp5mIg=", raw, sizeof(raw)) == 8);
	CHECK(raw[0] == 0xAE && raw[7] == 0x88);
	CHECK(checksum_base64_decode("rosUhgp5mIg=", raw, 7) == -1);
	CHECK(checksum_base64_decode("QQ==", raw, 1) == 1 && raw[0] == 'A');
	CHECK(checksum_base64_decode("QUI=", raw, 2) == 2 && raw[1] == 'B');
	CHECK(checksum_base64_decode("QUJD", raw, 3) == 3 && raw[2] == 'C');
	char enc[8];
	CHECK(checksum_base64_encode((const unsigned char *)"AB", 2, enc, sizeof(enc)) == 4);
	CHECK(strcmp(enc, "QUI=") == 0);
	CHECK(checksum_base64_encode((const unsigned char *)"ABCDEF", 6, enc, 8) == -1);

	/* random garbage never crashes the decoder */
	int sane = 1;
	for (int i = 0; i < 20000; i++) {
		char g[24];
		size_t l = rnd() % sizeof(g);
		for (size_t k = 0; k < l; k++)
			g[k] = (char)(rnd() % 255 + 1);
		g[l] = '\0';
		unsigned char o[32];
		int r = checksum_base64_decode(g, o, sizeof(o));
		if (r < -1 || r > 32)
			sane = 0;
		(void)checksum_value_valid(CHECKSUM_SHA256, g);
	}
	CHECK(sane);
}

int main(void)
{
	test_check_values();
	test_incremental();
	test_combine();
	test_names_and_values();
	return check_done("checksum");
}
