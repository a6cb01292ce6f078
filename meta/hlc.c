/* hlc.c - hybrid logical clock (see hlc.h). */
#include "meta/hlc.h"

#include <stdlib.h>
#include <time.h>

void hlc_init(hlc_clock *c, uint64_t floor)
{
	c->last = floor;
	const char *off = getenv("SEGLAKE_TEST_CLOCK_OFFSET_MS");
	c->offset_ms = off ? strtoll(off, NULL, 10) : 0;
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
	c->last = phys > c->last ? phys : c->last + 1;
	return c->last;
}

void hlc_observe(hlc_clock *c, uint64_t remote)
{
	if (remote > c->last)
		c->last = remote;
}
