/*
 * checksum.c - S3 additional checksums (CRC32, CRC32C, CRC64NVME, SHA1,
 * SHA256) and their base64 wire form. See checksum.h. Not here: MD5/ETag.
 *
 * CRC32C is common/crc32c.c (the segment record checksum too). The
 * CRC64NVME slicing tables are generated (crc64_table.h): no run-time init.
 */
#include "auth/checksum.h"

#include "common/crc32c.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

/* ---- CRC polynomials (reflected) -------------------------------------------- */

#define CRC32C_POLY 0x82F63B78u
#define CRC64_POLY 0x9A6C9329AC4BC9B5ull

#include "auth/crc64_table.h"

/* ---- raw CRCs --------------------------------------------------------------- */

uint32_t checksum_crc32(uint32_t crc, const void *data, size_t len)
{
	const unsigned char *p = data;
	/* zlib takes uInt lengths: feed in bounded pieces. */
	while (len > 0) {
		uInt n = len > (1u << 30) ? (1u << 30) : (uInt)len;
		crc = (uint32_t)crc32(crc, p, n);
		p += n;
		len -= n;
	}
	return crc;
}

uint32_t checksum_crc32c(uint32_t crc, const void *data, size_t len)
{
	return sl_crc32c(crc, data, len);
}

/* Exposed to the unit test through the same symbol family (not in the header):
 * lets the test compare the fallback with the hardware path. */
uint32_t checksum_crc32c_soft(uint32_t crc, const void *data, size_t len);
uint32_t checksum_crc32c_soft(uint32_t crc, const void *data, size_t len)
{
	return sl_crc32c_soft(crc, data, len);
}

