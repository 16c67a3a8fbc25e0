#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include "quant.h"
static void t_smoke(void **st) { qt_format f; qt_error e; assert_int_equal(qt_format_parse("fixed<8,4>", &f, &e), QT_OK); }
int main(void) { const struct CMUnitTest t[] = { cmocka_unit_test(t_smoke) }; return cmocka_run_group_tests(t, NULL, NULL); }
