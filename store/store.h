/*
 * store.h - the segment manager: appends records to the open segment,
 * rotates and seals segments, reads byte ranges back, recovers torn tails
 * and scans records in order for roll-forward and rebuild.
 *
 * It knows nothing of buckets, keys or SQLite: callers get positions
 * (segment id, offset) and keep their own index. All disk access goes
 * through a store_io. Appends are serialised by an internal mutex (records
 * are written whole, in order, so a crash can only tear the tail); reads and
 * fsyncs run concurrently with appends.
 */
#ifndef SL_STORE_STORE_H
#define SL_STORE_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "store/io.h"
#include "store/segment.h"

typedef struct store store;

/* A record boundary: the byte offset just past a record in segment seg. */
typedef struct store_pos {
	uint64_t seg;
	uint64_t off;
} store_pos;

/* Where a record's data lives: for a CHUNK, its data bytes (after the hash). */
typedef struct store_loc {
	uint64_t seg;
	uint64_t off;
	uint32_t len;
} store_loc;

typedef struct store_opts {
	const store_io *io;	    /* NULL: POSIX */
	uint64_t segment_max_bytes; /* rotate past this; 0: 256 MiB */
	unsigned segment_idle_sec;  /* seal an idle open segment; 0: 60 */
	const char *node;	    /* node id written into segment headers */
} store_opts;

/* Opens the segments in dir (created if missing). Recovery: every segment at
 * or after verify_from.seg is walked; records at or after verify_from are
 * fully verified; the first invalid record at or after verify_from starts a
 * torn tail, which is cut. An invalid record before verify_from is
 * corruption of committed data: SL_ECORRUPT, nothing is cut. */
int store_open(const char *dir, const store_opts *o, store_pos verify_from, store **out,
	       sl_err *err);
/* Closes without sealing (the open segment is continued on the next open). */
void store_close(store *s);

/* OR'd into store_append's type: a large CHUNK whose bytes are not expected
 * to be read back soon (received from a peer, a full chunk of an upload).
 * Where the io can, it is
 * written with O_DIRECT from an aligned copy, past the page cache (the
 * kernel's copy into fresh page-cache pages was the replication receiver's
 * largest cost). After the first such write, the copy is handed to the
 * store's writer thread and store_append returns without waiting for the
 * disk (up to 3 are staged): reads and scans of the record wait for it,
 * store_sync waits for every record appended before it, and a failed staged
 * write fails that sync and every later append (restart to recover). The
 * segment's space is allocated ahead, so a full disk fails the append that
 * meets it. The block-aligned write and the space allocated ahead leave
 * zeros after the record until the next append; they are never inside a
 * record, and are cut on seal, close and recovery. Otherwise a plain
 * append. */
#define STORE_APPEND_COLD 0x100
/* The smallest COLD chunk written with O_DIRECT. */
#define STORE_DIRECT_MIN (1u << 20)

/* Appends a record. For SEG_REC_CHUNK, hash is the SHA-256 of data. On
 * failure the segment is cut back so no partial record remains (a staged
 * COLD append that fails later: see above). *loc gets
 * the data location; *end (may be NULL) the position after the record. */
int store_append(store *s, int type, const uint8_t *hash, const void *data, uint32_t len,
		 store_loc *loc, store_pos *end, sl_err *err);
/* Makes every record appended so far durable (waits for the staged ones,
 * then fdatasync of the open segment; earlier segments were synced when
 * sealed). */
int store_sync(store *s, sl_err *err);
/* The position after the last record. */
store_pos store_tail(store *s);

/* Reads the whole chunk whose data is at loc into buf (loc.len bytes) and
 * checks it: the record around it must be a CHUNK record of that length for
 * hash, and its CRC-32C must match. SL_ECORRUPT if not. */
int store_read_chunk(store *s, store_loc loc, const uint8_t hash[32], void *buf, sl_err *err);
/* Bytes of buffer store_read_chunk_direct needs for a chunk of len bytes. */
#define STORE_DIRECT_READ_CAP(len) ((size_t)(len) + 3 * STORE_IO_DIRECT_ALIGN)
/* store_read_chunk with O_DIRECT, past the page cache: the whole blocks
 * around the record are read into buf (aligned to STORE_IO_DIRECT_ALIGN, at
 * least STORE_DIRECT_READ_CAP(loc.len) bytes) and the data is at buf + *off.
 * For a reader that expects the disk: no page-cache pages to fill and copy
 * out of. Returns 1, having read nothing, where the whole record is in the
 * page cache already, or the io or the filesystem cannot read with O_DIRECT
 * (then it never tries again): use store_read_chunk. */
int store_read_chunk_direct(store *s, store_loc loc, const uint8_t hash[32], uint8_t *buf,
			    size_t *off, sl_err *err);
/* Starts reading the record at loc into the page cache in the background
 * (POSIX_FADV_WILLNEED): a whole chunk as one request rather than the small
 * synchronous read-ahead a fresh descriptor gets. Advisory; no error. */
void store_advise(store *s, store_loc loc);
/* Reads len bytes at off of segment seg. SL_EIO / SL_ECORRUPT on failure. */
int store_read(store *s, uint64_t seg, uint64_t off, void *buf, uint32_t len, sl_err *err);

/* Seals the open segment if idle past the configured time. */
void store_tick(store *s);
/* Seals the open segment now (if it holds records). */
int store_seal(store *s, sl_err *err);

/* Called for each valid record in order. For CHUNK: hash set, payload NULL,
 * loc = data location. For JOURNAL: payload = the record's bytes (valid only
 * during the call), loc = its location. end = position after the record.
 * Return non-zero to stop the scan (that value is returned). */
typedef int (*store_scan_fn)(void *ctx, int type, const uint8_t *hash, const uint8_t *payload,
			     store_loc loc, store_pos end);
/* Scans records from pos (a record boundary; {0,0} = from the start). An
 * invalid record ends the scan of its segment; the scan goes on with the next
 * and finally returns SL_ECORRUPT naming the first bad place (after calling fn
 * for every valid record). */
int store_scan(store *s, store_pos from, store_scan_fn fn, void *ctx, sl_err *err);

/* Every segment: ids ascending with file sizes; open_id is the segment still
 * being appended to (0 if none). Arrays malloc'd. */
int store_segments(store *s, uint64_t **ids, uint64_t **sizes, size_t *n, uint64_t *open_id,
		   sl_err *err);
/* Deletes a sealed segment file (never the open one). */
int store_remove(store *s, uint64_t id, sl_err *err);
/* Path of a segment file (for snapshots). */
void store_segment_path(store *s, uint64_t id, char *out, size_t n);

typedef struct store_stats {
	uint64_t segments;
	uint64_t bytes;
} store_stats;
void store_stats_get(store *s, store_stats *out);

#endif
