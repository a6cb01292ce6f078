/* crc32c.c - CRC-32C: SSE4.2 instruction when present, table otherwise.
 *
 * The crc32 instruction has a latency of three cycles and a throughput of
 * one, so one dependent stream uses a third of it. Long buffers are cut into
 * windows of three blocks whose CRCs run as three independent streams in one
 * loop; the three register values are then joined with the operator that
 * advances a CRC register over BLK zero bytes (the CRC is linear over GF(2):
 * the register after A||B is zeros_|B|(reg after A) ^ (reg over B from 0)).
 */
#include "common/crc32c.h"

#include <pthread.h>
#include <string.h>

#define POLY 0x82F63B78u
#define BLK 4096 /* bytes per stream and window step; a multiple of 8 */

static uint32_t table[8][256];
static uint32_t zeros_blk[4][256]; /* register -> register after BLK zero bytes */
static int have_sse42;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static uint32_t crc32c_sw(uint32_t c, const unsigned char *p, size_t n)
{
	while (n >= 8) {
		uint64_t w;
		memcpy(&w, p, 8);
		w ^= c;
		c = table[7][w & 0xff] ^ table[6][(w >> 8) & 0xff] ^ table[5][(w >> 16) & 0xff] ^
		    table[4][(w >> 24) & 0xff] ^ table[3][(w >> 32) & 0xff] ^
		    table[2][(w >> 40) & 0xff] ^ table[1][(w >> 48) & 0xff] ^ table[0][w >> 56];
		p += 8;
		n -= 8;
	}
	while (n--)
		c = (c >> 8) ^ table[0][(c ^ *p++) & 0xff];
	return c;
}

static void crc32c_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;
		for (int k = 0; k < 8; k++)
			c = (c & 1) ? (c >> 1) ^ POLY : c >> 1;
		table[0][i] = c;
	}
	for (uint32_t i = 0; i < 256; i++)
		for (int t = 1; t < 8; t++)
			table[t][i] = (table[t - 1][i] >> 8) ^ table[0][table[t - 1][i] & 0xff];

	/* The zero-advance operator is linear: find its image of each register
	 * bit by running the table CRC over BLK zero bytes, then tabulate it a
	 * byte of the register at a time. */
	static const unsigned char zero[BLK];
	uint32_t basis[32];
	for (int b = 0; b < 32; b++)
		basis[b] = crc32c_sw(1u << b, zero, sizeof(zero));
	for (int k = 0; k < 4; k++)
		for (uint32_t v = 0; v < 256; v++) {
			uint32_t r = 0;
			for (int b = 0; b < 8; b++)
				if (v & (1u << b))
					r ^= basis[8 * k + b];
			zeros_blk[k][v] = r;
		}
#if defined(__x86_64__)
	__builtin_cpu_init();
	have_sse42 = __builtin_cpu_supports("sse4.2");
#else
	have_sse42 = 0;
#endif
}

static inline uint32_t advance_blk(uint32_t c)
{
	return zeros_blk[0][c & 0xff] ^ zeros_blk[1][(c >> 8) & 0xff] ^
	       zeros_blk[2][(c >> 16) & 0xff] ^ zeros_blk[3][c >> 24];
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) static uint32_t crc32c_hw(uint32_t c, const unsigned char *p,
							    size_t n)
{
	uint64_t c0 = c;
	while (n >= 3 * BLK) {
		uint64_t c1 = 0, c2 = 0;
		for (size_t i = 0; i < BLK; i += 8) {
			uint64_t w0, w1, w2;
			memcpy(&w0, p + i, 8);
			memcpy(&w1, p + BLK + i, 8);
			memcpy(&w2, p + 2 * BLK + i, 8);
			c0 = __builtin_ia32_crc32di(c0, w0);
			c1 = __builtin_ia32_crc32di(c1, w1);
			c2 = __builtin_ia32_crc32di(c2, w2);
		}
		c0 = advance_blk(advance_blk((uint32_t)c0) ^ (uint32_t)c1) ^ (uint32_t)c2;
		p += 3 * BLK;
		n -= 3 * BLK;
	}
	while (n >= 8) {
		uint64_t w;
		memcpy(&w, p, 8);
		c0 = __builtin_ia32_crc32di(c0, w);
		p += 8;
		n -= 8;
	}
	c = (uint32_t)c0;
	while (n--)
		c = __builtin_ia32_crc32qi(c, *p++);
	return c;
}
#endif

uint32_t sl_crc32c(uint32_t crc, const void *buf, size_t len)
{
	pthread_once(&once, crc32c_init);
	uint32_t c = ~crc;
#if defined(__x86_64__)
	if (have_sse42)
		return ~crc32c_hw(c, buf, len);
#endif
	return ~crc32c_sw(c, buf, len);
}

uint32_t sl_crc32c_soft(uint32_t crc, const void *buf, size_t len)
{
	pthread_once(&once, crc32c_init);
	return ~crc32c_sw(~crc, buf, len);
}