uint64_t checksum_crc64nvme(uint64_t crc, const void *data, size_t len)
{
	const unsigned char *p = data;
	crc = ~crc;
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	/* slicing-by-8: eight table lookups per 8 bytes */
	while (len >= 8) {
		uint64_t v;
		memcpy(&v, p, 8);
		crc ^= v;
		crc = crc64_slice[7][crc & 0xff] ^ crc64_slice[6][(crc >> 8) & 0xff] ^
		      crc64_slice[5][(crc >> 16) & 0xff] ^ crc64_slice[4][(crc >> 24) & 0xff] ^
		      crc64_slice[3][(crc >> 32) & 0xff] ^ crc64_slice[2][(crc >> 40) & 0xff] ^
		      crc64_slice[1][(crc >> 48) & 0xff] ^ crc64_slice[0][crc >> 56];
		p += 8;
		len -= 8;
	}
#endif
	while (len--)
		crc = crc64_slice[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
	return ~crc;
}

/* ---- combine (zlib's GF(2) matrix method, for any reflected CRC <= 64 bits) */

static uint64_t gf2_times(const uint64_t *mat, uint64_t vec)
{
	uint64_t sum = 0;
	while (vec) {
		if (vec & 1)
			sum ^= *mat;
		vec >>= 1;
		mat++;
	}
	return sum;
}

static void gf2_square(uint64_t *square, const uint64_t *mat, int width)
{
	for (int n = 0; n < width; n++)
		square[n] = gf2_times(mat, mat[n]);
}

int checksum_crc_combine(int algo, uint64_t crc_a, uint64_t crc_b, uint64_t len_b, uint64_t *out)
{
	uint64_t poly;
	int width;
	switch (algo) {
	case CHECKSUM_CRC32:
		poly = 0xEDB88320u;
		width = 32;
		break;
	case CHECKSUM_CRC32C:
		poly = CRC32C_POLY;
		width = 32;
		break;
	case CHECKSUM_CRC64NVME:
		poly = CRC64_POLY;
		width = 64;
		break;
	default:
		return -1;
	}
	if (len_b == 0) {
		*out = crc_a;
		return 0;
	}
	uint64_t even[64], odd[64];
	/* odd: operator for one zero bit */
	odd[0] = poly;
	uint64_t row = 1;
	for (int n = 1; n < width; n++) {
		odd[n] = row;
		row <<= 1;
	}
	gf2_square(even, odd, width); /* two zero bits */
	gf2_square(odd, even, width); /* four zero bits */
	/* apply len_b zero bytes to crc_a */
	do {
		gf2_square(even, odd, width);
		if (len_b & 1)
			crc_a = gf2_times(even, crc_a);
		len_b >>= 1;
		if (len_b == 0)
			break;
		gf2_square(odd, even, width);
		if (len_b & 1)
			crc_a = gf2_times(odd, crc_a);
		len_b >>= 1;
	} while (len_b != 0);
	*out = crc_a ^ crc_b;
	return 0;
}

/* ---- names ------------------------------------------------------------------ */

static const struct {
	int algo;
	const char *name;
	const char *header;
	size_t len;
} algos[] = {
	{ CHECKSUM_CRC32, "CRC32", "x-amz-checksum-crc32", 4 },
	{ CHECKSUM_CRC32C, "CRC32C", "x-amz-checksum-crc32c", 4 },
	{ CHECKSUM_CRC64NVME, "CRC64NVME", "x-amz-checksum-crc64nvme", 8 },
	{ CHECKSUM_SHA1, "SHA1", "x-amz-checksum-sha1", 20 },
	{ CHECKSUM_SHA256, "SHA256", "x-amz-checksum-sha256", 32 },
};
#define N_ALGOS (sizeof(algos) / sizeof(algos[0]))

int checksum_algo_from_name(const char *name)
{
	if (!name)
		return CHECKSUM_NONE;
	for (size_t i = 0; i < N_ALGOS; i++)
		if (strcasecmp(name, algos[i].name) == 0 || strcasecmp(name, algos[i].header) == 0)
			return algos[i].algo;
	return CHECKSUM_NONE;
}

const char *checksum_algo_name(int algo)
{
	for (size_t i = 0; i < N_ALGOS; i++)
		if (algos[i].algo == algo)
			return algos[i].name;
	return "";
}

const char *checksum_header_name(int algo)
{
	for (size_t i = 0; i < N_ALGOS; i++)
		if (algos[i].algo == algo)
			return algos[i].header;
	return "";
}

size_t checksum_digest_len(int algo)
{
	for (size_t i = 0; i < N_ALGOS; i++)
		if (algos[i].algo == algo)
			return algos[i].len;
	return 0;
}

/* ---- the object ------------------------------------------------------------- */

int checksum_init(checksum *c, int algo)
{
	memset(c, 0, sizeof(*c));
	const EVP_MD *md = NULL;
	switch (algo) {
	case CHECKSUM_CRC32:
	case CHECKSUM_CRC32C:
	case CHECKSUM_CRC64NVME:
		c->algo = algo;
		return 0;
	case CHECKSUM_SHA1:
		md = EVP_sha1();
		break;
	case CHECKSUM_SHA256:
		md = EVP_sha256();
		break;
	default:
		return -1;
	}
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	if (!ctx)
		return -2;
	if (EVP_DigestInit_ex(ctx, md, NULL) != 1) {
		EVP_MD_CTX_free(ctx);
		return -2;
	}
	c->algo = algo;
	c->md = ctx;
	return 0;
}

void checksum_update(checksum *c, const void *data, size_t len)
{
	if (len == 0)
		return;
	switch (c->algo) {
	case CHECKSUM_CRC32:
		c->crc = checksum_crc32((uint32_t)c->crc, data, len);
		break;
	case CHECKSUM_CRC32C:
		c->crc = checksum_crc32c((uint32_t)c->crc, data, len);
		break;
	case CHECKSUM_CRC64NVME:
		c->crc = checksum_crc64nvme(c->crc, data, len);
		break;
	case CHECKSUM_SHA1:
	case CHECKSUM_SHA256:
		if (c->md)
			EVP_DigestUpdate(c->md, data, len);
		break;
	default:
		break;
	}
}

int checksum_final(checksum *c, unsigned char raw[CHECKSUM_MAX_DIGEST])
{
	int n = -1;
	switch (c->algo) {
	case CHECKSUM_CRC32:
	case CHECKSUM_CRC32C:
		for (int i = 0; i < 4; i++)
			raw[i] = (unsigned char)(c->crc >> (24 - 8 * i));
		n = 4;
		break;
	case CHECKSUM_CRC64NVME:
		for (int i = 0; i < 8; i++)
			raw[i] = (unsigned char)(c->crc >> (56 - 8 * i));
		n = 8;
		break;
	case CHECKSUM_SHA1:
	case CHECKSUM_SHA256: {
		unsigned int len = 0;
		if (c->md && EVP_DigestFinal_ex(c->md, raw, &len) == 1)
			n = (int)len;
		break;
	}
	default:
		break;
	}
	checksum_clear(c);
	return n;
}

int checksum_final_base64(checksum *c, char out[CHECKSUM_B64_MAX])
{
	unsigned char raw[CHECKSUM_MAX_DIGEST];
	int n = checksum_final(c, raw);
	if (n < 0)
		return -1;
	return checksum_base64_encode(raw, (size_t)n, out, CHECKSUM_B64_MAX) < 0 ? -1 : 0;
}

void checksum_clear(checksum *c)
{
	if (!c)
		return;
	if (c->md)
		EVP_MD_CTX_free(c->md);
	c->md = NULL;
	c->algo = CHECKSUM_NONE;
	c->crc = 0;
}

/* ---- base64 and values ------------------------------------------------------ */

int checksum_base64_encode(const unsigned char *in, size_t len, char *out, size_t cap)
{
	size_t need = 4 * ((len + 2) / 3) + 1;
	if (cap < need || len > (size_t)1 << 30)
		return -1;
	return EVP_EncodeBlock((unsigned char *)out, in, (int)len);
}

static int b64_char_ok(char ch)
{
	return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
	       ch == '+' || ch == '/';
}

int checksum_base64_decode(const char *in, unsigned char *out, size_t cap)
{
	if (!in)
		return -1;
	size_t len = strlen(in);
	if (len == 0)
		return 0;
	if (len % 4 != 0 || len > (size_t)1 << 30)
		return -1;
	size_t pad = 0;
	if (in[len - 1] == '=')
		pad++;
	if (in[len - 2] == '=')
		pad++;
	for (size_t i = 0; i < len - pad; i++)
		if (!b64_char_ok(in[i]))
			return -1;
	size_t outlen = len / 4 * 3 - pad;
	if (outlen > cap)
		return -1;
	unsigned char tmp[3];
	/* EVP_DecodeBlock writes len/4*3 bytes; decode the last quad separately
	 * so out never needs room for the padding bytes. */
	if (len > 4 && EVP_DecodeBlock(out, (const unsigned char *)in, (int)(len - 4)) < 0)
		return -1;
	if (EVP_DecodeBlock(tmp, (const unsigned char *)in + len - 4, 4) < 0)
		return -1;
	memcpy(out + (len - 4) / 4 * 3, tmp, 3 - pad);
	return (int)outlen;
}

int checksum_value_valid(int algo, const char *b64)
{
	size_t want = checksum_digest_len(algo);
	unsigned char raw[CHECKSUM_MAX_DIGEST];
	if (want == 0 || !b64)
		return 0;
	int n = checksum_base64_decode(b64, raw, sizeof(raw));
	return n >= 0 && (size_t)n == want;
}

int checksum_value_equal(int algo, const char *b64_a, const char *b64_b)
{
	size_t want = checksum_digest_len(algo);
	unsigned char a[CHECKSUM_MAX_DIGEST], b[CHECKSUM_MAX_DIGEST];
	if (want == 0 || !b64_a || !b64_b)
		return 0;
	int na = checksum_base64_decode(b64_a, a, sizeof(a));
	int nb = checksum_base64_decode(b64_b, b, sizeof(b));
	if (na < 0 || nb < 0 || (size_t)na != want || (size_t)nb != want)
		return 0;
	return CRYPTO_memcmp(a, b, want) == 0;
}
