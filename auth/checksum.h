/*
 * checksum.h - the S3 additional-checksum algorithms behind one small object.
 *
 * CRC32 (zlib), CRC32C (Castagnoli; SSE4.2 instruction when the CPU has it,
 * table fallback otherwise), CRC64NVME (reflected poly 0x9A6C9329AC4BC9B5,
 * init/xorout ~0), SHA1 and SHA256 (OpenSSL EVP). Values are exchanged in
 * the form S3 uses in x-amz-checksum-* headers and trailers: base64 of the
 * big-endian digest bytes.
 *
 * Not here: MD5/ETag (use OpenSSL directly), the chunk SHA-256 of store/.
 *
 * Usage:
 *   checksum c;
 *   if (checksum_init(&c, checksum_algo_from_name("crc32c")) != 0) ...;
 *   checksum_update(&c, buf, n); ...
 *   char b64[CHECKSUM_B64_MAX];
 *   checksum_final_base64(&c, b64);   // also releases resources
 * checksum_clear() releases a checksum that was not finalised (safe always).
 */
#ifndef SL_AUTH_CHECKSUM_H
#define SL_AUTH_CHECKSUM_H

#include <stddef.h>
#include <stdint.h>

enum checksum_algo {
	CHECKSUM_NONE = 0,
	CHECKSUM_CRC32 = 1,
	CHECKSUM_CRC32C = 2,
	CHECKSUM_CRC64NVME = 3,
	CHECKSUM_SHA1 = 4,
	CHECKSUM_SHA256 = 5,
};

#define CHECKSUM_MAX_DIGEST 32 /* bytes (SHA256) */
#define CHECKSUM_B64_MAX 48    /* base64 of the longest digest + NUL */

typedef struct checksum {
	int algo;     /* enum checksum_algo */
	uint64_t crc; /* running CRC state (CRC algorithms) */
	void *md;     /* EVP_MD_CTX * (SHA algorithms), owned */
} checksum;

/* Algorithm from a name as clients send it, case-insensitive: "CRC32",
 * "crc32c", "CRC64NVME", "SHA1", "SHA256" (x-amz-sdk-checksum-algorithm,
 * x-amz-checksum-algorithm), or a header name "x-amz-checksum-crc32" (as in
 * x-amz-trailer). Returns enum checksum_algo, CHECKSUM_NONE if unknown. */
int checksum_algo_from_name(const char *name);
/* "CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256"; "" for NONE/unknown. */
const char *checksum_algo_name(int algo);
/* "x-amz-checksum-crc32", ...; "" for NONE/unknown. */
const char *checksum_header_name(int algo);
/* Digest length in bytes (4, 4, 8, 20, 32), 0 for NONE/unknown. */
size_t checksum_digest_len(int algo);

/* Starts a checksum. Returns 0, -1 for an unknown algorithm, -2 if OpenSSL
 * could not allocate. On failure nothing needs freeing. */
int checksum_init(checksum *c, int algo);
void checksum_update(checksum *c, const void *data, size_t len);
/* Writes the digest (checksum_digest_len bytes, big-endian for CRCs) to raw,
 * then releases c. Returns the length, or -1 on failure. */
int checksum_final(checksum *c, unsigned char raw[CHECKSUM_MAX_DIGEST]);
/* Like checksum_final, as NUL-terminated base64 into out. Returns 0 or -1. */
int checksum_final_base64(checksum *c, char out[CHECKSUM_B64_MAX]);
/* Releases c without a result. Safe on a finalised or zeroed checksum. */
void checksum_clear(checksum *c);

/* Is b64 a well-formed value for algo (valid base64 of exactly the digest
 * length)? For rejecting bad x-amz-checksum-* headers (InvalidRequest). */
int checksum_value_valid(int algo, const char *b64);
/* Constant-time comparison of two base64 values after decoding; 1 if equal. */
int checksum_value_equal(int algo, const char *b64_a, const char *b64_b);

/* Base64 helpers (standard alphabet, padded). encode returns the output
 * length or -1 if cap is too small; decode returns the byte count or -1 for
 * invalid input / too small cap. */
int checksum_base64_encode(const unsigned char *in, size_t len, char *out, size_t cap);
int checksum_base64_decode(const char *in, unsigned char *out, size_t cap);

/* ---- raw CRC functions: crc = f(previous crc, data), start with 0 ---------- */

uint32_t checksum_crc32(uint32_t crc, const void *data, size_t len);
uint32_t checksum_crc32c(uint32_t crc, const void *data, size_t len);
uint64_t checksum_crc64nvme(uint64_t crc, const void *data, size_t len);

/* CRC of A||B from crc(A), crc(B) and len(B), for a CRC algorithm (full-object
 * checksums of multipart uploads). Returns 0 and sets *out, or -1 if algo is
 * not a CRC. */
int checksum_crc_combine(int algo, uint64_t crc_a, uint64_t crc_b, uint64_t len_b, uint64_t *out);

#endif
