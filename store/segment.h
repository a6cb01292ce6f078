/*
 * segment.h - the on-disk format of a segment file, as pure encode/decode
 * functions over byte buffers (no I/O here, so they can be fuzzed).
 *
 *   segment  = header(64) record*
 *   header   = "SEGLAKE\x01" u32 version u32 header_size u64 segment_id
 *              i64 created_ms char node[16] u8 pad[12] u32 crc32c(bytes 0..59)
 *   record   = u32 magic "SLRC" u8 type u8 flags u16 0 u32 payload_len
 *              u32 payload_crc u32 0 u32 header_crc(bytes 0..19)  -> 24 bytes
 *              payload[payload_len]
 *   CHUNK    payload = sha256[32] data        payload_crc = crc32c(payload)
 *                      (reads check the CRC; scrub re-hashes the SHA-256)
 *   JOURNAL  payload = JSON text of one committed transaction
 *                                             payload_crc = crc32c(payload)
 *   FOOTER   payload = JSON {"records":N,"bytes":B,"sealed_ms":T}: sealed
 *
 * All integers little-endian. A segment with a FOOTER is sealed and never
 * appended to again. Anything after the last valid record is a torn tail.
 */
#ifndef SL_STORE_SEGMENT_H
#define SL_STORE_SEGMENT_H

#include <stddef.h>
#include <stdint.h>

#define SEG_MAGIC "SEGLAKE\x01"
#define SEG_VERSION 1
#define SEG_HEADER_SIZE 64
#define SEG_REC_HEADER 24
#define SEG_REC_MAGIC 0x43524c53u /* "SLRC" little-endian */
#define SEG_MAX_PAYLOAD (64u * 1024 * 1024)

enum seg_rec_type { SEG_REC_CHUNK = 1, SEG_REC_JOURNAL = 2, SEG_REC_FOOTER = 3 };

typedef struct seg_header {
	uint64_t id;
	int64_t created_ms;
	char node[17];
} seg_header;

typedef struct seg_rec {
	int type;
	uint32_t payload_len;
	uint32_t payload_crc;
} seg_rec;

void seg_header_encode(const seg_header *h, uint8_t out[SEG_HEADER_SIZE]);
/* 0 if valid, -1 if not a segment header or corrupt. */
int seg_header_decode(const uint8_t *buf, size_t len, seg_header *h);

void seg_rec_encode(int type, uint32_t payload_len, uint32_t payload_crc,
		    uint8_t out[SEG_REC_HEADER]);
/* 0 if a valid record header, -1 otherwise (bad magic, crc, type or length). */
int seg_rec_decode(const uint8_t *buf, size_t len, seg_rec *r);
/* Checks a whole record payload against its header (CRC-32C): 0 ok, -1 corrupt. */
int seg_rec_verify(const seg_rec *r, const uint8_t *payload);

#endif
