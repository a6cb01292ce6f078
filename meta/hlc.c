/* hlc.c - hybrid logical clock (see hlc.h). */
#include "meta/hlc.h"

#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#define HLC_MAX (UINT64_MAX - 1)

void hlc_init(hlc_clock *c, uint64_t floor)
{
	c->last = floor;
	const char *off = getenv("SEGLAKE_TEST_CLOCK_OFFSET_MS");
	c->offset_ms = off ? strtoll(off, NULL, 10) : 0;
	const char *d = getenv("SEGLAKE_MAX_CLOCK_DRIFT_MS");
	c->max_drift_ms = d && strtoll(d, NULL, 10) > 0 ? strtoll(d, NULL, 10) : 3600 * 1000;
}

int64_t hlc_wall_ms(const hlc_clock *c)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 + c->offset_ms;
}

uint64_t hlc_tick(hlc_clock *c, int64_t wall)
{
	if (wall < 0)
		wall = hlc_wall_ms(c);
	uint64_t phys = (uint64_t)wall << 16;
	if (phys > c->last)
		c->last = phys;
	else if (c->last < HLC_MAX)
		c->last++; /* never wraps: at the (unreachable) top it stays put */
	return c->last;
}

int hlc_observe(hlc_clock *c, uint64_t remote)
{
	int64_t ahead_ms = HLC_MS(remote) - hlc_wall_ms(c);
	if (ahead_ms > c->max_drift_ms)
		return -1;
	if (remote > c->last)
		c->last = remote;
	return 0;
}

void hlc_observe_trusted(hlc_clock *c, uint64_t remote)
{
	if (remote > c->last && remote < HLC_MAX)
		c->last = remote;
}
