# compare/: the comparator library, the result store, cutover-compare and
# cutover-report, their unit tests and a libFuzzer target.

COMPARE_SRCS := $(filter-out compare/compare_main.c compare/report_main.c \
    compare/fuzz_compare.c,$(wildcard compare/compare_*.c))
$(eval $(call static_lib,compare,$(COMPARE_SRCS)))

# the schema text is assembled into the library from compare/schema.sql
$(OBJ)/compare/compare_schema.o: compare/schema.sql

PROGRAMS += $(BIN)/cutover-compare $(BIN)/cutover-report

$(BIN)/cutover-compare: $(OBJ)/compare/compare_main.o $(LIB)/libcompare.a
	@mkdir -p $(BIN)
	$(CC) -o $@ $^ $(PKG_LDLIBS)

$(BIN)/cutover-report: $(OBJ)/compare/report_main.o $(LIB)/libcompare.a
	@mkdir -p $(BIN)
	$(CC) -o $@ $^ $(PKG_LDLIBS)


UNIT_TESTS += $(TBIN)/check_compare
$(TBIN)/check_compare: $(OBJ)/tests/unit/check_compare.o $(LIB)/libcompare.a
	@mkdir -p $(TBIN)
	$(CC) -o $@ $^ $(PKG_LDLIBS) $(CHECK_LDLIBS)
