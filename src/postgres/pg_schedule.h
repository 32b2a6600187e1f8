/* The ScheduleStore port (jobbridge/schedule.h) over a PostgreSQL connection: the
 * schedule_state table of migration 8. */
#ifndef JB_PG_SCHEDULE_H
#define JB_PG_SCHEDULE_H

#include "jobbridge/schedule.h"
#include "postgres/pg.h"

/* Borrows pg; used by one thread at a time, like the connection. */
jb_schedule_store jb_pg_schedule_store(jb_pg *pg);

#endif
