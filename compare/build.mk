# compare/: the comparator library, the result store, cutover-compare and
# cutover-report, their unit tests and a libFuzzer target.

COMPARE_SRCS := $(filter-out compare/compare_main.c,\
    $(wildcard compare/compare_*.c))
$(eval $(call static_lib,compare,$(COMPARE_SRCS)))

# the schema text is assembled into the library from compare/schema.sql
$(OBJ)/compare/compare_schema.o: compare/schema.sql
# and the HTML page's style and script from these two
$(OBJ)/compare/compare_html_asset.o: compare/report.css compare/report.js

PROGRAMS += $(BIN)/cutover-compare $(BIN)/cutover-report

$(BIN)/cutover-compare: $(OBJ)/compare/compare_main.o $(LIB)/libcompare.a \
    $(LIB)/libcommon.a
	@mkdir -p $(BIN)
	$(CC) -o $@ $^ $(PKG_LDLIBS)

$(BIN)/cutover-report: $(OBJ)/compare/report_main.o $(LIB)/libcompare.a \
    $(LIB)/libreconcile.a $(LIB)/libcommon.a
	@mkdir -p $(BIN)
	$(CC) -o $@ $^ $(PKG_LDLIBS)


# figures for bench/bench_compare.py (not a test)
$(TBIN)/bench_compare: $(OBJ)/compare/bench_compare.o $(LIB)/libcompare.a \
    $(LIB)/libcommon.a
	@mkdir -p $(TBIN)
	$(CC) -o $@ $^ $(PKG_LDLIBS)

UNIT_TESTS += $(TBIN)/check_compare
$(TBIN)/check_compare: $(OBJ)/tests/unit/check_compare.o $(LIB)/libcompare.a \
    $(LIB)/libcommon.a
	@mkdir -p $(TBIN)
	$(CC) -o $@ $^ $(PKG_LDLIBS) $(CHECK_LDLIBS)

# --- fuzzing: libFuzzer + ASan/UBSan over the parser and the diff ---------
DEB_PACKAGES += clang libclang-rt-14-dev
FUZZ_COMPARE := $(BUILD)/fuzz/fuzz_compare
FUZZ_COMPARE_TIME ?= 600
FUZZ_COMPARE_ARGS = -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
    $(BUILD)/fuzz/corpus-compare tests/fixtures/json tests/fixtures/compare \
    $(if $(CUTOVER_JSONTESTSUITE),$(CUTOVER_JSONTESTSUITE)/test_parsing)

FUZZ_COMMON_SRCS := common/cutover_hash.c common/cutover_json.c
# the parser and the diff, not the report's page
FUZZ_COMPARE_SRCS := $(filter-out compare/compare_html%.c,$(COMPARE_SRCS))
$(FUZZ_COMPARE): compare/fuzz_compare.c $(FUZZ_COMPARE_SRCS) $(FUZZ_COMMON_SRCS) \
        $(wildcard compare/*.h) compare/schema.sql
	@mkdir -p $(dir $@) $(BUILD)/fuzz/corpus-compare
	clang -std=gnu11 -D_GNU_SOURCE -g -O1 -Wall -Wextra -Werror \
	    -fsanitize=fuzzer,address,undefined \
	    -fno-sanitize-recover=undefined -I. $(PKG_CFLAGS) -o $@ \
	    compare/fuzz_compare.c $(FUZZ_COMPARE_SRCS) $(FUZZ_COMMON_SRCS) \
	    $(PKG_LDLIBS)

.PHONY: fuzz-compare-short fuzz-compare
EXTRA_CHECKS += fuzz-compare-short

# a bounded run for `make test`
fuzz-compare-short: $(FUZZ_COMPARE)
	$(FUZZ_COMPARE) -max_total_time=20 $(FUZZ_COMPARE_ARGS)

# a long run on demand: make fuzz-compare FUZZ_COMPARE_TIME=3600
fuzz-compare: $(FUZZ_COMPARE)
	$(FUZZ_COMPARE) -max_total_time=$(FUZZ_COMPARE_TIME) $(FUZZ_COMPARE_ARGS)

# the HTML report is read in a real browser by its integration test
DEB_PACKAGES += chromium

# the HTML report's escaping and embedded assets
UNIT_TESTS += $(TBIN)/check_compare_html
$(TBIN)/check_compare_html: $(OBJ)/tests/unit/check_compare_html.o \
    $(LIB)/libcompare.a $(LIB)/libreconcile.a $(LIB)/libcommon.a
	@mkdir -p $(TBIN)
	$(CC) -o $@ $^ $(PKG_LDLIBS) $(CHECK_LDLIBS)

# --- cutover-reconcile: the ledger states of both databases --------------
RECONCILE_SRCS := compare/reconcile_map.c compare/reconcile_util.c \
    compare/reconcile_sql.c compare/reconcile_run.c compare/reconcile_out.c \
    compare/reconcile_store.c
$(eval $(call static_lib,reconcile,$(RECONCILE_SRCS)))

# the shipped map is built into the program (compare/reconcile_map.json);
# the result store's tables come from compare/reconcile_schema.sql
$(OBJ)/compare/reconcile_main.o: compare/reconcile_map.json
$(OBJ)/compare/reconcile_store.o: compare/reconcile_schema.sql

PROGRAMS += $(BIN)/cutover-reconcile

$(BIN)/cutover-reconcile: $(OBJ)/compare/reconcile_main.o \
    $(LIB)/libreconcile.a $(LIB)/libcommon.a
	@mkdir -p $(BIN)
	$(CC) -o $@ $^ $(PKG_LDLIBS)

UNIT_TESTS += $(TBIN)/check_reconcile
$(TBIN)/check_reconcile: $(OBJ)/tests/unit/check_reconcile.o \
    $(LIB)/libreconcile.a $(LIB)/libcommon.a
	@mkdir -p $(TBIN)
	$(CC) -o $@ $^ $(PKG_LDLIBS) $(CHECK_LDLIBS)
