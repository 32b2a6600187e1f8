#include <criterion/criterion.h>

#include "jobbridge/cron.h"

Test(cron, placeholder) {
  jb_cron c;
  cr_assert(jb_cron_parse("* * * * *", &c, NULL, (char[64]){0}, 64));
}
